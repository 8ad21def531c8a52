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

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[server]`: listeners and protocol limits.
    pub server: ServerConfig,
    /// `[auth]`: authentication (parsed and validated; not yet available).
    pub auth: AuthConfig,
    /// `[storage]`: persistence backend.
    pub storage: StorageConfig,
    /// `[logging]`: log level and format.
    pub logging: LoggingConfig,
}

/// `[server]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Listener URLs such as `tcp://0.0.0.0:1883`.
    pub listen_addresses: Vec<String>,
    /// Most simultaneous connections over all listeners; 0 means no limit but the OS's.
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
    /// Payload bytes queued per session; 0 means no byte limit.
    pub max_queued_bytes: usize,
    /// Seconds a new connection has to send CONNECT.
    pub connect_timeout_secs: u64,
    /// Seconds a graceful shutdown waits for connections to finish.
    pub shutdown_timeout_secs: u64,
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
            max_queued_bytes: 0,
            connect_timeout_secs: 10,
            shutdown_timeout_secs: 5,
        }
    }
}

impl ServerConfig {
    /// How long an offline persistent session is kept; `None` for as long as the server runs.
    pub fn session_timeout(&self) -> Option<Duration> {
        (self.session_timeout_secs != 0).then(|| Duration::from_secs(self.session_timeout_secs))
    }
}

/// `[auth]` settings. Authentication arrives in a later release; until then enabling it stops
/// start-up rather than running an open broker by surprise.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Whether clients must authenticate.
    pub enabled: bool,
    /// Authentication backend: "none" or "password_file".
    pub backend: String,
    /// Mosquitto-format password file, for the "password_file" backend.
    pub password_file: Option<String>,
    /// Mosquitto-format ACL file.
    pub acl_file: Option<String>,
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig { enabled: false, backend: "none".to_owned(), password_file: None, acl_file: None }
    }
}

/// `[storage]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Storage backend; "memory" is the one available.
    pub backend: String,
    /// Directory of a durable backend.
    pub path: Option<String>,
}

impl Default for StorageConfig {
    fn default() -> StorageConfig {
        StorageConfig { backend: "memory".to_owned(), path: None }
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
    ("server", "connect_timeout_secs", Kind::Uint),
    ("server", "shutdown_timeout_secs", Kind::Uint),
    ("auth", "enabled", Kind::Bool),
    ("auth", "backend", Kind::Str),
    ("auth", "password_file", Kind::Str),
    ("auth", "acl_file", Kind::Str),
    ("storage", "backend", Kind::Str),
    ("storage", "path", Kind::Str),
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

fn parse_text(origin: &str, name: &str, kind: Kind, text: &str) -> Result<toml::Value, ConfigError> {
    let bad = || error(origin, name, format!("expected {}, found {text:?}", describe(kind)));
    Ok(match kind {
        Kind::Uint => toml::Value::Integer(text.trim().parse::<u32>().map(i64::from).map_err(|_| bad())?),
        Kind::Bool => toml::Value::Boolean(text.trim().parse().map_err(|_| bad())?),
        Kind::Str => toml::Value::String(text.to_owned()),
        Kind::StrList => toml::Value::Array(
            text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| s.to_owned().into()).collect(),
        ),
    })
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
        let doc: toml::Table =
            text.parse().map_err(|e: toml::de::Error| error(origin, "", e.message().to_owned()))?;
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

/// A listener address taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddress {
    /// Transport scheme; only "tcp" is available in this release.
    pub scheme: String,
    /// `host:port` to bind.
    pub address: String,
}

/// Splits `tcp://host:port`, refusing schemes not built yet.
pub fn parse_listen_address(url: &str) -> Result<ListenAddress, String> {
    let (scheme, address) =
        url.split_once("://").ok_or("expected scheme://host:port, e.g. tcp://0.0.0.0:1883")?;
    match scheme {
        "tcp" | "mqtt" => {}
        "ws" | "wss" | "tls" | "ssl" | "mqtts" => {
            return Err(format!("the {scheme}:// transport is not available in this release; use tcp://"));
        }
        other => return Err(format!("unknown scheme {other:?}; use tcp://")),
    }
    let (host, port) = address.rsplit_once(':').ok_or("missing :port")?;
    if host.is_empty() {
        return Err("missing host (use 0.0.0.0 for all interfaces)".to_owned());
    }
    port.parse::<u16>().map_err(|_| format!("port {port:?} is not a number between 0 and 65535"))?;
    Ok(ListenAddress { scheme: "tcp".to_owned(), address: address.to_owned() })
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
        for url in &s.listen_addresses {
            parse_listen_address(url)
                .map_err(|problem| error(origin, "server.listen_addresses", format!("{url:?}: {problem}")))?;
        }
        let positive = [
            ("server.max_inflight_messages", s.max_inflight_messages, 65_535),
            ("server.max_queued_messages", s.max_queued_messages, usize::MAX),
            (
                "server.connect_timeout_secs",
                usize::try_from(s.connect_timeout_secs).unwrap_or(usize::MAX),
                3600,
            ),
            (
                "server.keep_alive_timeout_secs",
                usize::try_from(s.keep_alive_timeout_secs).unwrap_or(usize::MAX),
                65_535,
            ),
        ];
        for (key, value, max) in positive {
            if value == 0 || value > max {
                return Err(error(origin, key, format!("must be between 1 and {max}, found {value}")));
            }
        }
        let seconds = [
            ("server.session_timeout_secs", s.session_timeout_secs),
            ("server.shutdown_timeout_secs", s.shutdown_timeout_secs),
        ];
        for (key, value) in seconds {
            if value > MAX_SECONDS {
                return Err(error(
                    origin,
                    key,
                    format!("must be at most {MAX_SECONDS} (ten years), found {value}"),
                ));
            }
        }
        if !(16..=268_435_460).contains(&s.max_packet_size) {
            return Err(error(origin, "server.max_packet_size", "must be between 16 and 268435460 bytes"));
        }
        self.validate_sections()
    }

    fn validate_sections(&self) -> Result<(), ConfigError> {
        let origin = "configuration";
        if !["none", "password_file"].contains(&self.auth.backend.as_str()) {
            return Err(error(
                origin,
                "auth.backend",
                format!("{:?} is not a backend; use \"none\" or \"password_file\"", self.auth.backend),
            ));
        }
        if self.auth.enabled {
            return Err(error(
                origin,
                "auth.enabled",
                "authentication is not available in this release; set it to false",
            ));
        }
        if self.storage.backend != "memory" {
            return Err(error(
                origin,
                "storage.backend",
                format!("{:?} is not available in this release; use \"memory\"", self.storage.backend),
            ));
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
    fn seed_example_parses_and_names_the_missing_transport() {
        let err = from_toml(SEED_EXAMPLE).unwrap_err();
        assert_eq!(err.key, "server.listen_addresses");
        assert!(err.problem.contains("ws://"), "{err}");
        let tcp_only = SEED_EXAMPLE.replace(", \"ws://0.0.0.0:9001\"", "");
        let config = from_toml(&tcp_only).unwrap();
        assert_eq!(config.server.max_connections, 10_000);
        assert_eq!(config.server.keep_alive_timeout_secs, 60);
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

    #[test]
    fn features_not_built_yet_stop_start_up() {
        assert_eq!(from_toml("[auth]\nenabled = true\n").unwrap_err().key, "auth.enabled");
        assert_eq!(from_toml("[storage]\nbackend = \"rocksdb\"\n").unwrap_err().key, "storage.backend");
    }
}
