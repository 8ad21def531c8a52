//! `$SYS` topics, with Mosquitto's names and meanings, published retained every
//! `[sys] interval_secs` (0: never). A wildcard at the first level never matches them
//! [MQTT-4.7.2-1], and clients cannot publish to them (the session acknowledges and drops such
//! a PUBLISH).
//!
//! - `$SYS/broker/version`, `$SYS/broker/uptime` ("N seconds");
//! - `clients/connected`, `disconnected` (offline persistent sessions), `total`, `maximum`,
//!   `expired`;
//! - `messages/received` (every MQTT packet received), `messages/sent` (every PUBLISH sent);
//! - `publish/messages/received` (every PUBLISH received, all QoS and retained ones included),
//!   `publish/messages/sent`, `publish/messages/dropped`;
//! - `bytes/received`, `bytes/sent`;
//! - `subscriptions/count`, `retained messages/count`;
//! - `store/messages/count` (queued messages plus retained ones), `store/messages/bytes`
//!   (payload bytes of the retained ones);
//! - `load/{messages,publish/received,publish/sent,bytes}/{received,sent}/{1min,5min,15min}`:
//!   per-minute rates as exponentially weighted averages, as Mosquitto computes them.
//!
//! `heap/*` is not published: Rust's allocator keeps no such count (`/metrics` has the RSS).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use bytestring::ByteString;
use iothub_protocol::QoS;
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::message::Message;
use crate::router::RouteScratch;

/// Averaging windows of the load topics, in minutes.
const WINDOWS: [(f64, &str); 3] = [(1.0, "1min"), (5.0, "5min"), (15.0, "15min")];

/// Exponentially weighted per-minute rates of one counter.
#[derive(Debug, Default)]
struct Load {
    last: u64,
    averages: [f64; 3],
}

impl Load {
    /// Folds in the counter's value after `seconds`.
    #[allow(clippy::cast_precision_loss)]
    fn update(&mut self, value: u64, seconds: f64) {
        let per_minute = value.saturating_sub(self.last) as f64 * 60.0 / seconds.max(1e-3);
        self.last = value;
        for (average, (minutes, _)) in self.averages.iter_mut().zip(WINDOWS) {
            let keep = (-seconds / (minutes * 60.0)).exp();
            *average = *average * keep + per_minute * (1.0 - keep);
        }
    }
}

/// Publishes the `$SYS` topics every `interval` until `shutdown`.
pub(crate) async fn publish(context: Arc<Context>, interval: Duration, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut routing = RouteScratch::default();
    let names = [
        "messages/received",
        "messages/sent",
        "publish/received",
        "publish/sent",
        "bytes/received",
        "bytes/sent",
    ];
    let mut loads: Vec<Load> = names.iter().map(|_| Load::default()).collect();
    let mut first = true;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let m = &context.metrics;
        let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        let received: u64 = m.messages_received.iter().map(get).sum();
        let sent: u64 = m.messages_sent.iter().map(get).sum();
        let dropped = get(&m.dropped_qos0)
            + get(&m.dropped_qos12)
            + get(&m.dropped_expired)
            + get(&m.dropped_too_large)
            + get(&m.dropped_acl)
            + get(&m.dropped_no_subscribers);
        let (online, offline) = context.registry.counts();
        let (retained, retained_bytes) = context.router.retained_counts();
        let queued: usize =
            context.registry.clients().iter().filter_map(|c| c.mailbox.as_ref()).map(|m| m.len()).sum();
        let packets = get(&m.packets_received);
        let bytes = (get(&m.bytes_received), get(&m.bytes_sent));
        let mut topics: Vec<(String, String)> = vec![
            ("version".into(), format!("iothub {}", env!("CARGO_PKG_VERSION"))),
            ("uptime".into(), format!("{} seconds", context.uptime().as_secs())),
            ("clients/connected".into(), online.to_string()),
            ("clients/disconnected".into(), offline.to_string()),
            ("clients/total".into(), (online + offline).to_string()),
            ("clients/maximum".into(), get(&m.connections_maximum).to_string()),
            ("clients/expired".into(), get(&m.sessions_expired).to_string()),
            ("messages/received".into(), packets.to_string()),
            ("messages/sent".into(), sent.to_string()),
            ("publish/messages/received".into(), received.to_string()),
            ("publish/messages/sent".into(), sent.to_string()),
            ("publish/messages/dropped".into(), dropped.to_string()),
            ("bytes/received".into(), bytes.0.to_string()),
            ("bytes/sent".into(), bytes.1.to_string()),
            ("subscriptions/count".into(), context.router.subscription_count().to_string()),
            ("retained messages/count".into(), retained.to_string()),
            ("store/messages/count".into(), (queued + retained).to_string()),
            ("store/messages/bytes".into(), retained_bytes.to_string()),
        ];
        let values = [packets, sent, received, sent, bytes.0, bytes.1];
        for ((load, value), name) in loads.iter_mut().zip(values).zip(names) {
            if first {
                load.last = value;
                continue;
            }
            load.update(value, interval.as_secs_f64());
            for (average, (_, window)) in load.averages.iter().zip(WINDOWS) {
                topics.push((format!("load/{name}/{window}"), format!("{average:.2}")));
            }
        }
        first = false;
        for (topic, value) in topics {
            let topic = ByteString::from(format!("$SYS/broker/{topic}"));
            let message = Message::new(topic, Bytes::from(value), QoS::AtMostOnce, true);
            context.router.publish(&Arc::new(message), &mut routing);
        }
        routing.wake_all();
    }
}
