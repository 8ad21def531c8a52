//! The HTTP hook: an HTTP service of the user's that decides logins (`auth.http_url`) and topic
//! access (`auth.http_acl_url`). Each decision is one POST of a JSON object; the service answers
//! with a status and, optionally, `{"result": "allow" | "deny" | "ignore"}`.
//!
//! - 204 (no body), or 200 with `"result": "allow"`: allowed. A login's answer may carry
//!   `"acl": [...]` rules in the token form (see `jwt.rs`), which become the client's ACL.
//! - `"result": "deny"`, or a 4xx status: refused.
//! - `"result": "ignore"`: the hook has no opinion; a login goes on to the anonymous rule, a
//!   topic to the ACL file (or is refused when there is none).
//! - Anything else (a 5xx status, a body that is not such an object, a connection error, no
//!   answer within `auth.http_timeout_ms`): **refused**. The hook fails closed.
//!
//! ACL decisions are cached per client, topic and action for `auth.http_cache_secs` in a table
//! of at most `auth.http_cache_entries` entries; logins are never cached.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::CONTENT_TYPE;
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::acl::GrantedRule;
use super::jwt::parse_acl_claim;
use crate::config::AuthConfig;

/// Largest answer read from the hook.
const MAX_ANSWER: usize = 64 * 1024;

/// What the hook said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookVerdict {
    /// Allowed; for a login, with the ACL rules its answer carried, if any.
    Allow(Option<Vec<GrantedRule>>),
    /// Refused.
    Deny,
    /// No opinion.
    Ignore,
    /// No clear answer (a 5xx, a bad answer, no answer in time): refused, and not cached, so
    /// that the next question asks again.
    Unavailable,
}

impl HookVerdict {
    /// The verdict as a decision: allowed, refused, or `None` for no opinion.
    pub fn allowed(&self) -> Option<bool> {
        match self {
            HookVerdict::Allow(_) => Some(true),
            HookVerdict::Deny | HookVerdict::Unavailable => Some(false),
            HookVerdict::Ignore => None,
        }
    }
}

/// Whether a topic decision is about publishing or subscribing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookAction {
    /// PUBLISH to a topic (and a will).
    Publish,
    /// SUBSCRIBE to a filter.
    Subscribe,
}

impl HookAction {
    fn name(self) -> &'static str {
        match self {
            HookAction::Publish => "publish",
            HookAction::Subscribe => "subscribe",
        }
    }
}

/// A cached ACL decision's key: client identifier, username, action, topic or filter.
type CacheKey = (String, Option<String>, HookAction, String);

/// The HTTP hook of `[auth]`.
pub(crate) struct HttpHook {
    client: Client<HttpConnector, Full<Bytes>>,
    login_url: Option<Uri>,
    acl_url: Option<Uri>,
    timeout: Duration,
    cache_ttl: Duration,
    cache_entries: usize,
    cache: Mutex<HashMap<CacheKey, (HookVerdict, Instant)>>,
}

impl std::fmt::Debug for HttpHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpHook")
            .field("login_url", &self.login_url)
            .field("acl_url", &self.acl_url)
            .finish_non_exhaustive()
    }
}

/// Parses an `http://` URL of a hook key.
fn hook_url(key: &str, url: &Option<String>) -> Result<Option<Uri>, String> {
    let Some(url) = url else { return Ok(None) };
    let uri: Uri = url.parse().map_err(|e| format!("{key} {url:?}: not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() {
        return Err(format!("{key} {url:?}: only http://host[:port]/path URLs are supported"));
    }
    Ok(Some(uri))
}

/// Who is asking, as the hook is told.
#[derive(Debug, Clone, Copy)]
pub struct HookClient<'a> {
    /// The client identifier.
    pub client_id: &'a str,
    /// The username, if any.
    pub username: Option<&'a str>,
    /// The peer's address.
    pub peer: std::net::SocketAddr,
}

impl HttpHook {
    /// The hook `[auth]` configures, if it configures one.
    pub(crate) fn from_config(auth: &AuthConfig) -> Result<Option<HttpHook>, String> {
        let login_url = hook_url("auth.http_url", &auth.http_url)?;
        let acl_url = hook_url("auth.http_acl_url", &auth.http_acl_url)?;
        if login_url.is_none() && acl_url.is_none() {
            return Ok(None);
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_millis(auth.http_timeout_ms)));
        let client =
            Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(connector);
        Ok(Some(HttpHook {
            client,
            login_url,
            acl_url,
            timeout: Duration::from_millis(auth.http_timeout_ms),
            cache_ttl: Duration::from_secs(auth.http_cache_secs),
            cache_entries: auth.http_cache_entries,
            cache: Mutex::new(HashMap::new()),
        }))
    }

    /// Whether logins go to the hook.
    pub(crate) fn decides_logins(&self) -> bool {
        self.login_url.is_some()
    }

    /// Whether topic decisions go to the hook.
    pub(crate) fn decides_topics(&self) -> bool {
        self.acl_url.is_some()
    }

    /// Asks the hook about a login.
    pub(crate) async fn login(
        &self,
        who: HookClient<'_>,
        password: Option<&[u8]>,
        protocol: u8,
    ) -> HookVerdict {
        let Some(url) = &self.login_url else { return HookVerdict::Ignore };
        let mut body = json!({
            "clientid": who.client_id,
            "username": who.username,
            "peerhost": who.peer.ip().to_string(),
            "peerport": who.peer.port(),
            "protocol": protocol,
        });
        match password.map(std::str::from_utf8) {
            None => {}
            Some(Ok(text)) => body["password"] = Value::from(text),
            Some(Err(_)) => {
                use base64::Engine;
                let encoded = base64::engine::general_purpose::STANDARD.encode(password.unwrap_or_default());
                body["password_base64"] = Value::from(encoded);
            }
        }
        self.ask(url, &body, true).await
    }

    /// Asks the hook whether `who` may `action` on `topic`, from the cache when it can.
    pub(crate) async fn allowed(&self, who: HookClient<'_>, action: HookAction, topic: &str) -> HookVerdict {
        let Some(url) = &self.acl_url else { return HookVerdict::Ignore };
        let key = (who.client_id.to_owned(), who.username.map(str::to_owned), action, topic.to_owned());
        if let Some(verdict) = self.cached(&key) {
            return verdict;
        }
        let body = json!({
            "clientid": who.client_id,
            "username": who.username,
            "peerhost": who.peer.ip().to_string(),
            "action": action.name(),
            "topic": topic,
        });
        let verdict = self.ask(url, &body, false).await;
        if verdict != HookVerdict::Unavailable {
            self.remember(key, verdict.clone());
        }
        verdict
    }

    #[allow(clippy::disallowed_methods)] // The cache's clock is read at the I/O edge.
    fn cached(&self, key: &CacheKey) -> Option<HookVerdict> {
        if self.cache_ttl.is_zero() {
            return None;
        }
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let (verdict, at) = cache.get(key)?;
        (at.elapsed() < self.cache_ttl).then(|| verdict.clone())
    }

    #[allow(clippy::disallowed_methods)] // The cache's clock is read at the I/O edge.
    fn remember(&self, key: CacheKey, verdict: HookVerdict) {
        if self.cache_ttl.is_zero() || self.cache_entries == 0 {
            return;
        }
        let now = Instant::now();
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= self.cache_entries && !cache.contains_key(&key) {
            let ttl = self.cache_ttl;
            cache.retain(|_, (_, at)| now.duration_since(*at) < ttl);
            if cache.len() >= self.cache_entries {
                // Still full of live entries: start over rather than grow.
                cache.clear();
            }
        }
        cache.insert(key, (verdict, now));
    }

    /// POSTs `body` to `url` and reads the verdict, failing closed.
    async fn ask(&self, url: &Uri, body: &Value, login: bool) -> HookVerdict {
        match tokio::time::timeout(self.timeout, self.post(url, body, login)).await {
            Ok(Ok(verdict)) => verdict,
            Ok(Err(problem)) => {
                tracing::warn!(%url, %problem, "HTTP hook failed; refused (the hook fails closed)");
                HookVerdict::Unavailable
            }
            Err(_) => {
                tracing::warn!(%url, timeout_ms = self.timeout.as_millis(), "HTTP hook timed out; refused (the hook fails closed)");
                HookVerdict::Unavailable
            }
        }
    }

    async fn post(&self, url: &Uri, body: &Value, login: bool) -> Result<HookVerdict, String> {
        let request = Request::builder()
            .method(Method::POST)
            .uri(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| e.to_string())?;
        let response = self.client.request(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        let answer = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        if status.is_client_error() {
            return Ok(HookVerdict::Deny);
        }
        if status != StatusCode::OK && status != StatusCode::NO_CONTENT {
            return Err(format!("answered {status}"));
        }
        if answer.iter().all(u8::is_ascii_whitespace) {
            // 204 No Content allows; an empty 200 (a health endpoint, a misconfigured URL)
            // is no answer.
            if status == StatusCode::NO_CONTENT {
                return Ok(HookVerdict::Allow(None));
            }
            return Err("an empty 200 answer; answer 204, or 200 with a \"result\"".to_owned());
        }
        let answer: Value =
            serde_json::from_slice(&answer).map_err(|e| format!("the answer is not JSON: {e}"))?;
        match answer.get("result").and_then(Value::as_str) {
            Some("allow") => {
                let rules = match (login, answer.get("acl")) {
                    (true, Some(claim)) => Some(parse_acl_claim(claim, "acl")?),
                    _ => None,
                };
                Ok(HookVerdict::Allow(rules))
            }
            Some("deny") => Ok(HookVerdict::Deny),
            Some("ignore") => Ok(HookVerdict::Ignore),
            _ => Err("the answer has no \"result\" of allow, deny or ignore".to_owned()),
        }
    }
}
