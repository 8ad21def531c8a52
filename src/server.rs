//! The Server: binds one Broker per listener, owns the Router, the session registry and the
//! counters, expires offline sessions, and runs the shutdown sequence.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::Admin;
use crate::auth::{
    Acl, AuthenticationMethod, Authenticator, HttpHook, JwtVerifier, PasswordFile, ScramSha256,
};
use crate::broker::Broker;
use crate::config::{parse_listen_address, Config};
use crate::context::Context;
use crate::metrics::Metrics;
use crate::protection::Protection;
use crate::restore::{restore, Restored};
use crate::router::Router;
use crate::session::Registry;
use crate::storage::{self, Backend, RedbBackend, StorageError, Store};
use crate::transport::{Listener, TlsFiles};

/// A bound, not yet running server.
#[derive(Debug)]
pub struct Server {
    /// One broker per listener.
    brokers: Vec<Broker>,
    /// Shared state.
    context: Arc<Context>,
    /// The admin HTTP listener, when `[admin] listen_address` is set.
    admin: Option<Admin>,
    /// Seconds between `$SYS` publications; 0: none.
    sys_interval: u64,
}

impl Server {
    /// Binds every listener of `config`. Fails if any address cannot be bound.
    pub async fn bind(config: &Config) -> io::Result<Server> {
        Server::bind_with_auth_methods(config, Vec::new()).await
    }

    /// Binds every listener of `config`, with these MQTT 5.0 enhanced authentication methods
    /// (section 4.12) for clients to name in CONNECT, beside the built-in SCRAM-SHA-256 that
    /// `[auth]` with a `password_file` offers. A method given here under a built-in method's
    /// name is the one clients get.
    pub async fn bind_with_auth_methods(
        config: &Config,
        auth_methods: Vec<Arc<dyn AuthenticationMethod>>,
    ) -> io::Result<Server> {
        let context = match config.storage.backend.as_str() {
            "redb" => open_redb(config, &auth_methods)?,
            _ => build_context(config, &auth_methods, None)?,
        };
        Server::listen(context, config).await
    }

    /// Binds the listeners of `context`'s configuration, and the admin listener of `config`.
    async fn listen(context: Arc<Context>, config: &Config) -> io::Result<Server> {
        let mut brokers = Vec::new();
        for url in &context.config.listen_addresses {
            let address =
                parse_listen_address(url).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let listener = Listener::bind(&address, context.tls.as_ref(), context.config.max_packet_size)
                .await
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {url}: {e}")))?;
            brokers.push(Broker::new(listener, url, Arc::clone(&context)));
        }
        let admin = Admin::bind(&config.admin).await?;
        Ok(Server { brokers, context, admin, sys_interval: config.sys.interval_secs })
    }

    /// Binds every listener of `config` with durable storage on `backend` instead of the one
    /// `storage.backend` names: its contents are restored first. This is how another backend
    /// plugs in (see `docs/ARCHITECTURE.md`).
    pub async fn bind_with_backend(config: &Config, backend: Box<dyn Backend>) -> io::Result<Server> {
        let (context, _) = start_durable(config, &[], backend).map_err(|e| match e {
            StorageError::Config(problem) => io::Error::other(problem),
            other => io::Error::other(other),
        })?;
        Server::listen(context, config).await
    }

    /// The addresses actually bound, in configuration order.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.brokers.iter().filter_map(|b| b.listener().local_addr().ok()).collect()
    }

    /// What re-reads the files SIGHUP reloads; it stays usable while the server runs.
    pub fn reloader(&self) -> Reloader {
        Reloader { context: Arc::clone(&self.context) }
    }

    /// The address the admin listener is bound to, if there is one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|admin| admin.local_addr().ok())
    }

    /// The server's shared state, for inspection.
    pub fn context(&self) -> &Arc<Context> {
        &self.context
    }

    /// Serves until `shutdown` is cancelled, then stops accepting, closes every connection and
    /// waits for the connection tasks, at most `shutdown_timeout_secs`. Returns true if every
    /// task finished in time.
    pub async fn run(self, shutdown: CancellationToken) -> bool {
        let tracker = TaskTracker::new();
        for broker in self.brokers {
            let scheme = broker.listener().scheme();
            if let Ok(address) = broker.listener().local_addr() {
                tracing::info!("listening on {scheme}://{address}");
            }
            tracker.spawn(broker.run(shutdown.child_token(), tracker.clone()));
        }
        let expiry = tracker.spawn(expire_sessions(Arc::clone(&self.context), shutdown.child_token()));
        if self.sys_interval > 0 {
            let interval = Duration::from_secs(self.sys_interval);
            tracker.spawn(crate::sys::publish(Arc::clone(&self.context), interval, shutdown.child_token()));
        }
        // The admin listener's tasks are not waited for at shutdown: they hold no client.
        let admin_tasks = TaskTracker::new();
        if let Some(admin) = self.admin {
            if let Ok(address) = admin.local_addr() {
                tracing::info!("admin listener on http://{address}");
            }
            admin_tasks.spawn(admin.run(
                Arc::clone(&self.context),
                shutdown.child_token(),
                admin_tasks.clone(),
            ));
        }
        self.context.ready.store(true, std::sync::atomic::Ordering::Relaxed);
        shutdown.cancelled().await;
        self.context.ready.store(false, std::sync::atomic::Ordering::Relaxed);
        tracing::info!("shutting down: closing connections");
        tracker.close();
        let deadline = Duration::from_secs(self.context.config.shutdown_timeout_secs);
        let finished = tokio::time::timeout(deadline, tracker.wait()).await.is_ok();
        expiry.abort();
        if let Some(store) = &self.context.store {
            store.close(deadline).await;
        }
        if !finished {
            tracing::warn!(remaining = tracker.len(), "shutdown deadline passed with connections still open");
        }
        tracing::info!("stopped; {}", self.context.metrics);
        finished
    }
}

/// Re-reads the TLS certificate and key (and CA bundle), the password file and the ACL file,
/// without dropping a connection: what SIGHUP does. Each file that cannot be used is refused
/// with one error log line and the one in force stays so; the others are still reloaded.
#[derive(Debug, Clone)]
pub struct Reloader {
    context: Arc<Context>,
}

impl Reloader {
    /// Reloads every file; returns the problems of those refused (empty when all were taken).
    pub fn reload(&self) -> Vec<String> {
        let context = &self.context;
        let mut problems = Vec::new();
        let mut refused = |problem: String| {
            tracing::error!(%problem, "reload refused; the file in force stays so");
            problems.push(problem);
        };
        if let Some(tls) = &context.tls {
            match tls.reload() {
                Ok(()) => tracing::info!("TLS certificate, key and CA reloaded"),
                Err(problem) => refused(problem),
            }
        }
        let auth = &context.auth_files;
        if let (Some(authenticator), Some(path)) = (&context.authenticator, &auth.password_file) {
            match PasswordFile::load(std::path::Path::new(path)) {
                Ok(passwords) => {
                    tracing::info!(users = passwords.len(), "password file reloaded");
                    authenticator.replace_passwords(passwords);
                }
                Err(e) => refused(format!("auth.password_file {e}")),
            }
        }
        if let Some(path) = &auth.acl_file {
            match Acl::load(std::path::Path::new(path)) {
                Ok(acl) => {
                    context.replace_acl(acl);
                    tracing::info!("ACL file reloaded");
                }
                Err(e) => refused(format!("auth.acl_file {e}")),
            }
        }
        problems
    }
}

/// The shared state, with `store` as its durable storage.
fn build_context(
    config: &Config,
    auth_methods: &[Arc<dyn AuthenticationMethod>],
    store: Option<Arc<Store>>,
) -> io::Result<Arc<Context>> {
    let jwt = JwtVerifier::from_config(&config.auth).map_err(io::Error::other)?;
    let authenticator = match (&config.auth.enabled, &config.auth.password_file) {
        (false, _) => None,
        (true, None) => Some(Authenticator::new(
            None,
            config.auth.allow_anonymous,
            config.auth.throttle_failures,
            config.auth.throttle_secs,
        )),
        (true, Some(path)) => {
            let passwords = PasswordFile::load(std::path::Path::new(path))
                .map_err(|e| io::Error::other(format!("auth.password_file {e}")))?;
            tracing::info!(users = passwords.len(), "password file loaded");
            Some(Authenticator::new(
                Some(passwords),
                config.auth.allow_anonymous,
                config.auth.throttle_failures,
                config.auth.throttle_secs,
            ))
        }
    };
    let hook = HttpHook::from_config(&config.auth).map_err(io::Error::other)?.map(Arc::new);
    let acl_hook = hook.clone().filter(|hook| hook.decides_topics());
    let authenticator = authenticator.map(|authenticator| authenticator.with_providers(jwt, hook));
    let mut methods = auth_methods.to_vec();
    if let (Some(authenticator), Some(_)) = (&authenticator, &config.auth.password_file) {
        // Last, so that a method the embedder passed under the same name is found first.
        let scram = ScramSha256::new(authenticator.shared_passwords()).map_err(io::Error::other)?;
        methods.push(Arc::new(scram));
    }
    let acl = match &config.auth.acl_file {
        None => None,
        Some(path) => {
            let acl = Acl::load(std::path::Path::new(path))
                .map_err(|e| io::Error::other(format!("auth.acl_file {e}")))?;
            Some(Arc::new(acl))
        }
    };
    let tls = match &config.tls.cert_file {
        None => None,
        Some(_) => Some(Arc::new(TlsFiles::load(&config.tls).map_err(io::Error::other)?)),
    };
    let metrics = Arc::new(Metrics::default());
    let server = config.server.clone();
    // The validated configuration always names a strategy; without this the router kept its
    // default and `shared_subscription_strategy` had no effect.
    let strategy = server.shared_strategy().unwrap_or_default();
    Ok(Arc::new(Context {
        router: Router::new(server.retained_message_limit, Arc::clone(&metrics))
            .with_strategy(strategy)
            .with_store(store.clone()),
        registry: Registry::default(),
        connection_slots: (server.max_connections > 0)
            .then(|| Arc::new(Semaphore::new(server.max_connections))),
        metrics,
        protection: Protection::new(&server),
        config: server,
        auth_methods: methods,
        store,
        authenticator,
        acl: tokio::sync::watch::Sender::new(acl),
        tls,
        auth_files: config.auth.clone(),
        acl_hook,
        started: std::time::Instant::now(),
        ready: std::sync::atomic::AtomicBool::new(false),
    }))
}

/// Loads `backend`, restores its contents into a new context and starts its writer.
fn start_durable(
    config: &Config,
    auth_methods: &[Arc<dyn AuthenticationMethod>],
    mut backend: Box<dyn Backend>,
) -> Result<(Arc<Context>, Restored), StorageError> {
    let state = backend.load()?;
    let store = Arc::new(Store::new());
    let context = build_context(config, auth_methods, Some(Arc::clone(&store)))
        .map_err(|e| StorageError::Config(e.to_string()))?;
    let restored = restore(&state, &context, &store)?;
    store.start(backend, &state, restored.next_seq, restored.live.clone());
    Ok((context, restored))
}

/// Opens the redb store of `storage.path`, restores its contents and starts its writer, before
/// any listener exists. A corrupt store is set aside (renamed with a timestamp) and the broker
/// starts empty, or with `storage.on_corruption = "refuse"` start-up fails; a store of another
/// layout is always refused.
#[allow(clippy::disallowed_methods)] // Start-up reads the clock to time the restore.
fn open_redb(config: &Config, auth_methods: &[Arc<dyn AuthenticationMethod>]) -> io::Result<Arc<Context>> {
    let dir = config.storage.dir();
    let started = std::time::Instant::now();
    let fail = |e: StorageError| io::Error::other(format!("storage.path {}: {e}", dir.display()));
    let attempt = || RedbBackend::open(&dir).and_then(|b| start_durable(config, auth_methods, Box::new(b)));
    let (context, restored) = match attempt() {
        Ok(opened) => opened,
        Err(StorageError::Corrupt(why)) if config.storage.on_corruption == "set_aside" => {
            let aside = storage::set_aside(&dir).map_err(|e| fail(StorageError::Io(e.to_string())))?;
            tracing::error!(
                store = %dir.display(),
                set_aside = %aside.display(),
                problem = %why,
                "THE DURABLE STORE IS CORRUPT: it was set aside and the broker starts with an empty store"
            );
            attempt().map_err(fail)?
        }
        Err(StorageError::Config(problem)) => return Err(io::Error::other(problem)),
        Err(error) => return Err(fail(error)),
    };
    tracing::info!(
        store = %dir.display(),
        sessions = restored.sessions,
        queued = restored.entries,
        retained = restored.retained,
        millis = started.elapsed().as_millis(),
        "durable store loaded"
    );
    Ok(context)
}

/// Discards offline sessions whose expiry time has passed, publishes wills whose delay has
/// passed and deletes expired retained messages, sleeping until the next of these deadlines. It reads the clock: it is the edge of
/// the registry's sans-IO expiry index.
#[allow(clippy::disallowed_methods)]
async fn expire_sessions(context: Arc<Context>, shutdown: CancellationToken) {
    /// Longest sleep between looks, in case a deadline moved earlier unnoticed.
    const LOOK_AGAIN: Duration = Duration::from_secs(10);
    let mut routing = crate::router::RouteScratch::default();
    loop {
        let now = Instant::now();
        let next = [context.registry.next_deadline(), context.router.next_retained_expiry()]
            .into_iter()
            .flatten()
            .fold(now + LOOK_AGAIN, Instant::min);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = context.registry.changed() => continue,
            () = context.router.retained_expiry_changed() => continue,
            () = tokio::time::sleep_until(next) => {}
        }
        let now = Instant::now();
        let expired = context.router.expire_retained(now);
        if expired > 0 {
            tracing::debug!(expired, "retained messages expired");
        }
        let due = context.registry.expire(now);
        for will in &due.wills {
            crate::connection::publish_will(&context, will, &mut routing);
        }
        for mut session in due.sessions {
            context.metrics.sessions_expired.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(client_id = %session.client_id, "session expired");
            crate::connection::discard(&context, &mut session);
        }
    }
}
