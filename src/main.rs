//! The `iothub` command: parses flags, layers the configuration, sets up logging, runs the
//! server, and turns signals into shutdown. SIGINT drains gracefully; a second SIGINT, or a
//! SIGTERM, exits at once. SIGHUP reloads the TLS, password and ACL files.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use iothub::config::LoggingConfig;
use iothub::{Config, ConfigBuilder, ConfigError, Server};
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tracing::level_filters::LevelFilter;

/// IoTHub: a high-performance MQTT broker.
///
/// Configuration is layered: built-in defaults, then the TOML file given with --config, then
/// IOTHUB_<SECTION>_<KEY> environment variables (e.g. IOTHUB_SERVER_MAX_CONNECTIONS=100), then
/// the flags below.
#[derive(Debug, Parser)]
#[command(name = "iothub", version)]
struct Cli {
    /// Load configuration from this TOML file.
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Check this configuration file (with the environment and flags applied) and exit.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    check_config: Option<PathBuf>,
    /// Listener URL such as tcp://127.0.0.1:1883; repeat for several. Replaces
    /// server.listen_addresses.
    #[arg(short, long = "listen", value_name = "URL")]
    listen: Vec<String>,
    /// Log level: trace, debug, info, warn or error (logging.level).
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Log format: text or json (logging.format).
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<String>,
    /// Set any configuration key, e.g. --set server.max_connections=100; repeatable.
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    set: Vec<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Manage a password file in mosquitto_passwd's format (as mosquitto_passwd does).
    Passwd(PasswdArgs),
}

/// `iothub passwd [-c] [--scram] FILE USER`, `iothub passwd [-c] [--scram] -b FILE USER
/// PASSWORD`, `iothub passwd -D FILE USER`, `iothub passwd [--scram] -U FILE`.
#[derive(Debug, clap::Args)]
struct PasswdArgs {
    /// Create the file (overwriting an existing one).
    #[arg(short = 'c', conflicts_with_all = ["delete", "upgrade"])]
    create: bool,
    /// Batch mode: take the password from the command line.
    #[arg(short = 'b', conflicts_with_all = ["delete", "upgrade"])]
    batch: bool,
    /// Delete the user.
    #[arg(short = 'D', conflicts_with = "upgrade")]
    delete: bool,
    /// Hash every plaintext password of the file.
    #[arg(short = 'U')]
    upgrade: bool,
    /// Write SCRAM-SHA-256 entries (RFC 5803, 4096 iterations) instead of $7$ ones: they serve
    /// the SCRAM-SHA-256 enhanced authentication method and plain passwords alike, but only
    /// IoTHub reads them.
    #[arg(long = "scram", conflicts_with = "delete")]
    scram: bool,
    /// The password file.
    file: PathBuf,
    /// The username.
    user: Option<String>,
    /// The password (with -b).
    password: Option<String>,
}

/// Runs `iothub passwd`.
fn passwd(args: &PasswdArgs) -> ExitCode {
    use iothub::auth::passwd_tool::{run, EntryFormat, PasswdAction};
    let format = if args.scram { EntryFormat::ScramSha256 } else { EntryFormat::Mosquitto };
    let action = match (args.upgrade, args.delete, &args.user, args.batch, &args.password) {
        (true, _, None, _, None) => Ok(PasswdAction::Upgrade { format }),
        (false, true, Some(user), _, None) => Ok(PasswdAction::Delete { user: user.clone() }),
        (false, false, Some(user), true, Some(password)) => Ok(PasswdAction::Set {
            user: user.clone(),
            password: password.as_bytes().to_vec(),
            create: args.create,
            format,
        }),
        (false, false, Some(user), false, None) => prompt_twice().map(|password| PasswdAction::Set {
            user: user.clone(),
            password,
            create: args.create,
            format,
        }),
        _ => Err("usage: iothub passwd [-c] [--scram] FILE USER | [-c] [--scram] -b FILE USER PASSWORD | -D FILE USER | [--scram] -U FILE"
            .to_owned()),
    };
    match action.and_then(|action| run(&args.file, &action)) {
        Ok(message) => {
            eprintln!("{message}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("iothub passwd: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Asks for a password twice, without echo.
fn prompt_twice() -> Result<Vec<u8>, String> {
    let first =
        rpassword::prompt_password("Password: ").map_err(|e| format!("cannot read the password: {e}"))?;
    let second = rpassword::prompt_password("Reenter password: ")
        .map_err(|e| format!("cannot read the password: {e}"))?;
    if first != second {
        return Err("the passwords do not match".to_owned());
    }
    Ok(first.into_bytes())
}

fn load(cli: &Cli) -> Result<Config, ConfigError> {
    let mut builder = ConfigBuilder::new();
    if let Some(path) = cli.config.as_ref().or(cli.check_config.as_ref()) {
        builder = builder.file(path)?;
    }
    builder = builder.env(std::env::vars())?;
    if !cli.listen.is_empty() {
        builder =
            builder.set_flag("--listen", &format!("server.listen_addresses={}", cli.listen.join(",")))?;
    }
    if let Some(level) = &cli.log_level {
        builder = builder.set_flag("--log-level", &format!("logging.level={level}"))?;
    }
    if let Some(format) = &cli.log_format {
        builder = builder.set_flag("--log-format", &format!("logging.format={format}"))?;
    }
    for assignment in &cli.set {
        builder = builder.set_flag("--set", assignment)?;
    }
    builder.build()
}

fn init_logging(logging: &LoggingConfig) {
    let level = logging.level.parse::<LevelFilter>().unwrap_or(LevelFilter::INFO);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder =
        tracing_subscriber::fmt().with_max_level(level).with_ansi(ansi).with_writer(std::io::stderr);
    if logging.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Passwd(args)) = &cli.command {
        return passwd(args);
    }
    let config = match load(&cli) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("iothub: {error}");
            return ExitCode::from(2);
        }
    };
    if let Some(path) = &cli.check_config {
        println!("{}: configuration is valid", path.display());
        return ExitCode::SUCCESS;
    }
    init_logging(&config.logging);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("iothub: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(&config))
}

async fn serve(config: &Config) -> ExitCode {
    // Taken before the (possibly long) restore of a durable store, so that a SIGHUP meanwhile
    // waits for the reloader instead of ending the process.
    let hangup = match signal(SignalKind::hangup()) {
        Ok(hangup) => hangup,
        Err(error) => {
            eprintln!("iothub: cannot install the SIGHUP handler: {error}");
            return ExitCode::FAILURE;
        }
    };
    let server = match Server::bind(config).await {
        Ok(server) => server,
        Err(error) => {
            eprintln!("iothub: {error}");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = CancellationToken::new();
    watch_reload(hangup, server.reloader());
    if let Err(error) = watch_signals(shutdown.clone()) {
        eprintln!("iothub: cannot install signal handlers: {error}");
        return ExitCode::FAILURE;
    }
    if server.run(shutdown).await {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// SIGHUP reloads the TLS files, the password file and the ACL file; connections stay up, and
/// a file that cannot be used is refused with a log line while the one in force stays.
// The watcher lives as long as the process; nothing waits for it.
#[allow(clippy::disallowed_methods)]
fn watch_reload(mut hangup: tokio::signal::unix::Signal, reloader: iothub::Reloader) {
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the TLS, password and ACL files");
            // File reads and password-file parsing block: off the runtime's workers.
            let reloader = reloader.clone();
            let _ = tokio::task::spawn_blocking(move || reloader.reload()).await;
        }
    });
}

/// SIGINT cancels `shutdown` (graceful drain); a second SIGINT or any SIGTERM exits at once.
// The signal watcher lives as long as the process and ends it; nothing waits for it.
#[allow(clippy::disallowed_methods)]
fn watch_signals(shutdown: CancellationToken) -> std::io::Result<()> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {
                tracing::info!("SIGINT: draining connections; send SIGINT again to exit at once");
                shutdown.cancel();
            }
            _ = terminate.recv() => {
                tracing::info!("SIGTERM: exiting");
                std::process::exit(0);
            }
        }
        tokio::select! {
            _ = interrupt.recv() => tracing::warn!("second SIGINT: exiting without draining"),
            _ = terminate.recv() => tracing::warn!("SIGTERM: exiting without draining"),
        }
        std::process::exit(1);
    });
    Ok(())
}
