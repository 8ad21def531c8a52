//! Why a connection ended: one value per connection, logged once inside its span.
//!
//! Both the sans-IO session (a violation, DISCONNECT, keep-alive expiry) and the connection task
//! (socket errors, shutdown, takeover) end a connection with an `Exit`; this module knows nothing
//! about either of them.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use iothub_protocol::{DecodeError, EncodeError, ReasonCode};

/// Log lines of one kind allowed per second; past it they are counted, and the next line that
/// is allowed says how many were suppressed.
const LINES_PER_SECOND: u64 = 10;

/// A rate limit on one kind of log line, for what a storm of clients can repeat: malformed
/// packets, failed handshakes.
struct LogLimit {
    /// The second (since the process's first limited line) and the lines logged in it, packed
    /// as `second << 20 | lines`.
    window: AtomicU64,
    /// Lines suppressed since the last one logged.
    suppressed: AtomicU64,
}

static VIOLATIONS: LogLimit = LogLimit { window: AtomicU64::new(0), suppressed: AtomicU64::new(0) };
static HANDSHAKES: LogLimit = LogLimit { window: AtomicU64::new(0), suppressed: AtomicU64::new(0) };

impl LogLimit {
    /// `Some(lines suppressed before this one)` if this line may be logged.
    #[allow(clippy::disallowed_methods)] // Logging reads the clock at the edge.
    fn allow(&self) -> Option<u64> {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let second = START.get_or_init(std::time::Instant::now).elapsed().as_secs();
        let mut window = self.window.load(Ordering::Relaxed);
        loop {
            let (at, lines) = (window >> 20, window & 0xF_FFFF);
            if at == second && lines >= LINES_PER_SECOND {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            let next = if at == second { (at << 20) | (lines + 1) } else { (second << 20) | 1 };
            match self.window.compare_exchange_weak(window, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Some(self.suppressed.swap(0, Ordering::Relaxed)),
                Err(current) => window = current,
            }
        }
    }
}

/// Why a connection ended.
#[derive(Debug)]
pub enum Exit {
    /// The client sent DISCONNECT.
    Disconnect,
    /// The client sent a 5.0 DISCONNECT with a reason code other than 0x00 (0x04, or an error):
    /// close, and publish the will [MQTT-3.1.2-8].
    DisconnectWithWill(ReasonCode),
    /// The client closed the socket without DISCONNECT.
    PeerClosed,
    /// Reading or writing the socket failed.
    Io(io::Error),
    /// A packet for the client could not be encoded.
    Encode(EncodeError),
    /// The client broke the protocol; the error names the rule.
    Violation(DecodeError),
    /// The transport's handshake (TLS, the WebSocket upgrade) failed.
    Handshake(io::Error),
    /// The transport's handshake did not finish within `connect_timeout_secs`.
    HandshakeTimeout,
    /// No CONNECT within `connect_timeout_secs`.
    ConnectTimeout,
    /// Nothing received for 1.5 times the keep-alive [MQTT-3.1.2-24].
    KeepAliveTimeout,
    /// CONNECT refused with this CONNACK code.
    Refused(ReasonCode),
    /// A new connection with the same client identifier took the session [MQTT-3.1.4-2].
    TakenOver,
    /// The client did not drain its queue for `slow_subscriber_timeout_ms` while a publisher
    /// waited on it, and `queue_overflow = "disconnect"`.
    SlowSubscriber,
    /// The server is shutting down.
    Shutdown,
    /// An administrator disconnected the client (the admin API).
    AdminDisconnect,
    /// Re-authentication (5.0 enhanced authentication) failed.
    NotAuthorized,
    /// A 3.1.1 client published at QoS 1/2 while the durable store refused writes.
    StorageRefused,
    /// A 5.0 client published beyond `max_publish_rate` or `max_publish_bytes_rate`.
    MessageRateTooHigh,
    /// The client's address opened connections beyond `max_connection_rate_per_address`
    /// (found after a PROXY header; the refusal has its own rate-limited log line).
    RateLimited,
}

impl Exit {
    /// Logs the exit, once, in the connection's span.
    pub fn log(&self) {
        match self {
            Exit::Disconnect => tracing::info!("client disconnected"),
            Exit::DisconnectWithWill(ReasonCode::DisconnectWithWill) => {
                tracing::info!("client disconnected, asking for its will");
            }
            Exit::DisconnectWithWill(code) => {
                tracing::info!(?code, "client disconnected with an error code; its will is due");
            }
            Exit::PeerClosed => tracing::info!("connection closed by the client without DISCONNECT"),
            Exit::Io(error) => tracing::info!(%error, "connection lost"),
            Exit::Encode(error) => {
                tracing::warn!(%error, "closing connection: a packet could not be encoded")
            }
            Exit::Violation(error) => {
                if let Some(suppressed) = VIOLATIONS.allow() {
                    tracing::warn!(%error, suppressed, "closing connection: protocol violation");
                }
            }
            Exit::Handshake(error) => {
                if let Some(suppressed) = HANDSHAKES.allow() {
                    tracing::info!(%error, suppressed, "closing connection: transport handshake failed");
                }
            }
            Exit::HandshakeTimeout => {
                tracing::info!("closing connection: transport handshake not finished in time")
            }
            Exit::ConnectTimeout => tracing::info!("closing connection: no CONNECT in time"),
            Exit::KeepAliveTimeout => tracing::info!("closing connection: keep-alive expired"),
            Exit::Refused(code) => tracing::info!(?code, "connection refused"),
            Exit::TakenOver => {
                tracing::info!("closing connection: client identifier taken over by a new connection")
            }
            Exit::SlowSubscriber => tracing::warn!(
                "closing connection: the client did not read its messages within slow_subscriber_timeout_ms"
            ),
            Exit::Shutdown => tracing::debug!("closing connection: server shutting down"),
            Exit::AdminDisconnect => tracing::info!("closing connection: disconnected by an administrator"),
            Exit::NotAuthorized => tracing::info!("closing connection: re-authentication failed"),
            Exit::StorageRefused => tracing::warn!(
                "closing connection: a QoS 1/2 publication while the store refuses writes (is the disk full?)"
            ),
            Exit::MessageRateTooHigh => tracing::info!(
                "closing connection: publishing beyond server.max_publish_rate or max_publish_bytes_rate"
            ),
            Exit::RateLimited => tracing::debug!("connection closed: its address connects too often"),
        }
    }

    /// A Reason String for the server's DISCONNECT: what went wrong, for the person reading the
    /// client's log (never parsed by the client, 3.14.2.2.3).
    pub fn reason_string(&self) -> Option<String> {
        match self {
            Exit::Violation(error) => Some(error.to_string()),
            Exit::KeepAliveTimeout => Some("nothing received for 1.5 times the keep-alive".to_owned()),
            Exit::TakenOver => Some("another connection took over this client identifier".to_owned()),
            Exit::SlowSubscriber => {
                Some("messages not read within the server's slow_subscriber_timeout_ms".to_owned())
            }
            Exit::Shutdown => Some("the server is shutting down".to_owned()),
            Exit::AdminDisconnect => Some("disconnected by an administrator".to_owned()),
            Exit::NotAuthorized => Some("re-authentication failed".to_owned()),
            Exit::StorageRefused => Some("the broker's storage refuses writes".to_owned()),
            Exit::MessageRateTooHigh => Some("publishing faster than the server allows".to_owned()),
            _ => None,
        }
    }

    /// The MQTT 5.0 reason code a server sends in DISCONNECT for this exit, where it sends one.
    pub fn reason_code(&self) -> Option<ReasonCode> {
        match self {
            Exit::Violation(error) => Some(error.reason_code()),
            Exit::KeepAliveTimeout => Some(ReasonCode::KeepAliveTimeout),
            Exit::TakenOver => Some(ReasonCode::SessionTakenOver),
            Exit::SlowSubscriber => Some(ReasonCode::QuotaExceeded),
            Exit::Shutdown => Some(ReasonCode::ServerShuttingDown),
            Exit::AdminDisconnect => Some(ReasonCode::AdministrativeAction),
            Exit::NotAuthorized => Some(ReasonCode::NotAuthorized),
            Exit::StorageRefused => Some(ReasonCode::QuotaExceeded),
            // 0x96 is a DISCONNECT reason code only (table 2-6; PUBACK and PUBREC may not carry
            // it, 3.4.2.1 and 3.5.2.1).
            Exit::MessageRateTooHigh => Some(ReasonCode::MessageRateTooHigh),
            Exit::Encode(_) => Some(ReasonCode::ImplementationSpecificError),
            Exit::Disconnect
            | Exit::DisconnectWithWill(_)
            | Exit::PeerClosed
            | Exit::Io(_)
            | Exit::Handshake(_)
            | Exit::HandshakeTimeout
            | Exit::ConnectTimeout
            | Exit::RateLimited
            | Exit::Refused(_) => None,
        }
    }
}
