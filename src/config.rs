//! Configuration: defaults, then a TOML file, then `IOTHUB_*` environment variables, then
//! command-line overrides, validated into typed settings.
//!
//! Every key is declared once in `SCHEMA`; anything not declared there is refused with a message
//! that names the key and where it came from. This module reads files and the environment but
//! starts nothing.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::mailbox::QueueOverflow;

/// How a shared subscription picks the member that receives a message
/// (`server.shared_subscription_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SharedStrategy {
    /// Each member in turn.
    #[default]
    RoundRobin,
    /// A member at random.
    Random,
    /// The same member until it leaves or goes offline.
    Sticky,
    /// A member chosen by the publisher's client identifier, so that one publisher's messages
    /// go to one member.
    HashClientId,
}

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[server]`: listeners and protocol limits.
    pub server: ServerConfig,
    /// `[auth]`: authentication (parsed and validated; not yet available).
    pub auth: AuthConfig,
    /// `[tls]`: the certificate and key of `tls://` and `wss://` listeners, and client
    /// certificates.
    pub tls: TlsConfig,
    /// `[storage]`: persistence backend.
    pub storage: StorageConfig,
    /// `[logging]`: log level and format.
    pub logging: LoggingConfig,
    /// `[sys]`: the `$SYS` topics.
    pub sys: SysConfig,
    /// `[admin]`: the admin HTTP listener (metrics, health, the admin API).
    pub admin: AdminConfig,
}

/// `[sys]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SysConfig {
    /// Seconds between publications of the `$SYS` topics; 0 turns them off.
    pub interval_secs: u64,
}

impl Default for SysConfig {
    fn default() -> SysConfig {
        SysConfig { interval_secs: 10 }
    }
}

/// `[admin]` settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// `host:port` of the admin HTTP listener; unset or empty: no admin listener.
    pub listen_address: Option<String>,
    /// The bearer token `/api/v1/*` requires.
    pub token: Option<String>,
    /// A file holding the token (its first line), instead of `token`.
    pub token_file: Option<String>,
    /// Whether the admin listener speaks HTTPS with the `[tls]` certificate and key.
    pub tls: bool,
}

/// `[server]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Listener URLs such as `tcp://0.0.0.0:1883`.
    pub listen_addresses: Vec<String>,
    /// Most simultaneous connections over all listeners, at most 100,000,000; 0 means no limit
    /// but the OS's.
    pub max_connections: usize,
    /// Seconds an offline persistent session is kept; 0 keeps it until the server stops.
    pub session_timeout_secs: u64,
    /// Longest keep-alive a client may ask for, in seconds; longer requests get CONNACK 0x02
    /// (as Mosquitto's `max_keepalive`). Keep-alive 0 (off) is always allowed.
    pub keep_alive_timeout_secs: u64,
    /// Largest packet accepted, in bytes, fixed header included.
    pub max_packet_size: usize,
    /// Most retained messages held; 0 means no limit.
    pub retained_message_limit: usize,
    /// Outbound QoS 1/2 messages sent to one client and not yet acknowledged.
    pub max_inflight_messages: usize,
    /// Messages queued per session beyond the inflight window.
    pub max_queued_messages: usize,
    /// Encoded bytes (topic, header and payload) queued per session; 0 means no byte limit.
    pub max_queued_bytes: usize,
    /// Most subscriptions one session may hold; 0 means no limit.
    pub max_subscriptions: usize,
    /// How long a publisher's acknowledgement may wait for room in a full subscriber queue
    /// before the slow subscriber pays by `queue_overflow`, in milliseconds.
    pub slow_subscriber_timeout_ms: u64,
    /// What a slow subscriber pays: "disconnect", "drop_oldest" or "drop_newest".
    pub queue_overflow: String,
    /// Seconds a new connection has to send CONNECT.
    pub connect_timeout_secs: u64,
    /// Highest Topic Alias a 5.0 client may send (told in CONNACK); 0 turns inbound aliases off.
    pub max_topic_alias: u64,
    /// Most QoS 1/2 PUBLISHes a 5.0 client may have unacknowledged at once (the server's
    /// Receive Maximum, told in CONNACK when below 65,535); more get DISCONNECT 0x93.
    pub receive_maximum: u64,
    /// How a shared subscription picks the member a message goes to: "round_robin",
    /// "random", "sticky" or "hash_client_id".
    pub shared_subscription_strategy: String,
    /// Whether clients may publish retained messages (Retain Available in CONNACK; as
    /// Mosquitto's `retain_available`). Off: a retained PUBLISH or will gets 0x9A.
    pub retain_available: bool,
    /// Whether clients may make shared subscriptions (Shared Subscription Available in
    /// CONNACK). Off: a 5.0 client's `$share/` SUBSCRIBE gets DISCONNECT 0x9E, a 3.1.1 one 0x80.
    pub shared_subscription_available: bool,
    /// Seconds a graceful shutdown waits for connections to finish.
    pub shutdown_timeout_secs: u64,
    /// New connections each listener accepts per second (a token bucket holding one second's
    /// worth); more are closed at accept. 0 turns it off. A listener URL's
    /// `?max_connection_rate=N` overrides it for that listener.
    pub max_connection_rate: u64,
    /// New connections one source address may open per second, over all listeners (a token
    /// bucket holding one second's worth); more are closed at accept, or after the PROXY header
    /// on a `proxy_protocol` listener. 0 turns it off.
    pub max_connection_rate_per_address: u64,
    /// PUBLISH packets one client may send per second (a token bucket holding one second's
    /// worth); 0 turns it off. Beyond it a 5.0 client gets DISCONNECT 0x96 and a 3.1.1 client is
    /// no longer read until its bucket refills.
    pub max_publish_rate: u64,
    /// PUBLISH bytes (whole packets) one client may send per second, as `max_publish_rate`; 0
    /// turns it off.
    pub max_publish_bytes_rate: u64,
    /// CONNECTs of one client identifier within `flapping_window_secs` that ban it for
    /// `flapping_ban_secs` (CONNACK 0x8A, 3.1.1: 0x05); 0 (the default) turns flapping
    /// detection off.
    pub flapping_max_connects: u64,
    /// The window in which `flapping_max_connects` CONNECTs ban a client identifier, in seconds.
    pub flapping_window_secs: u64,
    /// How long a flapping client identifier is banned, in seconds.
    pub flapping_ban_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            listen_addresses: vec!["tcp://0.0.0.0:1883".to_owned()],
            max_connections: 0,
            session_timeout_secs: 300,
            keep_alive_timeout_secs: 65_535,
            max_packet_size: 1_048_576,
            retained_message_limit: 10_000,
            max_inflight_messages: 20,
            max_queued_messages: 1000,
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
            max_subscriptions: 10_000,
            slow_subscriber_timeout_ms: 2000,
            queue_overflow: "disconnect".to_owned(),
            connect_timeout_secs: 10,
            max_topic_alias: 10,
            receive_maximum: 65_535,
            shared_subscription_strategy: "round_robin".to_owned(),
            retain_available: true,
            shared_subscription_available: true,
            shutdown_timeout_secs: 5,
            max_connection_rate: 0,
            max_connection_rate_per_address: 0,
            max_publish_rate: 0,
            max_publish_bytes_rate: 0,
            flapping_max_connects: 0,
            flapping_window_secs: 60,
            flapping_ban_secs: 300,
        }
    }
}

/// Default `max_queued_bytes`: 16 MiB of encoded packets per session, so that the queues of
/// many sessions cannot hold 1,000 maximum-size packets each.
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 16 * 1024 * 1024;

impl ServerConfig {
    /// The `queue_overflow` policy; `None` if the text names none.
    pub fn overflow_policy(&self) -> Option<QueueOverflow> {
        match self.queue_overflow.as_str() {
            "disconnect" => Some(QueueOverflow::Disconnect),
            "drop_oldest" => Some(QueueOverflow::DropOldest),
            "drop_newest" => Some(QueueOverflow::DropNewest),
            _ => None,
        }
    }

    /// The `shared_subscription_strategy`; `None` if the text names none.
    pub fn shared_strategy(&self) -> Option<SharedStrategy> {
        match self.shared_subscription_strategy.as_str() {
            "round_robin" => Some(SharedStrategy::RoundRobin),
            "random" => Some(SharedStrategy::Random),
            "sticky" => Some(SharedStrategy::Sticky),
            "hash_client_id" => Some(SharedStrategy::HashClientId),
            _ => None,
        }
    }

    /// How long a publisher's acknowledgement may wait for room in a subscriber's queue.
    pub fn slow_subscriber_timeout(&self) -> Duration {
        Duration::from_millis(self.slow_subscriber_timeout_ms)
    }

    /// How long an offline persistent session is kept; `None` for as long as the server runs.
    pub fn session_timeout(&self) -> Option<Duration> {
        (self.session_timeout_secs != 0).then(|| Duration::from_secs(self.session_timeout_secs))
    }

    /// Every integer key with the range the server can honour: each one is given to a
    /// semaphore, a clock, a decoder or a counter that has limits of its own.
    fn integer_ranges(&self) -> Vec<IntegerRange> {
        let range = |key, value, min, max, note| IntegerRange { key, value, min, max, note };
        vec![
            range(
                "server.max_connections",
                wide(self.max_connections),
                0,
                wide(MAX_CONNECTIONS),
                "0 means no limit",
            ),
            range("server.session_timeout_secs", self.session_timeout_secs, 0, MAX_SECONDS, "ten years"),
            range("server.keep_alive_timeout_secs", self.keep_alive_timeout_secs, 1, 65_535, ""),
            // The fixed header's largest remaining length [MQTT-2.2.3], plus the header itself.
            range("server.max_packet_size", wide(self.max_packet_size), 16, 268_435_460, "in bytes"),
            range("server.retained_message_limit", wide(self.retained_message_limit), 0, MAX_INTEGER, ""),
            // Packet identifiers are 16 bits [MQTT-2.3.1-1].
            range("server.max_inflight_messages", wide(self.max_inflight_messages), 1, 65_535, ""),
            range("server.max_queued_messages", wide(self.max_queued_messages), 1, MAX_INTEGER, ""),
            range("server.max_queued_bytes", wide(self.max_queued_bytes), 0, MAX_INTEGER, "0 means no limit"),
            range(
                "server.max_subscriptions",
                wide(self.max_subscriptions),
                0,
                MAX_INTEGER,
                "0 means no limit",
            ),
            range(
                "server.slow_subscriber_timeout_ms",
                self.slow_subscriber_timeout_ms,
                0,
                3_600_000,
                "one hour",
            ),
            range("server.connect_timeout_secs", self.connect_timeout_secs, 1, 3600, "one hour"),
            // Topic Alias and Receive Maximum are two-byte integers (3.3.2.3.4, 3.2.2.3.3).
            range("server.max_topic_alias", self.max_topic_alias, 0, 65_535, "0 turns aliases off"),
            range("server.receive_maximum", self.receive_maximum, 1, 65_535, ""),
            range("server.shutdown_timeout_secs", self.shutdown_timeout_secs, 0, MAX_SECONDS, "ten years"),
            range("server.max_connection_rate", self.max_connection_rate, 0, MAX_RATE, "0 turns it off"),
            range(
                "server.max_connection_rate_per_address",
                self.max_connection_rate_per_address,
                0,
                MAX_RATE,
                "0 turns it off",
            ),
            range("server.max_publish_rate", self.max_publish_rate, 0, MAX_RATE, "0 turns it off"),
            range(
                "server.max_publish_bytes_rate",
                self.max_publish_bytes_rate,
                0,
                MAX_INTEGER,
                "0 turns it off",
            ),
            range("server.flapping_max_connects", self.flapping_max_connects, 0, MAX_RATE, "0 turns it off"),
            range("server.flapping_window_secs", self.flapping_window_secs, 1, MAX_SECONDS, "ten years"),
            range("server.flapping_ban_secs", self.flapping_ban_secs, 1, MAX_SECONDS, "ten years"),
        ]
    }
}

/// `[auth]` settings. Authentication arrives in a later release; until then enabling it stops
/// start-up rather than running an open broker by surprise.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Whether clients must authenticate.
    pub enabled: bool,
    /// With `enabled`, whether a client without a username is let in; false unless set.
    pub allow_anonymous: bool,
    /// Failed logins from one address or client identifier after which it is refused without
    /// a check, until `throttle_secs` pass; 0 (the default): no throttling, since clients behind
    /// one address (a NAT, a gateway) would pay for one bad neighbour.
    pub throttle_failures: u32,
    /// How long a throttled address or client identifier waits, from its last failure.
    pub throttle_secs: u64,
    /// Authentication backend: "none" or "password_file".
    pub backend: String,
    /// Mosquitto-format password file, for the "password_file" backend.
    pub password_file: Option<String>,
    /// Mosquitto-format ACL file.
    pub acl_file: Option<String>,
    /// Shared secret of HS256 JSON Web Tokens sent as passwords.
    pub jwt_secret: Option<String>,
    /// PEM RSA public key of RS256 JSON Web Tokens sent as passwords.
    pub jwt_public_key_file: Option<String>,
    /// The token claim that is the client's username.
    pub jwt_username_claim: String,
    /// The token claim that is the client's ACL.
    pub jwt_acl_claim: String,
    /// Whether a token without `exp` is refused.
    pub jwt_require_exp: bool,
    /// The `aud` a token must carry, when set.
    pub jwt_audience: Option<String>,
    /// The `iss` a token must carry, when set.
    pub jwt_issuer: Option<String>,
    /// HTTP hook that decides logins: a POST per CONNECT.
    pub http_url: Option<String>,
    /// HTTP hook that decides topic access: a POST per PUBLISH topic and SUBSCRIBE filter not
    /// in its cache.
    pub http_acl_url: Option<String>,
    /// How long the hook may take to answer, in milliseconds; past it, refused.
    pub http_timeout_ms: u64,
    /// How long an ACL answer of the hook is reused, in seconds; 0: never.
    pub http_cache_secs: u64,
    /// Most ACL answers kept at once.
    pub http_cache_entries: usize,
}

impl AuthConfig {
    /// Whether JSON Web Tokens are configured.
    pub fn jwt_configured(&self) -> bool {
        self.jwt_secret.is_some() || self.jwt_public_key_file.is_some()
    }

    /// Whether the HTTP hook decides anything.
    pub fn hook_configured(&self) -> bool {
        self.http_url.is_some() || self.http_acl_url.is_some()
    }
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            enabled: false,
            allow_anonymous: false,
            throttle_failures: 0,
            throttle_secs: 10,
            backend: "none".to_owned(),
            password_file: None,
            acl_file: None,
            jwt_secret: None,
            jwt_public_key_file: None,
            jwt_username_claim: "username".to_owned(),
            jwt_acl_claim: "acl".to_owned(),
            jwt_require_exp: true,
            jwt_audience: None,
            jwt_issuer: None,
            http_url: None,
            http_acl_url: None,
            http_timeout_ms: 2000,
            http_cache_secs: 60,
            http_cache_entries: 100_000,
        }
    }
}

/// `[tls]` settings, shared by every `tls://` (alias `mqtts://`) and `wss://` listener.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, the server's own certificate first.
    pub cert_file: Option<String>,
    /// PEM private key of that certificate: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    pub key_file: Option<String>,
    /// PEM bundle of the CAs that verify client certificates; without it no client certificate
    /// is asked for.
    pub ca_file: Option<String>,
    /// Whether a client must present a certificate that `ca_file` verifies.
    pub require_client_cert: bool,
    /// Whether the Common Name of a verified client certificate becomes the client's username,
    /// in place of the one in CONNECT.
    pub use_identity_as_username: bool,
}

/// `[storage]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Storage backend: "memory" (nothing survives a restart) or "redb" (durable).
    pub backend: String,
    /// Directory of the durable store, created if missing; "data" when not set.
    pub path: Option<String>,
    /// What a corrupt or unreadable store does at start-up: "set_aside" (rename it with a
    /// timestamp, log loudly, start empty) or "refuse" (stop with a message).
    pub on_corruption: String,
}

impl Default for StorageConfig {
    fn default() -> StorageConfig {
        StorageConfig { backend: "memory".to_owned(), path: None, on_corruption: "set_aside".to_owned() }
    }
}

impl StorageConfig {
    /// The directory of the durable store.
    pub fn dir(&self) -> std::path::PathBuf {
        std::path::PathBuf::from(self.path.as_deref().unwrap_or("data"))
    }
}

/// `[logging]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingConfig {
    /// One of trace, debug, info, warn, error.
    pub level: String,
    /// "text" or "json".
    pub format: String,
}

impl Default for LoggingConfig {
    fn default() -> LoggingConfig {
        LoggingConfig { level: "info".to_owned(), format: "text".to_owned() }
    }
}

/// A configuration problem, for people: where it came from, which key, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where the value came from: a file, an environment variable, a flag.
    pub origin: String,
    /// The key, as `section.key`, or empty for the file as a whole.
    pub key: String,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.origin, self.problem)
        } else {
            write!(f, "{}: `{}`: {}", self.origin, self.key, self.problem)
        }
    }
}

impl std::error::Error for ConfigError {}

fn error(origin: &str, key: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError { origin: origin.to_owned(), key: key.to_owned(), problem: problem.into() }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Uint,
    Bool,
    Str,
    StrList,
}

/// Every configuration key and its type.
const SCHEMA: &[(&str, &str, Kind)] = &[
    ("server", "listen_addresses", Kind::StrList),
    ("server", "max_connections", Kind::Uint),
    ("server", "session_timeout_secs", Kind::Uint),
    ("server", "keep_alive_timeout_secs", Kind::Uint),
    ("server", "max_packet_size", Kind::Uint),
    ("server", "retained_message_limit", Kind::Uint),
    ("server", "max_inflight_messages", Kind::Uint),
    ("server", "max_queued_messages", Kind::Uint),
    ("server", "max_queued_bytes", Kind::Uint),
    ("server", "max_subscriptions", Kind::Uint),
    ("server", "slow_subscriber_timeout_ms", Kind::Uint),
    ("server", "queue_overflow", Kind::Str),
    ("server", "connect_timeout_secs", Kind::Uint),
    ("server", "max_topic_alias", Kind::Uint),
    ("server", "receive_maximum", Kind::Uint),
    ("server", "shared_subscription_strategy", Kind::Str),
    ("server", "retain_available", Kind::Bool),
    ("server", "shared_subscription_available", Kind::Bool),
    ("server", "shutdown_timeout_secs", Kind::Uint),
    ("server", "max_connection_rate", Kind::Uint),
    ("server", "max_connection_rate_per_address", Kind::Uint),
    ("server", "max_publish_rate", Kind::Uint),
    ("server", "max_publish_bytes_rate", Kind::Uint),
    ("server", "flapping_max_connects", Kind::Uint),
    ("server", "flapping_window_secs", Kind::Uint),
    ("server", "flapping_ban_secs", Kind::Uint),
    ("auth", "enabled", Kind::Bool),
    ("auth", "allow_anonymous", Kind::Bool),
    ("auth", "throttle_failures", Kind::Uint),
    ("auth", "throttle_secs", Kind::Uint),
    ("auth", "backend", Kind::Str),
    ("auth", "password_file", Kind::Str),
    ("auth", "acl_file", Kind::Str),
    ("auth", "jwt_secret", Kind::Str),
    ("auth", "jwt_public_key_file", Kind::Str),
    ("auth", "jwt_username_claim", Kind::Str),
    ("auth", "jwt_acl_claim", Kind::Str),
    ("auth", "jwt_require_exp", Kind::Bool),
    ("auth", "jwt_audience", Kind::Str),
    ("auth", "jwt_issuer", Kind::Str),
    ("auth", "http_url", Kind::Str),
    ("auth", "http_acl_url", Kind::Str),
    ("auth", "http_timeout_ms", Kind::Uint),
    ("auth", "http_cache_secs", Kind::Uint),
    ("auth", "http_cache_entries", Kind::Uint),
    ("tls", "cert_file", Kind::Str),
    ("tls", "key_file", Kind::Str),
    ("tls", "ca_file", Kind::Str),
    ("tls", "require_client_cert", Kind::Bool),
    ("tls", "use_identity_as_username", Kind::Bool),
    ("storage", "backend", Kind::Str),
    ("storage", "path", Kind::Str),
    ("storage", "on_corruption", Kind::Str),
    ("sys", "interval_secs", Kind::Uint),
    ("admin", "listen_address", Kind::Str),
    ("admin", "token", Kind::Str),
    ("admin", "token_file", Kind::Str),
    ("admin", "tls", Kind::Bool),
    ("logging", "level", Kind::Str),
    ("logging", "format", Kind::Str),
];

fn kind_of(section: &str, key: &str) -> Option<Kind> {
    SCHEMA.iter().find(|(s, k, _)| *s == section && *k == key).map(|(_, _, kind)| *kind)
}

fn check_value(origin: &str, name: &str, kind: Kind, value: &toml::Value) -> Result<(), ConfigError> {
    let ok = match (kind, value) {
        (Kind::Uint, toml::Value::Integer(i)) => *i >= 0,
        (Kind::Bool, toml::Value::Boolean(_)) | (Kind::Str, toml::Value::String(_)) => true,
        (Kind::StrList, toml::Value::Array(items)) => items.iter().all(toml::Value::is_str),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(error(origin, name, format!("expected {}, found {value}", describe(kind))))
    }
}

fn describe(kind: Kind) -> &'static str {
    match kind {
        Kind::Uint => "a non-negative integer",
        Kind::Bool => "true or false",
        Kind::Str => "a string",
        Kind::StrList => "a list of strings",
    }
}

/// Turns the text of an environment variable or a flag into the value a TOML file would give,
/// then checks it as a file's value is checked, so that every layer accepts the same values.
/// Integers are TOML's: 64-bit signed, of which the keys take the non-negative half.
fn parse_text(origin: &str, name: &str, kind: Kind, text: &str) -> Result<toml::Value, ConfigError> {
    let bad = || error(origin, name, format!("expected {}, found {text:?}", describe(kind)));
    let value = match kind {
        Kind::Uint => {
            let digits = text.trim();
            match digits.parse::<i64>() {
                Ok(number) => toml::Value::Integer(number),
                Err(_) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                    return Err(error(
                        origin,
                        name,
                        format!("{digits} is out of range: integers go up to {}", i64::MAX),
                    ));
                }
                Err(_) => return Err(bad()),
            }
        }
        Kind::Bool => toml::Value::Boolean(text.trim().parse().map_err(|_| bad())?),
        Kind::Str => toml::Value::String(text.to_owned()),
        Kind::StrList => toml::Value::Array(
            text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| s.to_owned().into()).collect(),
        ),
    };
    check_value(origin, name, kind, &value)?;
    Ok(value)
}

/// Reports a TOML syntax error with its line, naming the key when the error is on a
/// `key = value` line of a known section: a number too large for TOML's 64-bit integers is such
/// an error, and is reported like any other bad value.
fn syntax_error(origin: &str, text: &str, e: &toml::de::Error) -> ConfigError {
    let Some(before) = e.span().and_then(|span| text.get(..span.start)) else {
        return error(origin, "", e.message().to_owned());
    };
    let line_number = before.matches('\n').count() + 1;
    let line = text.lines().nth(line_number - 1).unwrap_or_default();
    let earlier_lines = before.rsplit_once('\n').map_or("", |(earlier, _)| earlier);
    let section = earlier_lines.lines().rev().find_map(|l| {
        l.trim().strip_prefix('[').and_then(|l| l.split_once(']')).map(|(name, _)| name.trim())
    });
    let key = line.split_once('=').map(|(key, _)| key.trim());
    let name = match (section, key) {
        (Some(section), Some(key)) if kind_of(section, key).is_some() => format!("{section}.{key}"),
        _ => String::new(),
    };
    error(origin, &name, format!("{} (line {line_number})", e.message()))
}

/// Collects the layers of configuration, then validates them into a `Config`.
#[derive(Debug, Default)]
pub struct ConfigBuilder {
    /// The merged `section -> key -> value` table so far.
    table: toml::Table,
}

impl ConfigBuilder {
    /// Starts from the built-in defaults.
    pub fn new() -> ConfigBuilder {
        ConfigBuilder::default()
    }

    /// Layers a TOML document on top; `origin` names it in errors.
    pub fn toml(mut self, origin: &str, text: &str) -> Result<ConfigBuilder, ConfigError> {
        let doc: toml::Table = text.parse().map_err(|e| syntax_error(origin, text, &e))?;
        for (section, body) in doc {
            let toml::Value::Table(entries) = body else {
                return Err(error(origin, &section, "expected a [section] table"));
            };
            if !SCHEMA.iter().any(|(s, _, _)| *s == section) {
                return Err(error(origin, &section, "unknown section"));
            }
            for (key, value) in entries {
                let name = format!("{section}.{key}");
                let kind = kind_of(&section, &key).ok_or_else(|| error(origin, &name, "unknown key"))?;
                check_value(origin, &name, kind, &value)?;
                self.set(&section, &key, value);
            }
        }
        Ok(self)
    }

    /// Layers a TOML file on top.
    pub fn file(self, path: &Path) -> Result<ConfigBuilder, ConfigError> {
        let origin = format!("config file {}", path.display());
        let text = std::fs::read_to_string(path).map_err(|e| error(&origin, "", e.to_string()))?;
        self.toml(&origin, &text)
    }

    /// Layers `IOTHUB_<SECTION>_<KEY>` variables on top, e.g. `IOTHUB_SERVER_MAX_CONNECTIONS`.
    /// Lists are comma-separated. An `IOTHUB_` variable that names no key is refused.
    pub fn env(
        mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<ConfigBuilder, ConfigError> {
        for (var, text) in vars {
            let Some(rest) = var.strip_prefix("IOTHUB_") else {
                continue;
            };
            let origin = format!("environment variable {var}");
            let lower = rest.to_ascii_lowercase();
            let found = SCHEMA.iter().find(|(s, k, _)| lower == format!("{s}_{k}"));
            let Some((section, key, kind)) = found else {
                return Err(error(
                    &origin,
                    "",
                    "names no configuration key (expected IOTHUB_<SECTION>_<KEY>)",
                ));
            };
            let value = parse_text(&origin, &format!("{section}.{key}"), *kind, &text)?;
            self.set(section, key, value);
        }
        Ok(self)
    }

    /// Layers a `section.key=value` override from the command line on top.
    pub fn set_flag(mut self, flag: &str, assignment: &str) -> Result<ConfigBuilder, ConfigError> {
        let origin = format!("flag {flag}");
        let (name, text) =
            assignment.split_once('=').ok_or_else(|| error(&origin, "", "expected section.key=value"))?;
        let (section, key) = name.split_once('.').ok_or_else(|| error(&origin, name, "unknown key"))?;
        let kind = kind_of(section, key).ok_or_else(|| error(&origin, name, "unknown key"))?;
        let value = parse_text(&origin, name, kind, text)?;
        self.set(section, key, value);
        Ok(self)
    }

    fn set(&mut self, section: &str, key: &str, value: toml::Value) {
        let entry = self.table.entry(section).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let toml::Value::Table(entries) = entry {
            entries.insert(key.to_owned(), value);
        }
    }

    /// Validates the layers into a `Config`.
    pub fn build(self) -> Result<Config, ConfigError> {
        let config: Config = toml::Value::Table(self.table)
            .try_into()
            .map_err(|e: toml::de::Error| error("configuration", "", e.message().to_owned()))?;
        config.validate()?;
        Ok(config)
    }
}

/// Largest number of seconds any duration setting accepts: ten years.
const MAX_SECONDS: u64 = 10 * 365 * 24 * 3600;

/// Largest `server.max_connections`: far more than one process can hold open (Linux caps open
/// files at 2^30), and small enough for the connection semaphore, which counts at most
/// `Semaphore::MAX_PERMITS` permits and panics beyond.
const MAX_CONNECTIONS: usize = 100_000_000;
const _: () = assert!(MAX_CONNECTIONS <= tokio::sync::Semaphore::MAX_PERMITS);

/// Largest rate in events per second (connections, PUBLISH packets, CONNECTs in a flapping
/// window): a million, far beyond what one listener or client can reach.
const MAX_RATE: u64 = 1_000_000;

/// Largest value of a key that is only ever compared with a count or a byte total, so that any
/// integer a configuration layer can hold is honoured.
const MAX_INTEGER: u64 = i64::MAX.unsigned_abs();

/// One integer key and the range it must fall in.
struct IntegerRange {
    /// The key, as `section.key`.
    key: &'static str,
    /// The configured value.
    value: u64,
    /// The smallest value allowed.
    min: u64,
    /// The largest value allowed.
    max: u64,
    /// What a reader of the error should know about the range, or empty.
    note: &'static str,
}

impl IntegerRange {
    fn check(&self) -> Result<(), ConfigError> {
        if (self.min..=self.max).contains(&self.value) {
            return Ok(());
        }
        let (min, max, value, note) = (self.min, self.max, self.value, self.note);
        let range = if min == 0 { format!("at most {max}") } else { format!("between {min} and {max}") };
        let note = if note.is_empty() { String::new() } else { format!(" ({note})") };
        Err(error("configuration", self.key, format!("must be {range}{note}, found {value}")))
    }
}

/// A `usize` setting as a `u64`; no supported platform has a wider `usize`.
fn wide(value: usize) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

/// The transport of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain MQTT over TCP: `tcp://` (alias `mqtt://`).
    Tcp,
    /// MQTT over TLS: `tls://` (aliases `mqtts://`, `ssl://`).
    Tls,
    /// MQTT over WebSocket: `ws://`.
    Ws,
    /// MQTT over WebSocket over TLS: `wss://`.
    Wss,
}

impl Scheme {
    /// Whether the listener needs `[tls]`'s certificate and key.
    pub fn is_tls(self) -> bool {
        matches!(self, Scheme::Tls | Scheme::Wss)
    }

    /// The scheme's canonical name.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Tcp => "tcp",
            Scheme::Tls => "tls",
            Scheme::Ws => "ws",
            Scheme::Wss => "wss",
        }
    }
}

/// The HTTP path a WebSocket listener upgrades when its URL names none.
pub const DEFAULT_WEBSOCKET_PATH: &str = "/mqtt";

/// A listener address taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddress {
    /// Transport.
    pub scheme: Scheme,
    /// `host:port` to bind.
    pub address: String,
    /// The HTTP path of a WebSocket listener (`/mqtt` unless the URL names one); `None` for
    /// the others.
    pub path: Option<String>,
    /// What the URL's query string sets for this listener alone.
    pub settings: ListenerSettings,
}

/// The settings of one listener, from its URL's query string
/// (`tcp://0.0.0.0:1883?max_connections=100&proxy_protocol=true`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenerSettings {
    /// Most simultaneous connections of this listener (`max_connections=N`), within the
    /// server-wide `server.max_connections`; 0: no limit of its own.
    pub max_connections: usize,
    /// New connections per second this listener accepts (`max_connection_rate=N`, 0: off);
    /// `None`: `server.max_connection_rate`.
    pub max_connection_rate: Option<u64>,
    /// Whether every connection starts with a PROXY protocol header, version 1 or 2
    /// (`proxy_protocol=true`), whose source address is the client's.
    pub proxy_protocol: bool,
}

/// The settings a listener URL's query string may hold.
const LISTENER_SETTINGS: &str = "max_connections, max_connection_rate, proxy_protocol";

/// Reads a listener URL's query string: `name=value` pairs joined by `&`, each named once.
fn parse_listener_settings(query: &str) -> Result<ListenerSettings, String> {
    let mut settings = ListenerSettings::default();
    let mut seen: Vec<&str> = Vec::new();
    for pair in query.split('&') {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("listener setting {pair:?} is not name=value ({LISTENER_SETTINGS})"))?;
        if seen.contains(&name) {
            return Err(format!("listener setting {name} is given twice"));
        }
        seen.push(name);
        let number = |max: u64| -> Result<u64, String> {
            value
                .parse::<u64>()
                .ok()
                .filter(|n| value.bytes().all(|b| b.is_ascii_digit()) && *n <= max)
                .ok_or_else(|| format!("{name}={value:?}: expected an integer from 0 to {max}"))
        };
        match name {
            "max_connections" => {
                let limit = number(wide(MAX_CONNECTIONS))?;
                settings.max_connections = usize::try_from(limit).unwrap_or(MAX_CONNECTIONS);
            }
            "max_connection_rate" => settings.max_connection_rate = Some(number(MAX_RATE)?),
            "proxy_protocol" => {
                settings.proxy_protocol = match value {
                    "true" => true,
                    "false" => false,
                    _ => return Err(format!("proxy_protocol={value:?}: expected true or false")),
                };
            }
            _ => return Err(format!("unknown listener setting {name:?}; use {LISTENER_SETTINGS}")),
        }
    }
    Ok(settings)
}

/// Splits `scheme://host:port[/path][?settings]`: `tcp://` (or `mqtt://`), `tls://` (or
/// `mqtts://`, `ssl://`), `ws://` and `wss://`; only WebSocket listeners take a path. The query
/// string holds the listener's own settings (`ListenerSettings`).
pub fn parse_listen_address(url: &str) -> Result<ListenAddress, String> {
    let (url, settings) = match url.split_once('?') {
        Some((url, query)) => (url, parse_listener_settings(query)?),
        None => (url, ListenerSettings::default()),
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("expected scheme://host:port, e.g. tcp://0.0.0.0:1883 or ws://0.0.0.0:8080/mqtt")?;
    let scheme = match scheme {
        "tcp" | "mqtt" => Scheme::Tcp,
        "tls" | "mqtts" | "ssl" => Scheme::Tls,
        "ws" => Scheme::Ws,
        "wss" => Scheme::Wss,
        other => {
            return Err(format!("unknown scheme {other:?}; use tcp://, tls://, mqtts://, ws:// or wss://"))
        }
    };
    let (address, path) = match rest.find('/') {
        Some(at) => (&rest[..at], Some(&rest[at..])),
        None => (rest, None),
    };
    let path = match (scheme, path) {
        (Scheme::Ws | Scheme::Wss, path) => Some(path.unwrap_or(DEFAULT_WEBSOCKET_PATH).to_owned()),
        (_, None) => None,
        (_, Some(path)) => {
            return Err(format!(
                "a {}:// listener takes no path ({path:?}); only ws:// and wss:// do",
                scheme.name()
            ));
        }
    };
    let (host, port) = address.rsplit_once(':').ok_or("missing :port")?;
    if host.is_empty() {
        return Err("missing host (use 0.0.0.0 for all interfaces)".to_owned());
    }
    port.parse::<u16>().map_err(|_| format!("port {port:?} is not a number between 0 and 65535"))?;
    Ok(ListenAddress { scheme, address: address.to_owned(), path, settings })
}

impl Config {
    /// The configuration built from defaults alone.
    pub fn defaults() -> Config {
        Config::default()
    }

    /// Checks values that the types alone do not rule out.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let origin = "configuration";
        let s = &self.server;
        if s.listen_addresses.is_empty() {
            return Err(error(origin, "server.listen_addresses", "at least one listener is required"));
        }
        let mut tls_listener = None;
        for url in &s.listen_addresses {
            let address = parse_listen_address(url)
                .map_err(|problem| error(origin, "server.listen_addresses", format!("{url:?}: {problem}")))?;
            if address.scheme.is_tls() {
                tls_listener.get_or_insert(url.as_str());
            }
        }
        self.validate_tls(tls_listener)?;
        for range in self.integer_ranges() {
            range.check()?;
        }
        self.validate_sections()
    }

    /// Every integer key's value and range, in `SCHEMA` order: the server's, then the
    /// authentication throttle's.
    fn integer_ranges(&self) -> Vec<IntegerRange> {
        let mut ranges = self.server.integer_ranges();
        let auth = &self.auth;
        ranges.push(IntegerRange {
            key: "auth.throttle_failures",
            value: u64::from(auth.throttle_failures),
            min: 0,
            max: 1_000_000,
            note: "0 turns throttling off",
        });
        ranges.push(IntegerRange {
            key: "auth.throttle_secs",
            value: auth.throttle_secs,
            min: 0,
            max: MAX_SECONDS,
            note: "ten years",
        });
        ranges.push(IntegerRange {
            key: "auth.http_timeout_ms",
            value: auth.http_timeout_ms,
            min: 1,
            max: 600_000,
            note: "ten minutes",
        });
        ranges.push(IntegerRange {
            key: "auth.http_cache_secs",
            value: auth.http_cache_secs,
            min: 0,
            max: MAX_SECONDS,
            note: "0 turns the cache off",
        });
        ranges.push(IntegerRange {
            key: "auth.http_cache_entries",
            value: wide(auth.http_cache_entries),
            min: 0,
            max: 100_000_000,
            note: "",
        });
        ranges.push(IntegerRange {
            key: "sys.interval_secs",
            value: self.sys.interval_secs,
            min: 0,
            max: 86_400,
            note: "a day; 0 turns $SYS off",
        });
        ranges
    }

    /// `[tls]`: files named must not be empty names, a TLS listener (`first`) needs a
    /// certificate and a key, and client certificate options need a CA to verify with.
    fn validate_tls(&self, first: Option<&str>) -> Result<(), ConfigError> {
        let origin = "configuration";
        let tls = &self.tls;
        for (key, value) in [
            ("tls.cert_file", &tls.cert_file),
            ("tls.key_file", &tls.key_file),
            ("tls.ca_file", &tls.ca_file),
        ] {
            if value.as_deref() == Some("") {
                return Err(error(origin, key, "is empty; name a PEM file"));
            }
        }
        if let Some(url) = first {
            for (key, value) in [("tls.cert_file", &tls.cert_file), ("tls.key_file", &tls.key_file)] {
                if value.is_none() {
                    return Err(error(origin, key, format!("is required by the listener {url:?}")));
                }
            }
        }
        if tls.cert_file.is_some() != tls.key_file.is_some() {
            let missing = if tls.cert_file.is_none() { "tls.cert_file" } else { "tls.key_file" };
            return Err(error(
                origin,
                missing,
                "is required with the other of tls.cert_file and tls.key_file",
            ));
        }
        if tls.ca_file.is_none() {
            for (key, set) in [
                ("tls.require_client_cert", tls.require_client_cert),
                ("tls.use_identity_as_username", tls.use_identity_as_username),
            ] {
                if set {
                    return Err(error(
                        origin,
                        key,
                        "needs tls.ca_file, the CAs that verify client certificates",
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_sections(&self) -> Result<(), ConfigError> {
        let origin = "configuration";
        if self.server.overflow_policy().is_none() {
            return Err(error(
                origin,
                "server.queue_overflow",
                format!(
                    "{:?} is not a policy; use \"disconnect\", \"drop_oldest\" or \"drop_newest\"",
                    self.server.queue_overflow
                ),
            ));
        }
        if self.server.shared_strategy().is_none() {
            return Err(error(
                origin,
                "server.shared_subscription_strategy",
                format!(
                    "{:?} is not a strategy; use \"round_robin\", \"random\", \"sticky\" or \"hash_client_id\"",
                    self.server.shared_subscription_strategy
                ),
            ));
        }
        if !["none", "password_file"].contains(&self.auth.backend.as_str()) {
            return Err(error(
                origin,
                "auth.backend",
                format!("{:?} is not a backend; use \"none\" or \"password_file\"", self.auth.backend),
            ));
        }
        if self.auth.acl_file.as_deref() == Some("") {
            return Err(error(origin, "auth.acl_file", "is empty; name an ACL file"));
        }
        if self.auth.acl_file.is_some() && !self.auth.enabled {
            // Without authentication any client could claim any username, and its rules.
            return Err(error(
                origin,
                "auth.acl_file",
                "needs auth.enabled = true: without it, usernames are not checked",
            ));
        }
        if self.auth.password_file.as_deref() == Some("") {
            return Err(error(origin, "auth.password_file", "is empty; name a mosquitto_passwd file"));
        }
        if !self.auth.enabled && self.auth.password_file.is_some() {
            return Err(error(
                origin,
                "auth.password_file",
                "is set but auth.enabled = false, so it would not be used; set auth.enabled = true or remove it",
            ));
        }
        for (key, value) in [
            ("auth.jwt_secret", &self.auth.jwt_secret),
            ("auth.jwt_public_key_file", &self.auth.jwt_public_key_file),
        ] {
            if value.as_deref() == Some("") {
                return Err(error(origin, key, "is empty"));
            }
            if value.is_some() && !self.auth.enabled {
                return Err(error(origin, key, "is set but auth.enabled = false, so it would not be used"));
            }
        }
        if self.auth.jwt_secret.is_some() && self.auth.jwt_public_key_file.is_some() {
            return Err(error(
                origin,
                "auth.jwt_secret",
                "and auth.jwt_public_key_file are both set; set one",
            ));
        }
        for (key, value) in [
            ("auth.jwt_username_claim", &self.auth.jwt_username_claim),
            ("auth.jwt_acl_claim", &self.auth.jwt_acl_claim),
        ] {
            if value.is_empty() {
                return Err(error(origin, key, "is empty; name a claim"));
            }
        }
        for (key, value) in
            [("auth.http_url", &self.auth.http_url), ("auth.http_acl_url", &self.auth.http_acl_url)]
        {
            if value.as_deref() == Some("") {
                return Err(error(origin, key, "is empty; name the hook's http:// URL"));
            }
            if value.is_some() && !self.auth.enabled {
                return Err(error(origin, key, "is set but auth.enabled = false, so it would not be used"));
            }
        }
        let has_provider =
            self.auth.password_file.is_some() || self.auth.jwt_configured() || self.auth.http_url.is_some();
        if self.auth.enabled && !has_provider && !self.auth.allow_anonymous {
            return Err(error(
                origin,
                "auth.password_file",
                "(or auth.jwt_secret, auth.jwt_public_key_file, auth.http_url) is required when auth.enabled = true and auth.allow_anonymous = false: nobody could connect",
            ));
        }
        if !["memory", "redb"].contains(&self.storage.backend.as_str()) {
            return Err(error(
                origin,
                "storage.backend",
                format!("{:?} is not a backend; use \"memory\" or \"redb\"", self.storage.backend),
            ));
        }
        if !["set_aside", "refuse"].contains(&self.storage.on_corruption.as_str()) {
            return Err(error(
                origin,
                "storage.on_corruption",
                format!("{:?} is not a choice; use \"set_aside\" or \"refuse\"", self.storage.on_corruption),
            ));
        }
        if self.storage.path.as_deref() == Some("") {
            return Err(error(origin, "storage.path", "is empty; name the directory of the store"));
        }
        if let Some(address) = self.admin.listen_address.as_deref().filter(|a| !a.is_empty()) {
            let (host, port) = address.rsplit_once(':').ok_or_else(|| {
                error(origin, "admin.listen_address", format!("{address:?}: expected host:port"))
            })?;
            if host.is_empty() || port.parse::<u16>().is_err() {
                return Err(error(
                    origin,
                    "admin.listen_address",
                    format!("{address:?}: expected host:port"),
                ));
            }
        }
        if self.admin.tls && (self.tls.cert_file.is_none() || self.tls.key_file.is_none()) {
            return Err(error(origin, "admin.tls", "needs tls.cert_file and tls.key_file"));
        }
        if self.admin.token.is_some() && self.admin.token_file.is_some() {
            return Err(error(origin, "admin.token", "and admin.token_file are both set; set one"));
        }
        for (key, value) in [("admin.token", &self.admin.token), ("admin.token_file", &self.admin.token_file)]
        {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(error(origin, key, "is empty"));
            }
        }
        if !["trace", "debug", "info", "warn", "error"].contains(&self.logging.level.as_str()) {
            return Err(error(
                origin,
                "logging.level",
                format!("{:?} is not one of trace, debug, info, warn, error", self.logging.level),
            ));
        }
        if !["text", "json"].contains(&self.logging.format.as_str()) {
            return Err(error(
                origin,
                "logging.format",
                format!("{:?} is not \"text\" or \"json\"", self.logging.format),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests start their fake clocks from a real instant.
mod tests {
    use super::*;

    const SEED_EXAMPLE: &str = include_str!("../tests/data/seed-example.toml");

    fn from_toml(text: &str) -> Result<Config, ConfigError> {
        ConfigBuilder::new().toml("test.toml", text)?.build()
    }

    #[test]
    fn defaults_are_valid() {
        assert!(Config::defaults().validate().is_ok());
    }

    #[test]
    fn seed_example_parses_with_its_websocket_listener() {
        let config = from_toml(SEED_EXAMPLE).unwrap();
        assert_eq!(config.server.max_connections, 10_000);
        assert_eq!(config.server.keep_alive_timeout_secs, 60);
        let ws = parse_listen_address(&config.server.listen_addresses[1]).unwrap();
        assert_eq!(
            (ws.scheme, ws.address.as_str(), ws.path.as_deref()),
            (Scheme::Ws, "0.0.0.0:9001", Some("/mqtt"))
        );
    }

    #[test]
    fn listener_urls_name_their_transport_and_path() {
        let parsed = |url: &str| parse_listen_address(url).map(|a| (a.scheme, a.address, a.path));
        assert_eq!(parsed("mqtts://0.0.0.0:8883").unwrap(), (Scheme::Tls, "0.0.0.0:8883".to_owned(), None));
        assert_eq!(parsed("tls://h:1").unwrap().0, Scheme::Tls);
        assert_eq!(
            parsed("wss://0.0.0.0:8443/ws").unwrap(),
            (Scheme::Wss, "0.0.0.0:8443".to_owned(), Some("/ws".to_owned()))
        );
        assert!(parsed("tcp://0.0.0.0:1883/mqtt").unwrap_err().contains("no path"));
        assert!(parsed("quic://0.0.0.0:1").unwrap_err().contains("unknown scheme"));
    }

    #[test]
    fn listener_urls_carry_settings_of_their_own_in_a_query_string() {
        let tcp = parse_listen_address("tcp://0.0.0.0:1883?max_connections=100&proxy_protocol=true").unwrap();
        assert_eq!((tcp.scheme, tcp.address.as_str(), tcp.path), (Scheme::Tcp, "0.0.0.0:1883", None));
        let expected =
            ListenerSettings { max_connections: 100, max_connection_rate: None, proxy_protocol: true };
        assert_eq!(tcp.settings, expected);
        let ws = parse_listen_address("ws://h:9001/mqtt?max_connection_rate=50").unwrap();
        assert_eq!(ws.path.as_deref(), Some("/mqtt"));
        assert_eq!(ws.settings.max_connection_rate, Some(50));
        let ws = parse_listen_address("wss://h:9001?proxy_protocol=false").unwrap();
        assert_eq!((ws.path.as_deref(), ws.settings.proxy_protocol), (Some("/mqtt"), false));
        assert_eq!(parse_listen_address("tcp://h:1").unwrap().settings, ListenerSettings::default());
        for (url, problem) in [
            ("tcp://h:1?", "not name=value"),
            ("tcp://h:1?max_connections", "not name=value"),
            ("tcp://h:1?max_connections=-1", "integer from 0"),
            ("tcp://h:1?max_connections=+5", "integer from 0"),
            ("tcp://h:1?max_connections=100000001", "integer from 0 to 100000000"),
            ("tcp://h:1?max_connection_rate=1000001", "integer from 0 to 1000000"),
            ("tcp://h:1?proxy_protocol=yes", "true or false"),
            ("tcp://h:1?max_connections=1&max_connections=2", "twice"),
            ("tcp://h:1?proxy=true", "unknown listener setting"),
            ("tcp://h:1/x?proxy_protocol=true", "no path"),
        ] {
            let err = parse_listen_address(url).unwrap_err();
            assert!(err.contains(problem), "{url}: {err}");
        }
        let err = from_toml("[server]\nlisten_addresses = [\"tcp://h:1?proxy_protocol=1\"]\n").unwrap_err();
        assert_eq!(err.key, "server.listen_addresses");
        assert!(err.problem.contains("proxy_protocol"), "{err}");
    }

    #[test]
    fn tls_listeners_need_a_certificate_and_client_options_need_a_ca() {
        let listen = "[server]\nlisten_addresses = [\"tls://127.0.0.1:0\"]\n";
        assert_eq!(from_toml(listen).unwrap_err().key, "tls.cert_file");
        let with_cert = format!("{listen}[tls]\ncert_file = \"c\"\n");
        assert_eq!(from_toml(&with_cert).unwrap_err().key, "tls.key_file");
        let both = format!("{with_cert}key_file = \"k\"\n");
        assert!(from_toml(&both).is_ok());
        assert_eq!(
            from_toml(&format!("{both}require_client_cert = true\n")).unwrap_err().key,
            "tls.require_client_cert"
        );
        assert_eq!(
            from_toml(&format!("{both}use_identity_as_username = true\n")).unwrap_err().key,
            "tls.use_identity_as_username"
        );
        assert_eq!(from_toml(&format!("{both}ca_file = \"\"\n")).unwrap_err().key, "tls.ca_file");
        assert!(from_toml(&format!("{both}ca_file = \"ca\"\nrequire_client_cert = true\n")).is_ok());
    }

    #[test]
    fn unknown_keys_and_bad_types_name_the_key() {
        let err = from_toml("[server]\nmax_conections = 5\n").unwrap_err();
        assert_eq!((err.key.as_str(), err.problem.as_str()), ("server.max_conections", "unknown key"));
        let err = from_toml("[server]\nmax_connections = \"lots\"\n").unwrap_err();
        assert_eq!(err.key, "server.max_connections");
        let err = from_toml("[servr]\n").unwrap_err();
        assert_eq!(err.key, "servr");
        let err = from_toml("[logging]\nlevel = \"loud\"\n").unwrap_err();
        assert_eq!(err.key, "logging.level");
    }

    #[test]
    fn layers_apply_in_order() {
        let config = ConfigBuilder::new()
            .toml("file", "[server]\nmax_connections = 1\nmax_queued_messages = 7\n")
            .unwrap()
            .env([
                ("IOTHUB_SERVER_MAX_CONNECTIONS".to_owned(), "2".to_owned()),
                ("PATH".to_owned(), "/bin".to_owned()),
            ])
            .unwrap()
            .set_flag("--set", "server.max_connections=3")
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(config.server.max_connections, 3);
        assert_eq!(config.server.max_queued_messages, 7);
    }

    #[test]
    fn bad_environment_variables_are_refused_by_name() {
        let err = ConfigBuilder::new()
            .env([("IOTHUB_SERVER_MAX_CONECTIONS".to_owned(), "2".to_owned())])
            .unwrap_err();
        assert!(err.to_string().contains("IOTHUB_SERVER_MAX_CONECTIONS"), "{err}");
        let err = ConfigBuilder::new()
            .env([("IOTHUB_SERVER_MAX_CONNECTIONS".to_owned(), "x".to_owned())])
            .unwrap_err();
        assert_eq!(err.key, "server.max_connections");
    }

    /// Builds the defaults with one `--set` assignment, one environment variable or one line of
    /// a file, which must all give the same result.
    fn from_each_layer(key: &str, text: &str) -> [Result<Config, ConfigError>; 3] {
        let (section, name) = key.split_once('.').unwrap();
        let file = ConfigBuilder::new().toml("test.toml", &format!("[{section}]\n{name} = {text}\n"));
        let var = format!("IOTHUB_{}_{}", section.to_ascii_uppercase(), name.to_ascii_uppercase());
        let env = ConfigBuilder::new().env([(var, text.to_owned())]);
        let flag = ConfigBuilder::new().set_flag("--set", &format!("{key}={text}"));
        [file, env, flag].map(|layer| layer.and_then(ConfigBuilder::build))
    }

    #[test]
    fn every_integer_key_has_a_range() {
        let ranged: Vec<&str> = Config::defaults().integer_ranges().iter().map(|r| r.key).collect();
        let integers: Vec<String> = SCHEMA
            .iter()
            .filter(|(_, _, kind)| *kind == Kind::Uint)
            .map(|(section, key, _)| format!("{section}.{key}"))
            .collect();
        assert_eq!(ranged, integers, "each integer key in SCHEMA needs a range, in the same order");
    }

    #[test]
    fn every_layer_accepts_each_integer_key_up_to_its_bound_and_refuses_beyond() {
        for range in Config::defaults().integer_ranges() {
            for layer in from_each_layer(range.key, &range.max.to_string()) {
                assert!(layer.is_ok(), "{} = {}: {}", range.key, range.max, layer.unwrap_err());
            }
            let beyond = u128::from(range.max) + 1;
            for layer in from_each_layer(range.key, &beyond.to_string()) {
                let err = layer.unwrap_err();
                assert_eq!(err.key, range.key, "{err}");
            }
            if range.min > 0 {
                for layer in from_each_layer(range.key, &(range.min - 1).to_string()) {
                    assert_eq!(layer.unwrap_err().key, range.key);
                }
            }
        }
    }

    #[test]
    fn max_connections_beyond_what_the_semaphore_counts_is_refused_by_every_layer() {
        // 2^61 is one more than `Semaphore::MAX_PERMITS`; it used to pass and then panic.
        for layer in from_each_layer("server.max_connections", "2305843009213693952") {
            let err = layer.unwrap_err();
            assert_eq!(err.key, "server.max_connections");
            assert!(err.problem.contains("at most 100000000"), "{err}");
        }
    }

    #[test]
    fn large_integers_are_read_alike_by_file_environment_and_flag() {
        for layer in from_each_layer("server.max_queued_bytes", "8589934592") {
            assert_eq!(layer.unwrap().server.max_queued_bytes, 8_589_934_592);
        }
        for layer in from_each_layer("server.max_queued_bytes", "-1") {
            let err = layer.unwrap_err();
            assert_eq!(err.key, "server.max_queued_bytes");
            assert!(err.problem.contains("non-negative integer"), "{err}");
        }
        let [file, env, flag] = from_each_layer("server.max_queued_bytes", "9223372036854775808");
        let err = file.unwrap_err();
        assert_eq!(err.key, "server.max_queued_bytes");
        assert!(err.problem.contains("line 2"), "{err}");
        for err in [env.unwrap_err(), flag.unwrap_err()] {
            assert_eq!(err.key, "server.max_queued_bytes");
            assert!(err.problem.contains("out of range"), "{err}");
        }
    }

    #[test]
    fn the_largest_values_accepted_are_honoured() {
        let mut builder = ConfigBuilder::new();
        for range in Config::defaults().integer_ranges() {
            builder = builder.set_flag("--set", &format!("{}={}", range.key, range.max)).unwrap();
        }
        let config = builder.build().unwrap();
        let s = &config.server;
        // What `Server::bind` and the connection tasks do with them, none of which may panic.
        let slots = tokio::sync::Semaphore::new(s.max_connections);
        assert_eq!(slots.available_permits(), 100_000_000);
        let now = tokio::time::Instant::now();
        let timeout = s.session_timeout().unwrap();
        assert!(now + timeout > now);
        assert!(now + Duration::from_secs(s.connect_timeout_secs) > now);
        assert!(now + Duration::from_secs(s.shutdown_timeout_secs) > now);
    }

    #[test]
    fn features_not_built_yet_stop_start_up() {
        assert_eq!(from_toml("[auth]\nenabled = true\n").unwrap_err().key, "auth.password_file");
        assert_eq!(from_toml("[auth]\nacl_file = \"acl\"\n").unwrap_err().key, "auth.acl_file");
        assert_eq!(from_toml("[auth]\nacl_file = \"\"\n").unwrap_err().key, "auth.acl_file");
        assert!(from_toml("[auth]\nenabled = true\nallow_anonymous = true\n").is_ok());
        assert_eq!(from_toml("[storage]\nbackend = \"rocksdb\"\n").unwrap_err().key, "storage.backend");
    }
}
