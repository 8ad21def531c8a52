//! `/api/v1/*`: the admin API's endpoints, JSON in and out. Lists answer with at most 10,000
//! entries unless `?limit=N` asks for another number.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use bytestring::ByteString;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use super::{error, json, Body};
use crate::context::Context;
use crate::message::Message;
use crate::session::ClientView;

/// Most entries a list answers with unless `?limit=` says otherwise.
const DEFAULT_LIMIT: usize = 10_000;

/// How long a DELETE of a client waits for its connection to close.
const KICK_WAIT: Duration = Duration::from_secs(5);

/// The decoded query parameters of a request.
fn query(request: &Request<Incoming>) -> HashMap<String, String> {
    let decode = |text: &str| {
        percent_encoding::percent_decode_str(&text.replace('+', " ")).decode_utf8_lossy().into_owned()
    };
    request
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) => (decode(key), decode(value)),
            None => (decode(pair), String::new()),
        })
        .collect()
}

pub(super) async fn handle(context: &Arc<Context>, request: &Request<Incoming>) -> Response<Body> {
    let path = request.uri().path();
    let rest = path.strip_prefix("/api/v1/").unwrap_or("");
    let params = query(request);
    match (request.method(), rest) {
        (&Method::GET, "clients") => {
            let limit = params.get("limit").and_then(|l| l.parse().ok()).unwrap_or(DEFAULT_LIMIT);
            let clients: Vec<Value> =
                context.registry.clients().iter().take(limit).map(client_json).collect();
            json(StatusCode::OK, &Value::Array(clients))
        }
        (method, client) if client.starts_with("clients/") => {
            let id = percent_encoding::percent_decode_str(&client["clients/".len()..])
                .decode_utf8_lossy()
                .into_owned();
            match *method {
                Method::GET => match context.registry.clients().iter().find(|c| *c.client_id == *id) {
                    Some(view) => json(StatusCode::OK, &client_json(view)),
                    None => error(StatusCode::NOT_FOUND, "no such client"),
                },
                Method::DELETE => {
                    disconnect(context, &id, params.get("session").is_some_and(|v| v == "true")).await
                }
                _ => error(StatusCode::METHOD_NOT_ALLOWED, "GET or DELETE"),
            }
        }
        (&Method::GET, "subscriptions") => subscriptions(context, params.get("client").map(String::as_str)),
        (&Method::GET, "retained") => {
            let filter = params.get("topic").map_or("#", String::as_str);
            if iothub_protocol::validate_topic_filter(filter).is_err() {
                return error(StatusCode::BAD_REQUEST, "topic is not a topic filter");
            }
            let limit = params.get("limit").and_then(|l| l.parse().ok()).unwrap_or(DEFAULT_LIMIT);
            let retained: Vec<Value> = context
                .router
                .retained_matching(filter)
                .iter()
                .take(limit)
                .map(|m| message_json(m))
                .collect();
            json(StatusCode::OK, &Value::Array(retained))
        }
        (&Method::DELETE, "retained") => {
            let Some(topic) = params.get("topic") else {
                return error(StatusCode::BAD_REQUEST, "?topic=TOPIC is required");
            };
            if iothub_protocol::validate_topic_name(topic).is_err() {
                return error(StatusCode::BAD_REQUEST, "topic is not a topic name");
            }
            let existed = !context.router.retained_matching(topic).is_empty();
            // An empty retained message deletes the one stored [MQTT-3.3.1-10]; it is routed to
            // no one, since it is not a publication of a client.
            let delete = Message::new(
                ByteString::from(topic.as_str()),
                Bytes::new(),
                iothub_protocol::QoS::AtMostOnce,
                true,
            );
            context.router.delete_retained(&Arc::new(delete));
            if existed {
                Response::builder().status(StatusCode::NO_CONTENT).body(Body::default()).unwrap_or_default()
            } else {
                error(StatusCode::NOT_FOUND, "no retained message on that topic")
            }
        }
        (&Method::GET, "stats") => json(StatusCode::OK, &stats(context)),
        _ => error(StatusCode::NOT_FOUND, "no such endpoint"),
    }
}

fn client_json(view: &ClientView) -> Value {
    let mailbox = view.mailbox.as_ref();
    let identity = view.identity.as_ref();
    json!({
        "client_id": &*view.client_id,
        "connected": identity.is_some(),
        "protocol_version": identity.map(|i| i.protocol),
        "remote_address": identity.map(|i| i.peer.to_string()),
        "listener": identity.map(|i| &*i.listener),
        "username": identity.and_then(|i| i.username.as_deref()),
        "keep_alive": identity.map(|i| i.keep_alive),
        "subscriptions": mailbox.map_or(0, |m| m.subscription_count()),
        "queue_depth": mailbox.map_or(0, |m| m.len()),
        "inflight": mailbox.map_or(0, |m| m.inflight()),
        "dropped": mailbox.map_or(0, |m| m.dropped()),
    })
}

fn message_json(message: &Message) -> Value {
    let payload = match std::str::from_utf8(&message.payload) {
        Ok(text) => json!({ "payload": text }),
        Err(_) => {
            json!({ "payload_base64": base64::engine::general_purpose::STANDARD.encode(&message.payload) })
        }
    };
    let mut value = json!({
        "topic": &*message.topic,
        "qos": message.qos as u8,
        "size": message.payload.len(),
    });
    if let (Value::Object(into), Value::Object(from)) = (&mut value, payload) {
        into.extend(from);
    }
    value
}

fn subscriptions(context: &Context, client: Option<&str>) -> Response<Body> {
    let names: HashMap<u64, ByteString> = context
        .registry
        .clients()
        .into_iter()
        .filter_map(|view| view.mailbox.map(|m| (m.session_id(), view.client_id)))
        .collect();
    let all: Vec<Value> = context
        .router
        .subscriptions()
        .into_iter()
        .filter_map(|(filter, subscriber)| {
            let client_id = names.get(&subscriber.session_id).map(|c| c.to_string());
            if client.is_some_and(|wanted| client_id.as_deref() != Some(wanted)) {
                return None;
            }
            Some(json!({
                "filter": filter,
                "client_id": client_id,
                "qos": subscriber.qos as u8,
                "no_local": subscriber.no_local,
                "retain_as_published": subscriber.retain_as_published,
                "subscription_identifier": subscriber.subscription_id.map(|id| id.get()),
                "shared": subscriber.shared.is_some(),
            }))
        })
        .collect();
    json(StatusCode::OK, &Value::Array(all))
}

/// Disconnects `client_id` (5.0: DISCONNECT 0x98) and, with `discard_session`, discards its
/// session too.
async fn disconnect(context: &Arc<Context>, client_id: &str, discard_session: bool) -> Response<Body> {
    let kicked = context.registry.kick(client_id);
    if let Some(takeover) = &kicked {
        if tokio::time::timeout(KICK_WAIT, takeover.wait_closed()).await.is_err() {
            return error(StatusCode::GATEWAY_TIMEOUT, "the client's connection did not close in time");
        }
    }
    let discarded = discard_session && {
        match context.registry.remove_offline(client_id) {
            Some(mut session) => {
                crate::connection::discard(context, &mut session);
                true
            }
            None => false,
        }
    };
    let known = kicked.is_some()
        || discarded
        || context.registry.clients().iter().any(|c| *c.client_id == *client_id);
    if !known {
        return error(StatusCode::NOT_FOUND, "no such client");
    }
    tracing::info!(client_id, session_discarded = discarded, "client disconnected through the admin API");
    json(
        StatusCode::OK,
        &json!({ "client_id": client_id, "disconnected": kicked.is_some(), "session_discarded": discarded }),
    )
}

fn stats(context: &Context) -> Value {
    let m = &context.metrics;
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let (online, offline) = context.registry.counts();
    let (retained, retained_bytes) = context.router.retained_counts();
    json!({
        "uptime_secs": context.uptime().as_secs(),
        "connections": {
            "current": get(&m.connections_current),
            "maximum": get(&m.connections_maximum),
            "accepted_total": get(&m.connections_accepted),
            "refused_total": get(&m.connections_refused),
        },
        "sessions": { "online": online, "offline": offline, "expired_total": get(&m.sessions_expired) },
        "subscriptions": context.router.subscription_count(),
        "retained": { "count": retained, "bytes": retained_bytes },
        "messages": {
            "received": m.messages_received.iter().map(get).collect::<Vec<_>>(),
            "sent": m.messages_sent.iter().map(get).collect::<Vec<_>>(),
            "dropped": {
                "queue_full": get(&m.dropped_qos0) + get(&m.dropped_qos12),
                "expired": get(&m.dropped_expired),
                "too_large": get(&m.dropped_too_large),
                "acl_denied": get(&m.dropped_acl),
                "no_subscribers": get(&m.dropped_no_subscribers),
            },
        },
        "bytes": { "received": get(&m.bytes_received), "sent": get(&m.bytes_sent) },
    })
}
