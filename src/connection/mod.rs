//! The connection task: one per client. It owns the socket and its read and write buffers, and,
//! once CONNECT is accepted, the client's Session, which it drives: read, feed the session, take
//! the session's actions (route, subscribe, write), write, sleep until the session's deadline.
//!
//! Each wake-up reads what the socket has, decodes and hands the session every whole packet in
//! the buffer, moves waiting messages from the mailbox into the write buffer, and hands the
//! write buffer to the kernel in one write. Work per turn is bounded: after `WORK_PER_TURN`
//! packets or actions the task yields, so one huge packet never stalls other connections.
//!
//! Back-pressure, both ways, never silences a live client:
//! - outbound, messages are pulled into the write buffer only below `HIGH_WATER`, but the socket
//!   is still read (and PINGREQ answered) up to `READ_LIMIT`; while the broker itself has stopped
//!   reading, bytes the client takes count as keep-alive activity;
//! - inbound, a QoS 1/2 PUBLISH that overfills a subscriber's queue holds its acknowledgement and
//!   the reading of this client until the queue has room, at most `slow_subscriber_timeout_ms`;
//!   then the slow subscriber pays, and the wait does not count against this client's keep-alive.
//!
//! This module is the I/O edge: it reads the clock (`Instant::now`) and hands the time to the
//! session.
//!
//! **Architecture Invariant:** a connection ends with exactly one `Exit`, logged once inside its
//! span; nothing a peer sends can make it panic or reach the accept loop.

mod handoff;
mod handshake;
mod protection;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use bytestring::ByteString;
use iothub_protocol::{
    decode, Auth, AuthProperties, Connect, DecodeError, Disconnect, Packet, ProtocolVersion, ReasonCode, Rule,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::auth::{
    Acl, AuthenticationMethod, Exchange, Grant, HookAction, HookClient, HookVerdict, Permissions, Step,
    Verdict,
};
use crate::context::Context;
use crate::exit::Exit;
use crate::identity::{ClientIdentity, ConnectionInfo};
use crate::mailbox::Mailbox;
use crate::message::{Delivery, Message};
use crate::metrics::LocalCounts;
use crate::router::RouteScratch;
use crate::session::{Action, Link, Session, Takeover, Will, MAX_HOOK_QUESTIONS};
use crate::storage::{Clock, Gate};
use crate::transport::{Transport, Upgrader};
use handoff::SessionGuard;
pub(crate) use handoff::{discard, publish_will};

/// Above this many buffered outbound bytes the task stops pulling messages from the mailbox.
const HIGH_WATER: usize = 64 * 1024;
/// Above this many buffered outbound bytes (answers to a client that sends but does not read)
/// the task stops reading too.
const READ_LIMIT: usize = 4 * HIGH_WATER;
/// Room made in the read buffer before each read.
const READ_CHUNK: usize = 4 * 1024;
/// A buffer this much larger than needed is given back after use.
const SHRINK_ABOVE: usize = 256 * 1024;
/// How long the last bytes (a CONNACK refusal, say) may take to leave before the socket closes.
const FINAL_FLUSH: Duration = Duration::from_secs(1);
/// Packets decoded plus actions taken before the task yields to the others.
const WORK_PER_TURN: usize = 256;

/// A deadline that never comes, for a disabled keep-alive; far enough not to fire, near enough
/// not to overflow `Instant`.
const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Where a turn of work left the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    /// Everything buffered is handled; read more.
    Idle,
    /// The turn's work budget ran out; yield, then go on.
    Yield,
    /// A publisher's acknowledgement waits for room in subscriber queues.
    Blocked,
    /// A packet waits for the HTTP ACL hook's answers.
    Asking,
    /// The client published beyond its limits: nothing more is read until its buckets refill.
    Paused,
}

/// A publisher's acknowledgement waiting for room in subscriber queues.
struct Blocked {
    /// The PUBACK or PUBREC to send once the message is safe.
    ack: Option<Packet>,
    /// The queues the message overfilled.
    full: Vec<Arc<Mailbox>>,
}

/// The wait for room in the queues of a `Blocked`; true if room came before the deadline.
type RoomWait = Pin<Box<dyn Future<Output = bool> + Send>>;

/// Per-connection I/O state.
struct Connection {
    /// Read half of the transport.
    reader: ReadHalf<Box<dyn Transport>>,
    /// Write half of the transport.
    writer: WriteHalf<Box<dyn Transport>>,
    /// Bytes read and not yet decoded.
    rbuf: BytesMut,
    /// Encoded packets not yet written.
    wbuf: BytesMut,
    /// Shared server state.
    context: Arc<Context>,
    /// Reused routing buffers, and the subscribers to wake after a batch.
    routing: RouteScratch,
    /// Reused buffer for mailbox pulls.
    deliveries: Vec<Delivery>,
    /// Reused buffer for retained messages matching a new subscription.
    retained: Vec<Arc<Message>>,
    /// Retained-store nodes the current SUBSCRIBE may still visit.
    walk_budget: usize,
    /// What the transport told about the connection.
    info: ConnectionInfo,
    /// The protocol version and limits, once CONNACK accepted the connection.
    link: Option<Link>,
    /// The enhanced authentication method the connection authenticated with, if any.
    auth: Option<AuthState>,
    /// Holds output that depends on durable ops until they are committed.
    gate: Gate,
    /// Counts not yet added to the server's.
    counts: LocalCounts,
    /// A packet held until the HTTP ACL hook has answered these questions about it.
    deferred: Option<(Packet, Vec<(HookAction, String)>)>,
    /// Who the client is, once CONNECT is accepted (for the hook's questions).
    identity: Option<Arc<ClientIdentity>>,
    /// The client's publish limits, when `max_publish_rate` or `max_publish_bytes_rate` is set.
    publish_limit: Option<crate::protection::PublishLimit>,
}

/// A connection's enhanced authentication (5.0 section 4.12).
struct AuthState {
    /// The method named in CONNECT.
    method: Arc<dyn AuthenticationMethod>,
    /// The client identifier, for re-authentication.
    client_id: ByteString,
    /// The connection's username, which a re-authentication may not change.
    username: Option<ByteString>,
    /// A re-authentication in progress.
    exchange: Option<Box<dyn Exchange>>,
}

/// What an enhanced authentication at CONNECT starts from.
struct Login<'a> {
    /// The CONNECT.
    connect: &'a Connect,
    /// The client identifier, assigned if the CONNECT had none.
    client_id: &'a ByteString,
    /// The username the client claims: its certificate's name, or the CONNECT's User Name.
    claimed: Option<&'a str>,
    /// Whether `claimed` is a certificate's name that TLS verified.
    certified: bool,
}

/// Serves one accepted socket until it ends, the session is taken over, or `shutdown` is
/// cancelled. The PROXY header of a `proxied` listener and the transport's handshake run here,
/// in the connection's own task, within the same `connect_timeout_secs` as CONNECT.
#[allow(clippy::disallowed_methods)] // The I/O edge reads the clock.
pub(crate) async fn run(
    stream: TcpStream,
    upgrader: Upgrader,
    proxied: bool,
    mut info: ConnectionInfo,
    context: Arc<Context>,
    shutdown: CancellationToken,
) {
    let deadline = Instant::now() + Duration::from_secs(context.config.connect_timeout_secs);
    let open = protection::open(stream, &upgrader, proxied, &mut info, &context);
    let upgraded = tokio::select! {
        () = shutdown.cancelled() => Err(Exit::Shutdown),
        // Boxed: the PROXY header, TLS and WebSocket handshakes are large futures, and every
        // connection's task would otherwise keep room for them for its whole life.
        upgraded = tokio::time::timeout_at(deadline, Box::pin(open)) => match upgraded {
            Err(_) => Err(Exit::HandshakeTimeout),
            Ok(result) => result,
        },
    };
    let transport = match upgraded {
        Ok(upgraded) => {
            info.certificate_name = upgraded.certificate_name.map(Arc::from);
            upgraded.transport
        }
        Err(exit) => {
            exit.log();
            return;
        }
    };
    let (reader, writer) = tokio::io::split(transport);
    let mut connection = Connection {
        reader,
        writer,
        rbuf: BytesMut::new(),
        wbuf: BytesMut::new(),
        context: Arc::clone(&context),
        routing: RouteScratch::default(),
        deliveries: Vec::new(),
        retained: Vec::new(),
        walk_budget: 0,
        info,
        link: None,
        auth: None,
        gate: Gate::default(),
        deferred: None,
        identity: None,
        counts: LocalCounts::default(),
        publish_limit: None,
    };
    let exit = connection.serve(&shutdown, deadline).await;
    if matches!(exit, Exit::Violation(_)) {
        context.metrics.protocol_errors.fetch_add(1, Ordering::Relaxed);
    }
    exit.log();
    connection.tell_disconnect(&exit);
    connection.close().await;
}

impl Connection {
    #[allow(clippy::disallowed_methods)] // The I/O edge reads the clock.
    async fn serve(&mut self, shutdown: &CancellationToken, connect_deadline: Instant) -> Exit {
        let connect = tokio::select! {
            () = shutdown.cancelled() => return Exit::Shutdown,
            read = tokio::time::timeout_at(connect_deadline, self.read_connect()) => match read {
                Err(_) => return Exit::ConnectTimeout,
                Ok(Err(exit)) => return exit,
                Ok(Ok(connect)) => connect,
            },
        };
        let link = handshake::link(&connect, &self.context);
        if let Some(code) = handshake::refusal(&connect, &self.context) {
            // A refusal that does not fit the client's Maximum Packet Size is not sent.
            let _ = handshake::connack(&mut self.wbuf, &link, false, code, None);
            return Exit::Refused(code);
        }
        if let Some(error) = handshake::violation(&connect) {
            return Exit::Violation(error);
        }
        // With `use_identity_as_username`, a verified client certificate names the user and
        // authenticates it; a password, when given too, must also be that user's.
        let certified = match &self.info.certificate_name {
            Some(name) if self.context.tls.as_ref().is_some_and(|tls| tls.identity_as_username()) => {
                Some(Arc::clone(name))
            }
            _ => None,
        };
        let claimed = certified.as_deref().or(connect.username.as_deref());
        let assigned = connect.client_id.is_empty().then(handshake::assigned_client_id);
        let client_id = match &assigned {
            Some(assigned) => assigned.clone(),
            // A copy of its own, so the session does not pin the whole CONNECT packet.
            None => ByteString::from(&*connect.client_id),
        };
        let span = tracing::Span::current();
        span.record("client_id", for_logs(&client_id));
        span.record("protocol", connect.protocol.level());
        // Flapping is told by the identifiers clients choose; an assigned one is new each time.
        let chosen = assigned.is_none();
        if chosen && protection::is_banned(&self.context, &client_id) {
            let _ = handshake::connack(&mut self.wbuf, &link, false, ReasonCode::Banned, None);
            return Exit::Refused(ReasonCode::Banned);
        }
        let method = handshake::properties(&connect)
            .authentication_method
            .as_deref()
            .filter(|_| link.is_v5())
            .and_then(|name| self.context.auth_method(name))
            .cloned();
        // The client is authenticated before its identifier is claimed, so that an
        // unauthenticated client can never take over a session: by the enhanced authentication
        // method its CONNECT names (4.12), or else by the password check.
        let mut auth_data = None;
        // What a token or the HTTP hook said about the client: its username, perhaps its ACL.
        let mut grant: Option<Grant> = None;
        let username = match &method {
            // Boxed: a login may wait on the HTTP hook's client, a large future.
            None => match Box::pin(self.check_password(
                &connect,
                &link,
                claimed,
                certified.is_some(),
                shutdown,
                connect_deadline,
            ))
            .await
            {
                Ok(granted) => {
                    grant = granted;
                    match &grant {
                        Some(grant) => grant.username.as_deref().map(ByteString::from),
                        None => claimed.map(ByteString::from),
                    }
                }
                Err(exit) => return exit,
            },
            Some(method) => {
                let login = Login {
                    connect: &connect,
                    client_id: &client_id,
                    claimed,
                    certified: certified.is_some(),
                };
                match Box::pin(self.enhanced_login(&link, method, &login, shutdown, connect_deadline)).await {
                    Ok((data, username)) => {
                        auth_data = data;
                        username
                    }
                    Err(exit) => return exit,
                }
            }
        };
        // Subscribed before the rules are read: a reload from here on reaches this session.
        let mut acl_changes = self.context.acl.subscribe();
        let mut permissions = match grant.as_ref().and_then(|grant| grant.rules.as_deref()) {
            Some(rules) => Some(Permissions::granted(&client_id, username.as_deref(), rules)),
            None => acl_changes.borrow().clone().map(|acl| acl.permissions(&client_id, username.as_deref())),
        };
        if let Some(hook) = self.context.acl_hook.clone() {
            // The hook decides topics first; the rules above decide what it ignores.
            let mut with_hook = permissions
                .take()
                .unwrap_or_else(|| Permissions::none(&client_id, username.as_deref()))
                .with_hook();
            if let Some(will) = &connect.will {
                let who =
                    HookClient { client_id: &client_id, username: username.as_deref(), peer: self.info.peer };
                let answer = tokio::select! {
                    () = shutdown.cancelled() => return Exit::Shutdown,
                    answer = Box::pin(hook.allowed(who, HookAction::Publish, &will.topic)) => answer,
                };
                with_hook.record_decisions(vec![(
                    (HookAction::Publish, will.topic.to_string()),
                    answer.allowed(),
                )]);
            }
            permissions = Some(with_hook);
        }
        // A will is a publication: its topic must be writable, or CONNECT is refused.
        if let (Some(permissions), Some(will)) = (&permissions, &connect.will) {
            if !permissions.can_publish(&will.topic) {
                tracing::info!("will topic not allowed by the ACL");
                let _ = handshake::connack(&mut self.wbuf, &link, false, ReasonCode::NotAuthorized, None);
                return Exit::Refused(ReasonCode::NotAuthorized);
            }
        }
        if let Some(method) = method {
            self.auth = Some(AuthState {
                method,
                client_id: client_id.clone(),
                username: username.clone(),
                exchange: None,
            });
        }
        // Counted only once authenticated, so nobody can get another's identifier banned.
        if chosen && protection::is_flapping(&self.context, &client_id) {
            let _ = handshake::connack(&mut self.wbuf, &link, false, ReasonCode::Banned, None);
            return Exit::Refused(ReasonCode::Banned);
        }
        if let Some(username) = &username {
            tracing::Span::current().record("username", for_logs(username));
        }
        let (keep_alive, server_keep_alive) = handshake::keep_alive(&connect, &self.context);
        let identity = Arc::new(
            ClientIdentity::new(&self.info, client_id.clone(), username)
                .with_connect(connect.protocol.level(), keep_alive),
        );
        self.identity = Some(Arc::clone(&identity));
        let connection_id = self.context.registry.next_id();
        let takeover = Arc::new(Takeover::default());
        let claim = self.context.registry.claim(
            &identity,
            connection_id,
            &takeover,
            connect.clean_start,
            Instant::now(),
        );
        let previous = tokio::select! {
            () = shutdown.cancelled() => return Exit::Shutdown,
            previous = claim => previous,
        };
        // From here on the guard hands the session back however this task ends.
        let mut guard = SessionGuard::new(
            Arc::clone(&self.context),
            client_id.clone(),
            connection_id,
            Arc::clone(&takeover),
        );
        let accepted = handshake::open_session(&connect, client_id, previous, &self.context);
        let properties = link.is_v5().then(|| {
            let mut properties = handshake::connack_properties(
                &connect,
                &self.context,
                &accepted,
                assigned.as_ref(),
                server_keep_alive,
            );
            if let Some(auth) = &self.auth {
                properties.authentication_method = Some(ByteString::from(auth.method.name()));
                properties.authentication_data = auth_data.take();
            }
            properties
        });
        if let Err(error) = handshake::connack(
            &mut self.wbuf,
            &link,
            accepted.session_present,
            ReasonCode::Success,
            properties,
        ) {
            // Not even the shortest CONNACK fits the client's Maximum Packet Size: it cannot be
            // told it is connected, so it is not; the session goes back as it was.
            guard.hold(accepted.session);
            guard.finish(&Exit::Encode(error), &mut self.routing);
            return Exit::Encode(error);
        }
        self.link = Some(link);
        self.publish_limit = self.context.protection.publish_limit(link.is_v5(), Instant::now());
        log_connected(&connect, accepted.session_present);
        let metrics = &self.context.metrics;
        if let Some(counter) =
            metrics.connects_by_version.get(usize::from(connect.protocol.level().saturating_sub(3)))
        {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        let online = metrics.connections_current.fetch_add(1, Ordering::Relaxed) + 1;
        metrics.connections_maximum.fetch_max(online, Ordering::Relaxed);
        let _online = OnlineGuard(Arc::clone(metrics));
        // Only the keep-alive and the will outlive the handshake; the rest of CONNECT (and the
        // buffer its fields point into) is freed now rather than held for the connection's life.
        let will = connect.will.as_ref().and_then(Will::from_connect);
        drop(connect);
        let session = guard.hold(accepted.session);
        self.context.registry.attach_mailbox(&identity.client_id, connection_id, session.mailbox());
        let now = Instant::now();
        session.attach(keep_alive, will, link, now);
        session.set_permissions(permissions);
        if self.auth.is_some() {
            session.set_enhanced_auth();
        }
        // The session's subscriptions may come from another connection with this client
        // identifier (another user, perhaps) or predate the rules in force: each must be
        // allowed now, before anything is delivered through it.
        if let (Some(hook), Some(identity)) = (self.context.acl_hook.clone(), self.identity.clone()) {
            let questions = session.unasked_subscriptions(MAX_HOOK_QUESTIONS);
            if !questions.is_empty() {
                let answers = tokio::select! {
                    () = shutdown.cancelled() => return Exit::Shutdown,
                    answers = ask_hook(hook, identity, questions) => answers,
                };
                let failed = session.record_hook_answers(answers);
                let pruned = session.prune_subscriptions();
                session.forget_hook_answers(&failed);
                if !pruned.is_empty() {
                    self.context.unsubscribe_revoked(session.mailbox(), &pruned);
                }
            }
        }
        let pruned = session.prune_subscriptions();
        if !pruned.is_empty() {
            self.context.unsubscribe_revoked(session.mailbox(), &pruned);
        }
        // A persistent session's record (version, expiry, will) is durable before CONNACK goes.
        session.persist(&Clock::now(), false);
        let exit = match session.resend_inflight(&mut self.wbuf, now) {
            Ok(()) => self.serve_session(session, shutdown, &takeover, &mut acl_changes).await,
            Err(error) => Exit::Encode(error),
        };
        // A reload the connection had no turn to apply still decides the will.
        if acl_changes.has_changed().unwrap_or(false) {
            let acl = acl_changes.borrow_and_update().clone();
            self.apply_acl(session, acl.as_deref());
        }
        guard.finish(&exit, &mut self.routing);
        exit
    }

    /// Reads until the first packet is decoded; it must be CONNECT [MQTT-3.1.0-1].
    async fn read_connect(&mut self) -> Result<Box<Connect>, Exit> {
        let max = self.context.config.max_packet_size;
        loop {
            // Read before decoding, which consumes a packet it refuses.
            let v5 = handshake::is_v5_connect(&self.rbuf);
            match decode(&mut self.rbuf, ProtocolVersion::V311, max) {
                Ok(Some(Packet::Connect(connect))) => return Ok(connect),
                Ok(Some(other)) => {
                    tracing::debug!(packet = other.name(), "first packet is not CONNECT");
                    return Err(Exit::Violation(DecodeError::Violation(Rule::Mqtt3_1_0_1)));
                }
                Ok(None) => {}
                Err(error) => return Err(handshake::answer_to_bad_connect(error, v5, &mut self.wbuf)),
            }
            self.read_some().await?;
        }
    }

    /// The password check of a CONNECT that names no enhanced authentication method, when
    /// `[auth]` is enabled; a refusal is answered with its CONNACK.
    async fn check_password(
        &mut self,
        connect: &Connect,
        link: &Link,
        username: Option<&str>,
        certified: bool,
        shutdown: &CancellationToken,
        deadline: Instant,
    ) -> Result<Option<Grant>, Exit> {
        let context = Arc::clone(&self.context);
        let Some(authenticator) = &context.authenticator else {
            return Ok(None);
        };
        let check = authenticator.check(
            self.info.peer,
            &connect.client_id,
            username,
            connect.password.as_deref(),
            certified,
            connect.protocol.level(),
        );
        let login = tokio::select! {
            () = shutdown.cancelled() => return Err(Exit::Shutdown),
            login = tokio::time::timeout_at(deadline, check) => login.map_err(|_| Exit::ConnectTimeout)?,
        };
        let metrics = &context.metrics;
        let counter = match login.verdict {
            Verdict::Allowed => &metrics.auth_accepted,
            Verdict::BadCredentials => &metrics.auth_bad_credentials,
            Verdict::NotAuthorized => &metrics.auth_not_authorized,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let code = match login.verdict {
            Verdict::Allowed => return Ok(login.grant),
            Verdict::BadCredentials => ReasonCode::BadUserNameOrPassword,
            Verdict::NotAuthorized => ReasonCode::NotAuthorized,
        };
        let _ = handshake::connack(&mut self.wbuf, link, false, code, None);
        Err(Exit::Refused(code))
    }

    /// The enhanced authentication of a CONNECT that names `method` (4.12), which stands in for
    /// the password check: refused at once for a throttled address or client identifier, and
    /// counted by the throttle like a password check. Returns the Authentication Data for
    /// CONNACK and the connection's username: the one the exchange authenticated, which a
    /// claimed username must equal (CONNACK 0x86 otherwise). A method that authenticates no
    /// username keeps a verified certificate's name; while `[auth]` is enabled it admits no
    /// CONNECT User Name, which nothing would have verified.
    async fn enhanced_login(
        &mut self,
        link: &Link,
        method: &Arc<dyn AuthenticationMethod>,
        login: &Login<'_>,
        shutdown: &CancellationToken,
        deadline: Instant,
    ) -> Result<(Option<bytes::Bytes>, Option<ByteString>), Exit> {
        let context = Arc::clone(&self.context);
        let authenticator = context.authenticator.as_ref();
        let (peer, client_id) = (self.info.peer.ip(), &*login.connect.client_id);
        if authenticator.is_some_and(|a| a.throttled(peer, client_id)) {
            tracing::debug!(%peer, "enhanced authentication refused without an exchange: too many failures");
            let _ = handshake::connack(&mut self.wbuf, link, false, ReasonCode::NotAuthorized, None);
            return Err(Exit::Refused(ReasonCode::NotAuthorized));
        }
        let data = handshake::properties(login.connect).authentication_data.clone();
        let exchange = self.authenticate(link, method, login.client_id, data);
        let done = tokio::select! {
            () = shutdown.cancelled() => return Err(Exit::Shutdown),
            done = tokio::time::timeout_at(deadline, exchange) => done.map_err(|_| Exit::ConnectTimeout)?,
        };
        let outcome = done.and_then(|(data, authenticated)| {
            let username = match (authenticated, login.claimed) {
                (Some(name), Some(claimed)) if &*name != claimed => None,
                (Some(name), _) => Some(Some(name)),
                (None, Some(_)) if authenticator.is_some() && !login.certified => None,
                (None, claimed) => Some(claimed.map(ByteString::from)),
            };
            let Some(username) = username else {
                tracing::info!("the User Name is not the one enhanced authentication authenticated");
                let code = ReasonCode::BadUserNameOrPassword;
                let _ = handshake::connack(&mut self.wbuf, link, false, code, None);
                return Err(Exit::Refused(code));
            };
            Ok((data, username))
        });
        if let Some(authenticator) = authenticator {
            match &outcome {
                Ok(_) => authenticator.record_exchange(peer, client_id, false),
                Err(Exit::Refused(_)) => authenticator.record_exchange(peer, client_id, true),
                // A protocol error, a timeout or a close is not a credential that failed.
                Err(_) => {}
            }
        }
        outcome
    }

    /// Runs an enhanced authentication exchange of CONNECT (4.12): AUTH 0x18 packets both ways
    /// until the method decides. Returns the Authentication Data for CONNACK and the username
    /// the exchange authenticated, or the exit: a CONNACK 0x87 refusal [MQTT-4.12.0-4], or a
    /// Protocol Error for an AUTH out of sequence.
    async fn authenticate(
        &mut self,
        link: &Link,
        method: &Arc<dyn AuthenticationMethod>,
        client_id: &str,
        data: Option<bytes::Bytes>,
    ) -> Result<(Option<bytes::Bytes>, Option<ByteString>), Exit> {
        let (mut exchange, mut step) = method.begin(client_id, data.as_deref());
        loop {
            match step {
                Step::Success(data) => return Ok((data, exchange.username().map(ByteString::from))),
                Step::Failure => {
                    let _ = handshake::connack(&mut self.wbuf, link, false, ReasonCode::NotAuthorized, None);
                    return Err(Exit::Refused(ReasonCode::NotAuthorized));
                }
                Step::Continue(data) => {
                    let packet = auth_packet(ReasonCode::ContinueAuthentication, method.name(), data);
                    link.write(&mut self.wbuf, &packet).map_err(Exit::Encode)?;
                    self.writer.write_all_buf(&mut self.wbuf).await.map_err(Exit::Io)?;
                    let reply = self.read_packet(ProtocolVersion::V5).await?;
                    let data = match reply {
                        Packet::Auth(auth) if auth.reason_code == ReasonCode::ContinueAuthentication => {
                            auth_data_of(&auth, method.name())?
                        }
                        _ => return Err(Exit::Violation(DecodeError::Violation(Rule::AuthOutOfSequence))),
                    };
                    step = exchange.step(data.as_deref());
                }
            }
        }
    }

    /// Reads until one whole packet is decoded.
    async fn read_packet(&mut self, version: ProtocolVersion) -> Result<Packet, Exit> {
        let max = self.context.config.max_packet_size;
        loop {
            match decode(&mut self.rbuf, version, max) {
                Ok(Some(packet)) => return Ok(packet),
                Ok(None) => {}
                Err(error) => return Err(Exit::Violation(error)),
            }
            self.read_some().await?;
        }
    }

    /// A step of re-authentication (4.12.1): an AUTH 0x19 starts it, AUTH 0x18 continues it; the
    /// method's answer is written, and a failure ends the connection with DISCONNECT 0x87.
    fn reauthenticate(&mut self, auth: &Auth) -> Result<(), Exit> {
        let link = self.link();
        let Some(state) = &mut self.auth else {
            return Err(Exit::Violation(DecodeError::Violation(Rule::AuthWithoutMethod)));
        };
        let name = state.method.name().to_owned();
        let data = auth_data_of(auth, &name)?;
        let step = match (auth.reason_code, state.exchange.as_mut()) {
            (ReasonCode::ReAuthenticate, None) => {
                let (exchange, step) = state.method.begin(&state.client_id, data.as_deref());
                state.exchange = Some(exchange);
                step
            }
            (ReasonCode::ContinueAuthentication, Some(exchange)) => exchange.step(data.as_deref()),
            _ => return Err(Exit::Violation(DecodeError::Violation(Rule::AuthOutOfSequence))),
        };
        let accepted = match step {
            Step::Continue(data) => {
                let reply = auth_packet(ReasonCode::ContinueAuthentication, &name, data);
                return link.write(&mut self.wbuf, &reply).map_err(Exit::Encode);
            }
            // A re-authentication may not change the username: 4.12.1 lets a server refuse one
            // that does.
            Step::Success(data) => {
                let exchange = state.exchange.take();
                let authenticated = exchange.as_ref().and_then(|exchange| exchange.username());
                authenticated.is_none_or(|name| state.username.as_deref() == Some(name)).then_some(data)
            }
            Step::Failure => None,
        };
        if let Some(authenticator) = &self.context.authenticator {
            authenticator.record_exchange(self.info.peer.ip(), &state.client_id, accepted.is_none());
        }
        match accepted {
            Some(data) => link
                .write(&mut self.wbuf, &auth_packet(ReasonCode::Success, &name, data))
                .map_err(Exit::Encode),
            None => Err(Exit::NotAuthorized),
        }
    }

    /// Reads once. CONNECT is small, so no chunk is reserved: an empty buffer reads 64 bytes and
    /// the decoder reserves the rest of a longer packet once its header is known.
    async fn read_some(&mut self) -> Result<usize, Exit> {
        match self.reader.read_buf(&mut self.rbuf).await {
            Ok(0) => Err(Exit::PeerClosed),
            Ok(n) => Ok(n),
            Err(error) => Err(Exit::Io(error)),
        }
    }

    #[allow(clippy::disallowed_methods)] // The I/O edge reads the clock.
    async fn serve_session(
        &mut self,
        session: &mut Session,
        shutdown: &CancellationToken,
        takeover: &Takeover,
        acl_changes: &mut watch::Receiver<Option<Arc<Acl>>>,
    ) -> Exit {
        let mut watching_acl = acl_changes.borrow().is_some();
        let slow_timeout = self.context.config.slow_subscriber_timeout();
        let max_inflight = session.link().max_inflight;
        let mailbox = Arc::clone(session.mailbox());
        let mut blocked: Option<Blocked> = None;
        let mut room_wait: Option<RoomWait> = None;
        let mut turn = match self.process(session, &mut blocked, Instant::now()) {
            Ok(turn) => turn,
            Err(exit) => return exit,
        };
        release_if_empty(&mut self.rbuf);
        let deadline = |session: &Session| session.poll_timeout().unwrap_or_else(|| Instant::now() + NEVER);
        let timeout = tokio::time::sleep_until(deadline(session));
        tokio::pin!(timeout);
        let store = self.context.store.clone();
        let mut commits = store.as_ref().map(|store| store.subscribe());
        let mut asking: Option<HookAnswers> = None;
        loop {
            if let (Turn::Asking, None, Some(hook), Some(identity)) =
                (turn, &asking, &self.context.acl_hook, &self.identity)
            {
                let questions = self.deferred.as_mut().map(|(_, questions)| std::mem::take(questions));
                asking =
                    Some(ask_hook(Arc::clone(hook), Arc::clone(identity), questions.unwrap_or_default()));
            }
            if mailbox.is_slow() {
                return Exit::SlowSubscriber;
            }
            // A reloaded ACL is applied before anything more is sent or read.
            if watching_acl && acl_changes.has_changed().unwrap_or(false) {
                let acl = acl_changes.borrow_and_update().clone();
                self.apply_acl(session, acl.as_deref());
            }
            self.check_gate(&mailbox);
            if let (Some(blocked), None) = (&blocked, &room_wait) {
                room_wait = Some(wait_for_room(blocked.full.clone(), Instant::now() + slow_timeout));
            }
            if self.wbuf.len() < HIGH_WATER {
                let budget = HIGH_WATER - self.wbuf.len();
                if let Err(error) = session.poll_transmit(
                    &mut self.wbuf,
                    max_inflight,
                    budget,
                    &mut self.deliveries,
                    Instant::now(),
                ) {
                    return Exit::Encode(error);
                }
            }
            self.check_gate(&mailbox);
            let (sent, sent_payload) = session.take_sent();
            if sent != [0; 3] {
                for (total, count) in self.counts.sent.iter_mut().zip(sent) {
                    *total += count;
                }
                self.counts.sent_payload += sent_payload;
            }
            mailbox.set_inflight(session.inflight_len());
            self.counts.flush(&self.context.metrics);
            let committed = store.as_ref().map_or(0, |store| store.committed());
            let writable = self.gate.writable(self.wbuf.len(), committed);
            let held = self.gate.waiting_for().is_some();
            let backlogged = self.wbuf.len() >= READ_LIMIT;
            let reading = turn == Turn::Idle && !backlogged;
            let resume_at = self.publish_limit.as_ref().and_then(crate::protection::PublishLimit::resume_at);
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return Exit::Shutdown,
                () = takeover.kicked() => {
                    return if takeover.kicked_by_admin() { Exit::AdminDisconnect } else { Exit::TakenOver };
                }
                written = self.writer.write(&self.wbuf[..writable]), if writable > 0 => match written {
                    Ok(0) => return Exit::PeerClosed,
                    Ok(n) => {
                        self.counts.bytes_out += n as u64;
                        self.wbuf.advance(n);
                        self.gate.wrote(n);
                        if backlogged {
                            // The broker is not reading this client, and the client is taking
                            // what it is sent: it is alive.
                            session.record_activity(Instant::now());
                        }
                        shrink_if_huge(&mut self.wbuf);
                    }
                    Err(error) => return Exit::Io(error),
                },
                room = wait(&mut room_wait), if room_wait.is_some() => {
                    room_wait = None;
                    let now = Instant::now();
                    if let Some(done) = blocked.take() {
                        if let Err(exit) = self.unblock(done, room) {
                            return exit;
                        }
                    }
                    // The client was not read while it waited on others: not its silence.
                    session.record_activity(now);
                    turn = match self.process(session, &mut blocked, now) {
                        Ok(turn) => turn,
                        Err(exit) => return exit,
                    };
                }
                read = self.reader.read_buf(&mut self.rbuf), if reading => {
                    match read {
                        Ok(0) => return Exit::PeerClosed,
                        Ok(n) => self.counts.bytes_in += n as u64,
                        Err(error) => return Exit::Io(error),
                    }
                    turn = match self.process(session, &mut blocked, Instant::now()) {
                        Ok(turn) => turn,
                        Err(exit) => return exit,
                    };
                    shrink_if_huge(&mut self.rbuf);
                    if self.rbuf.capacity() > 0 && self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 4 {
                        self.rbuf.reserve(READ_CHUNK);
                    }
                }
                answers = answered(&mut asking), if asking.is_some() => {
                    asking = None;
                    let failed = session.record_hook_answers(answers);
                    if let Some((packet, _)) = self.deferred.take() {
                        if let Err(exit) = session.handle_packet(packet, Instant::now()) {
                            return exit;
                        }
                    }
                    session.forget_hook_answers(&failed);
                    turn = match self.process(session, &mut blocked, Instant::now()) {
                        Ok(turn) => turn,
                        Err(exit) => return exit,
                    };
                }
                () = protection::resume(resume_at), if turn == Turn::Paused => {
                    turn = match self.process(session, &mut blocked, Instant::now()) {
                        Ok(turn) => turn,
                        Err(exit) => return exit,
                    };
                }
                () = tokio::task::yield_now(), if turn == Turn::Yield => {
                    turn = match self.process(session, &mut blocked, Instant::now()) {
                        Ok(turn) => turn,
                        Err(exit) => return exit,
                    };
                }
                () = mailbox.notified() => {}
                _ = changed(&mut commits), if held => {}
                changed = acl_changes.changed(), if watching_acl => {
                    watching_acl = changed.is_ok();
                    let acl = acl_changes.borrow().clone();
                    self.apply_acl(session, acl.as_deref());
                }
                () = &mut timeout => {
                    let now = Instant::now();
                    // Not read while it waited on others, on the hook or for its buckets to
                    // refill: not its silence.
                    if blocked.is_some() || asking.is_some() || turn == Turn::Paused {
                        session.record_activity(now);
                    }
                    if let Err(exit) = session.handle_timeout(now) {
                        return exit;
                    }
                    // A connection the keep-alive check finds with nothing buffered gives its
                    // buffers back; a busy one pays one reallocation per keep-alive period.
                    release_if_empty(&mut self.rbuf);
                    release_if_empty(&mut self.wbuf);
                    timeout.as_mut().reset(deadline(session));
                }
            }
        }
    }

    /// Applies reloaded ACL rules to the session: subscriptions they no longer allow leave the
    /// router and the store.
    fn apply_acl(&self, session: &mut Session, acl: Option<&Acl>) {
        if let Some(acl) = acl {
            let revoked = session.revoke(acl);
            if !revoked.is_empty() {
                self.context.unsubscribe_revoked(session.mailbox(), &revoked);
            }
        }
    }

    /// Decodes and hands the session every whole packet in the read buffer, taking the session's
    /// actions after each, until the buffer is empty, an acknowledgement must wait, or the turn's
    /// work budget is spent. Subscribers that received messages are woken once, at the end.
    fn process(
        &mut self,
        session: &mut Session,
        blocked: &mut Option<Blocked>,
        now: Instant,
    ) -> Result<Turn, Exit> {
        let max = self.context.config.max_packet_size;
        let version = session.link().version;
        let mut work = 0;
        let result = 'turn: loop {
            while let Some(action) = session.poll_action() {
                work += 1;
                let action = match self.refuse_while_storage_fails(action, session) {
                    Ok(Some(action)) => action,
                    Ok(None) => continue,
                    Err(exit) => break 'turn Err(exit),
                };
                match self.apply(action, session.mailbox()) {
                    Ok(None) => {}
                    Ok(Some(wait)) => {
                        *blocked = Some(wait);
                        break 'turn Ok(Turn::Blocked);
                    }
                    Err(exit) => break 'turn Err(exit),
                }
                if work >= WORK_PER_TURN {
                    break 'turn Ok(Turn::Yield);
                }
            }
            if work >= WORK_PER_TURN {
                break Ok(Turn::Yield);
            }
            if let Some(limit) = &mut self.publish_limit {
                if limit.paused(now) {
                    break Ok(Turn::Paused);
                }
            }
            let buffered = self.rbuf.len();
            match decode(&mut self.rbuf, version, max) {
                Ok(Some(packet)) => {
                    work += 1;
                    self.counts.packets_in += 1;
                    if let (Some(limit), Packet::Publish(_)) = (&mut self.publish_limit, &packet) {
                        if !limit.admit(buffered - self.rbuf.len(), now) {
                            self.context.metrics.publish_rate_limited.fetch_add(1, Ordering::Relaxed);
                            break Err(Exit::MessageRateTooHigh);
                        }
                        if limit.paused(now) {
                            self.context.metrics.publish_rate_limited.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if self.context.acl_hook.is_some() {
                        let questions = session.hook_questions(&packet);
                        if !questions.is_empty() {
                            // Nothing more is read until the hook has answered.
                            self.deferred = Some((packet, questions));
                            break Ok(Turn::Asking);
                        }
                    }
                    if let Err(exit) = session.handle_packet(packet, now) {
                        break Err(exit);
                    }
                }
                Ok(None) => break Ok(Turn::Idle),
                Err(error) => break Err(Exit::Violation(error)),
            }
        };
        self.routing.wake_all();
        result
    }

    /// While the durable store refuses writes (a full disk), a QoS 1/2 PUBLISH is not accepted:
    /// nothing could be promised about it. A 5.0 client gets PUBACK/PUBREC 0x97 (Quota
    /// exceeded) and the exchange ends; a 3.1.1 client, which has no way to be told, is
    /// disconnected. Either way the message is not routed, and its QoS 2 packet identifier is
    /// forgotten, so a re-send is a new message. Other actions pass.
    fn refuse_while_storage_fails(
        &mut self,
        action: Action,
        session: &mut Session,
    ) -> Result<Option<Action>, Exit> {
        let failing = self.context.store.as_ref().is_some_and(|store| store.is_failing());
        let Action::Publish { ack: Some(ack), .. } = &action else { return Ok(Some(action)) };
        if !failing {
            return Ok(Some(action));
        }
        let (Packet::PubAck(response) | Packet::PubRec(response)) = ack else { return Ok(Some(action)) };
        let mut refusal = response.clone();
        if matches!(ack, Packet::PubRec(_)) {
            session.forget_incoming(refusal.packet_id);
        }
        let link = self.link();
        if !link.is_v5() {
            return Err(Exit::StorageRefused);
        }
        refusal.reason_code = ReasonCode::QuotaExceeded;
        refusal.properties = Some(Box::new(iothub_protocol::PublishResponseProperties {
            reason_string: Some(ByteString::from_static("the broker's storage refuses writes; not accepted")),
            ..iothub_protocol::PublishResponseProperties::default()
        }));
        let packet =
            if matches!(ack, Packet::PubRec(_)) { Packet::PubRec(refusal) } else { Packet::PubAck(refusal) };
        link.write(&mut self.wbuf, &packet).map_err(Exit::Encode)?;
        Ok(None)
    }

    /// Takes one action of the session. Returns the wait, if a routed message overfilled a
    /// subscriber's queue and its acknowledgement must wait.
    fn apply(&mut self, action: Action, mailbox: &Arc<Mailbox>) -> Result<Option<Blocked>, Exit> {
        let router = &self.context.router;
        let link = self.link();
        match action {
            Action::Publish { message, mut ack } => {
                // A new inbound QoS 2 identifier is logged with the publication's own ops, so
                // that a crash keeps both or neither: a re-sent PUBLISH is then routed exactly
                // once.
                if let (Some(log), Some(Packet::PubRec(response))) = (mailbox.log(), &ack) {
                    self.routing.add_op(log.incoming_op(response.packet_id.get()));
                }
                let matched = router.publish(&message, &mut self.routing);
                self.counts.received[usize::from(message.qos as u8)] += 1;
                self.counts.received_payload += message.payload.len() as u64;
                if matched == 0 && message.qos == iothub_protocol::QoS::AtMostOnce {
                    self.counts.no_subscribers += 1;
                }
                if matched == 0 && link.is_v5() {
                    // 0x10: accepted, but nobody subscribes (3.4.2.1, 3.5.2.1).
                    if let Some(Packet::PubAck(response) | Packet::PubRec(response)) = &mut ack {
                        response.reason_code = ReasonCode::NoMatchingSubscribers;
                    }
                }
                let full = self.routing.take_full();
                if !full.is_empty() {
                    return Ok(Some(Blocked { ack, full }));
                }
                if let Some(ack) = ack {
                    link.write(&mut self.wbuf, &ack).map_err(Exit::Encode)?;
                }
            }
            Action::Subscribe { filter, options, subscription_id, send_retained, walk_budget } => {
                if let Some(budget) = walk_budget {
                    self.walk_budget = budget;
                }
                let retained = send_retained.then_some((&mut self.retained, &mut self.walk_budget));
                // The session refused filters the router would refuse, so this cannot fail.
                let _ = router.subscribe(&filter, mailbox, &options, subscription_id, retained);
                if let Some(log) = mailbox.log() {
                    log.subscribe(&filter, &options, subscription_id.map(std::num::NonZeroU32::get));
                }
            }
            Action::Unsubscribe { filter } => {
                router.unsubscribe(&filter, mailbox.session_id());
                if let Some(log) = mailbox.log() {
                    log.unsubscribe(&filter);
                }
            }
            Action::SubscriptionCount(count) => mailbox.set_subscription_count(count),
            Action::Send(packet) => link.write(&mut self.wbuf, &packet).map_err(Exit::Encode)?,
            Action::Authenticate(auth) => self.reauthenticate(&auth)?,
        }
        Ok(None)
    }

    /// Records the output appended since the last check against the durable ops this
    /// connection's work issued: what depends on ops not yet committed is held back.
    fn check_gate(&mut self, mailbox: &Mailbox) {
        let Some(store) = &self.context.store else { return };
        let issued = self.routing.take_logged().max(mailbox.last_logged());
        self.gate.check(self.wbuf.len(), issued, store.committed());
    }

    /// The connection's link; only called once CONNACK has set it.
    fn link(&self) -> Link {
        self.link.unwrap_or_else(|| Link::v3(ProtocolVersion::V311, 1))
    }

    /// Tells a 5.0 client why the server closes the connection, with a DISCONNECT carrying the
    /// exit's reason code (4.13), when the exit has one and CONNACK had accepted the client.
    fn tell_disconnect(&mut self, exit: &Exit) {
        let Some(link) = self.link.filter(Link::is_v5) else {
            return;
        };
        let Some(reason_code) = exit.reason_code() else {
            return;
        };
        // A Reason String the client's Maximum Packet Size has no room for is left out.
        let properties = exit.reason_string().map(|text| {
            Box::new(iothub_protocol::DisconnectProperties {
                reason_string: Some(ByteString::from(text)),
                ..iothub_protocol::DisconnectProperties::default()
            })
        });
        let packet = Packet::Disconnect(Disconnect { reason_code, properties });
        let _ = link.write(&mut self.wbuf, &packet);
    }

    /// Ends a publisher's wait: if room did not come in time, the slow queues pay by the
    /// configured policy; either way the acknowledgement is sent now.
    fn unblock(&mut self, done: Blocked, room: bool) -> Result<(), Exit> {
        if !room {
            for mailbox in &done.full {
                mailbox.overflow();
            }
        }
        if let Some(ack) = done.ack {
            self.link().write(&mut self.wbuf, &ack).map_err(Exit::Encode)?;
        }
        Ok(())
    }

    /// Sends what is left in the write buffer, briefly, and closes the socket. Output held for
    /// a commit waits for it within the same time, and is not sent if it does not come.
    async fn close(&mut self) {
        self.counts.flush(&self.context.metrics);
        if let (Some(store), Some(_)) = (&self.context.store, self.gate.waiting_for()) {
            let _ = tokio::time::timeout(FINAL_FLUSH, store.durable(self.gate.needed())).await;
            let writable = self.gate.writable(self.wbuf.len(), store.committed());
            self.wbuf.truncate(writable);
        }
        let flush = async {
            self.writer.write_all_buf(&mut self.wbuf).await?;
            self.writer.shutdown().await
        };
        let _ = tokio::time::timeout(FINAL_FLUSH, flush).await;
    }
}

/// Asks the ACL hook `questions` for one client, all at once; every answer comes back, a
/// failure as a refusal.
fn ask_hook(
    hook: Arc<crate::auth::HttpHook>,
    identity: Arc<ClientIdentity>,
    questions: Vec<(HookAction, String)>,
) -> HookAnswers {
    Box::pin(async move {
        let who = HookClient {
            client_id: &identity.client_id,
            username: identity.username.as_deref(),
            peer: identity.peer,
        };
        // A few at a time: one packet's questions never flood the hook.
        let mut verdicts = Vec::with_capacity(questions.len());
        for chunk in questions.chunks(HOOK_QUESTIONS_AT_ONCE) {
            let mut asks = Vec::with_capacity(chunk.len());
            for (action, topic) in chunk {
                asks.push(hook.allowed(who, *action, topic));
            }
            verdicts.extend(futures_util::future::join_all(asks).await);
        }
        questions.into_iter().zip(verdicts).collect()
    })
}

/// Questions of one connection the ACL hook is asked at once.
const HOOK_QUESTIONS_AT_ONCE: usize = 8;

/// The answers of the ACL hook to one packet's questions, on their way.
type HookAnswers = Pin<Box<dyn Future<Output = Vec<((HookAction, String), HookVerdict)>> + Send>>;

/// An AUTH packet of the connection's method.
fn auth_packet(reason_code: ReasonCode, method: &str, data: Option<bytes::Bytes>) -> Packet {
    let properties = AuthProperties {
        authentication_method: Some(ByteString::from(method)),
        authentication_data: data,
        ..AuthProperties::default()
    };
    Packet::Auth(Auth { reason_code, properties: Some(Box::new(properties)) })
}

/// The Authentication Data of a client's AUTH, which must name the connection's method
/// (4.12: another method is a Protocol Error).
fn auth_data_of(auth: &Auth, method: &str) -> Result<Option<bytes::Bytes>, Exit> {
    let properties = auth.properties.as_deref();
    if properties.and_then(|p| p.authentication_method.as_deref()) != Some(method) {
        return Err(Exit::Violation(DecodeError::Violation(Rule::AuthOutOfSequence)));
    }
    Ok(properties.and_then(|p| p.authentication_data.clone()))
}

fn log_connected(connect: &Connect, session_present: bool) {
    tracing::info!(
        protocol = connect.protocol.level(),
        clean_session = connect.clean_start,
        keep_alive = connect.keep_alive,
        session_present,
        "client connected"
    );
}

/// Most characters of a client identifier that log lines carry: the identifier may be 64 KB, and
/// every line of the connection's span repeats it.
const LOGGED_CLIENT_ID: usize = 128;

/// The client identifier as log lines show it: cut at `LOGGED_CLIENT_ID` characters.
fn for_logs(client_id: &str) -> &str {
    match client_id.char_indices().nth(LOGGED_CLIENT_ID) {
        Some((end, _)) => &client_id[..end],
        None => client_id,
    }
}

/// Waits until every queue in `full` is back within its bounds, or `deadline`; true for room.
fn wait_for_room(full: Vec<Arc<Mailbox>>, deadline: Instant) -> RoomWait {
    Box::pin(async move {
        let room = async {
            for mailbox in &full {
                mailbox.room_available().await;
            }
        };
        tokio::time::timeout_at(deadline, room).await.is_ok()
    })
}

/// Completes when a commit is published; never without a store.
async fn changed(commits: &mut Option<tokio::sync::watch::Receiver<u64>>) {
    match commits {
        Some(commits) => {
            if commits.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

/// Polls the wait if there is one; never completes otherwise.
/// Counts a connection out of `connections_current` however its task ends.
struct OnlineGuard(Arc<crate::metrics::Metrics>);

impl Drop for OnlineGuard {
    fn drop(&mut self) {
        self.0.connections_current.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Completes with the hook's answers; never without a question.
async fn answered(asking: &mut Option<HookAnswers>) -> Vec<((HookAction, String), HookVerdict)> {
    match asking {
        Some(future) => future.as_mut().await,
        None => std::future::pending().await,
    }
}

async fn wait(room_wait: &mut Option<RoomWait>) -> bool {
    match room_wait {
        Some(future) => future.as_mut().await,
        None => std::future::pending().await,
    }
}

/// Gives back the memory of a drained buffer, so an idle connection holds no buffer at all. A
/// buffer with no capacity makes the next read take 64 bytes; a read that fills it brings the
/// full chunk back. Called when a connection shows signs of being idle, never per transfer: a
/// busy connection keeps its buffers.
fn release_if_empty(buf: &mut BytesMut) {
    if buf.is_empty() {
        *buf = BytesMut::new();
    }
}

/// Gives back a drained buffer that a burst made very large.
fn shrink_if_huge(buf: &mut BytesMut) {
    if buf.capacity() > SHRINK_ABOVE {
        release_if_empty(buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_client_ids_are_cut_in_logs() {
        assert_eq!(for_logs("sensor-1"), "sensor-1");
        let long = "é".repeat(1000);
        assert_eq!(for_logs(&long).chars().count(), LOGGED_CLIENT_ID);
    }
}
