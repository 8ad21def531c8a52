//! The connection task: one per client. It owns the socket, its read and write buffers, and,
//! once CONNECT is accepted, the client's Session.
//!
//! Each wake-up reads as much as the socket has, decodes and handles every whole packet in the
//! buffer, moves waiting messages from the mailbox into the write buffer, and hands the write
//! buffer to the kernel in one write. When the write buffer is above its high-water mark the task
//! stops reading and stops pulling messages, so a client that does not read hurts only itself.
//!
//! **Architecture Invariant:** a connection ends with exactly one `Exit`, logged once inside its
//! span; nothing a peer sends can make it panic or reach the accept loop.

mod handshake;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use iothub_protocol::{decode, Connect, DecodeError, Packet, ProtocolVersion, ReasonCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::message::{Delivery, Message};
use crate::router::{self, RouteScratch};
use crate::session::{is_reserved_for_broker, write, Session, Takeover};
use crate::transport::Transport;

/// Above this many buffered outbound bytes the task stops reading and pulling messages.
const HIGH_WATER: usize = 64 * 1024;
/// Room made in the read buffer before each read.
const READ_CHUNK: usize = 4 * 1024;
/// A buffer this much larger than needed is given back after use.
const SHRINK_ABOVE: usize = 256 * 1024;
/// How long the last bytes (a CONNACK refusal, say) may take to leave before the socket closes.
const FINAL_FLUSH: Duration = Duration::from_secs(1);

/// A deadline that never comes, for a disabled keep-alive; far enough not to fire, near enough
/// not to overflow `Instant`.
const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Why a connection ended.
#[derive(Debug)]
pub enum Exit {
    /// The client sent DISCONNECT.
    Disconnect,
    /// The client closed the socket without DISCONNECT.
    PeerClosed,
    /// Reading or writing the socket failed.
    Io(io::Error),
    /// The client broke the protocol; the error names the rule.
    Violation(DecodeError),
    /// No CONNECT within `connect_timeout_secs`.
    ConnectTimeout,
    /// Nothing received for 1.5 times the keep-alive [MQTT-3.1.2-24].
    KeepAliveTimeout,
    /// CONNECT refused with this CONNACK code.
    Refused(ReasonCode),
    /// A new connection with the same client identifier took the session [MQTT-3.1.4-2].
    TakenOver,
    /// The server is shutting down.
    Shutdown,
}

impl Exit {
    fn log(&self, context: &Context) {
        match self {
            Exit::Disconnect => tracing::debug!("client disconnected"),
            Exit::PeerClosed => tracing::info!("connection closed by the client without DISCONNECT"),
            Exit::Io(error) => tracing::info!(%error, "connection lost"),
            Exit::Violation(error) => {
                context.metrics.protocol_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(%error, "closing connection: protocol violation");
            }
            Exit::ConnectTimeout => tracing::info!("closing connection: no CONNECT in time"),
            Exit::KeepAliveTimeout => tracing::info!("closing connection: keep-alive expired"),
            Exit::Refused(code) => tracing::info!(?code, "connection refused"),
            Exit::TakenOver => {
                tracing::info!("closing connection: client identifier taken over by a new connection")
            }
            Exit::Shutdown => tracing::debug!("closing connection: server shutting down"),
        }
    }

    /// Whether the will message is published after this exit (3.1.2.5): not after DISCONNECT
    /// [MQTT-3.1.2-10], and not at server shutdown.
    fn publishes_will(&self) -> bool {
        !matches!(self, Exit::Disconnect | Exit::Shutdown | Exit::Refused(_))
    }
}

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
}

/// Serves one accepted stream until it ends, the session is taken over, or `shutdown` is
/// cancelled.
pub async fn run(stream: Box<dyn Transport>, context: Arc<Context>, shutdown: CancellationToken) {
    let (reader, writer) = tokio::io::split(stream);
    let mut connection = Connection {
        reader,
        writer,
        rbuf: BytesMut::new(),
        wbuf: BytesMut::new(),
        context: Arc::clone(&context),
        routing: RouteScratch::default(),
        deliveries: Vec::new(),
        retained: Vec::new(),
    };
    let exit = connection.serve(&shutdown).await;
    exit.log(&context);
    connection.close().await;
}

impl Connection {
    async fn serve(&mut self, shutdown: &CancellationToken) -> Exit {
        let connect_timeout = Duration::from_secs(self.context.config.connect_timeout_secs);
        let connect = tokio::select! {
            () = shutdown.cancelled() => return Exit::Shutdown,
            read = tokio::time::timeout(connect_timeout, self.read_connect()) => match read {
                Err(_) => return Exit::ConnectTimeout,
                Ok(Err(exit)) => return exit,
                Ok(Ok(connect)) => connect,
            },
        };
        let mut connect = connect;
        if let Some(code) = handshake::refusal(&connect, &self.context) {
            handshake::connack(&mut self.wbuf, false, code);
            return Exit::Refused(code);
        }
        let client_id = if connect.client_id.is_empty() {
            handshake::assigned_client_id()
        } else {
            // A copy of its own, so the session does not pin the whole CONNECT packet.
            ByteString::from(&*connect.client_id)
        };
        tracing::Span::current().record("client_id", &*client_id);
        let connection_id = self.context.registry.next_id();
        let takeover = Arc::new(Takeover::default());
        let claim = self.context.registry.claim(&client_id, connection_id, &takeover, connect.clean_start);
        let previous = tokio::select! {
            () = shutdown.cancelled() => return Exit::Shutdown,
            previous = claim => previous,
        };
        let accepted = handshake::open_session(&connect, client_id, previous, &self.context);
        let mut session = accepted.session;
        handshake::connack(&mut self.wbuf, accepted.session_present, ReasonCode::Success);
        tracing::info!(
            protocol = connect.protocol.level(),
            clean_session = connect.clean_start,
            keep_alive = connect.keep_alive,
            session_present = accepted.session_present,
            "client connected"
        );
        // Only the keep-alive and the will outlive the handshake; the rest of CONNECT (and the
        // buffer its fields point into) is freed now rather than held for the connection's life.
        let keep_alive = connect.keep_alive;
        let will = connect.will.take().filter(|will| !is_reserved_for_broker(&will.topic)).map(|will| {
            Arc::new(Message {
                topic: ByteString::from(&*will.topic),
                payload: Bytes::copy_from_slice(&will.payload),
                qos: will.qos,
                retain: will.retain,
            })
        });
        drop(connect);
        let exit = match session.resend_inflight(&mut self.wbuf) {
            Ok(()) => self.serve_session(&mut session, keep_alive, shutdown, &takeover).await,
            Err(error) => Exit::Io(io::Error::other(error)),
        };
        self.finish_session(session, will, &exit, &takeover, connection_id);
        takeover.mark_closed();
        exit
    }

    /// Publishes the will if the exit calls for it, then hands the session to the registry.
    fn finish_session(
        &mut self,
        session: Box<Session>,
        will: Option<Arc<Message>>,
        exit: &Exit,
        takeover: &Takeover,
        connection_id: u64,
    ) {
        // On takeover, Mosquitto publishes the old will only when either connection asked for a
        // clean session; otherwise the session continues and the will is discarded.
        let will_due = match exit {
            Exit::TakenOver => session.clean || takeover.successor_clean().unwrap_or(true),
            other => other.publishes_will(),
        };
        if let (true, Some(message)) = (will_due, will) {
            tracing::debug!(topic = %message.topic, "publishing will message");
            self.context.router.publish(&message, &mut self.routing);
            self.routing.wake_all();
        }
        let keep = !session.clean;
        let expires_at = self.context.config.session_timeout().map(|t| Instant::now() + t);
        if let Some(mut discarded) = self.context.registry.release(session, connection_id, keep, expires_at) {
            discarded.unsubscribe_all(&self.context.router);
        }
    }

    /// Reads until the first packet is decoded; it must be CONNECT [MQTT-3.1.0-1].
    async fn read_connect(&mut self) -> Result<Box<Connect>, Exit> {
        let max = self.context.config.max_packet_size;
        loop {
            match decode(&mut self.rbuf, ProtocolVersion::V311, max) {
                Ok(Some(Packet::Connect(connect))) => return Ok(connect),
                Ok(Some(other)) => {
                    tracing::debug!(packet = other.name(), "first packet is not CONNECT");
                    return Err(Exit::Violation(DecodeError::Protocol(
                        "[MQTT-3.1.0-1] the first packet must be CONNECT",
                    )));
                }
                Ok(None) => {}
                Err(error) => return Err(handshake::answer_to_bad_connect(error, &mut self.wbuf)),
            }
            self.read_some().await?;
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

    async fn serve_session(
        &mut self,
        session: &mut Session,
        keep_alive: u16,
        shutdown: &CancellationToken,
        takeover: &Takeover,
    ) -> Exit {
        if let Err(exit) = self.handle_buffered(session) {
            return exit;
        }
        release_if_empty(&mut self.rbuf);
        let max_inflight = self.context.config.max_inflight_messages;
        let mailbox = Arc::clone(session.mailbox());
        // [MQTT-3.1.2-24]: one and a half times the keep-alive without a packet closes the
        // connection; 0 turns the check off.
        let keep_alive = (keep_alive > 0).then(|| Duration::from_millis(u64::from(keep_alive) * 1500));
        let mut last_read = Instant::now();
        let idle_deadline = tokio::time::sleep_until(last_read + keep_alive.unwrap_or(NEVER));
        tokio::pin!(idle_deadline);
        loop {
            if self.wbuf.len() < HIGH_WATER {
                let budget = HIGH_WATER - self.wbuf.len();
                if let Err(error) = session.pump(&mut self.wbuf, max_inflight, budget, &mut self.deliveries) {
                    return Exit::Io(io::Error::other(error));
                }
            }
            let room = self.wbuf.len() < HIGH_WATER;
            let can_pull = room && session.inflight_len() < max_inflight;
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return Exit::Shutdown,
                () = takeover.kicked() => return Exit::TakenOver,
                written = self.writer.write_buf(&mut self.wbuf), if !self.wbuf.is_empty() => match written {
                    Ok(0) => return Exit::PeerClosed,
                    Ok(_) => shrink_if_huge(&mut self.wbuf),
                    Err(error) => return Exit::Io(error),
                },
                read = self.reader.read_buf(&mut self.rbuf), if room => {
                    match read {
                        Ok(0) => return Exit::PeerClosed,
                        Ok(_) => {}
                        Err(error) => return Exit::Io(error),
                    }
                    // Only a whole control packet counts as keep-alive activity
                    // [MQTT-3.1.2-24]; a trickle of bytes that never completes one does not.
                    match self.handle_buffered(session) {
                        Ok(0) => {}
                        Ok(_) => last_read = Instant::now(),
                        Err(exit) => return exit,
                    }
                    shrink_if_huge(&mut self.rbuf);
                    if self.rbuf.capacity() > 0 && self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 4 {
                        self.rbuf.reserve(READ_CHUNK);
                    }
                }
                () = mailbox.notified(), if can_pull => {}
                () = &mut idle_deadline, if keep_alive.is_some() => {
                    let limit = keep_alive.unwrap_or_default();
                    if last_read.elapsed() >= limit {
                        return Exit::KeepAliveTimeout;
                    }
                    // A connection the keep-alive check finds with nothing buffered gives its
                    // buffers back; a busy one pays one reallocation per keep-alive period.
                    release_if_empty(&mut self.rbuf);
                    release_if_empty(&mut self.wbuf);
                    idle_deadline.as_mut().reset(last_read + limit);
                }
            }
        }
    }

    /// Decodes and handles every whole packet in the read buffer.
    /// Subscribers that received messages are woken once, after the whole batch.
    /// Returns the number of whole packets handled.
    fn handle_buffered(&mut self, session: &mut Session) -> Result<usize, Exit> {
        let max = self.context.config.max_packet_size;
        let mut handled = 0;
        let result = loop {
            match decode(&mut self.rbuf, ProtocolVersion::V311, max) {
                Ok(Some(packet)) => {
                    handled += 1;
                    if let Err(exit) = self.handle(packet, session) {
                        break Err(exit);
                    }
                }
                Ok(None) => break Ok(handled),
                Err(error) => break Err(Exit::Violation(error)),
            }
        };
        self.routing.wake_all();
        result
    }

    fn handle(&mut self, packet: Packet, session: &mut Session) -> Result<(), Exit> {
        let router = &self.context.router;
        let out = &mut self.wbuf;
        let result = match packet {
            Packet::Publish(publish) if router::too_deep(&publish.topic) => {
                // Refused before it is acknowledged: an acknowledged message must be routable.
                return Err(Exit::Violation(DecodeError::Protocol(
                    "topic name has more than 200 levels, the broker's hierarchy limit",
                )));
            }
            Packet::Publish(publish) => session.handle_publish(publish, router, &mut self.routing, out),
            Packet::PubAck(ack) => {
                session.handle_puback(ack.packet_id);
                Ok(())
            }
            Packet::PubRec(rec) => session.handle_pubrec(rec.packet_id, out),
            Packet::PubRel(rel) => session.handle_pubrel(rel.packet_id, out),
            Packet::PubComp(comp) => {
                session.handle_pubcomp(comp.packet_id);
                Ok(())
            }
            Packet::Subscribe(subscribe) => {
                session.handle_subscribe(&subscribe, router, out, &mut self.retained)
            }
            Packet::Unsubscribe(unsubscribe) => session.handle_unsubscribe(&unsubscribe, router, out),
            Packet::PingReq => write(out, &Packet::PingResp),
            Packet::Disconnect(_) => return Err(Exit::Disconnect),
            Packet::Connect(_) => {
                return Err(Exit::Violation(DecodeError::Protocol("[MQTT-3.1.0-2] a second CONNECT")));
            }
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                return Err(Exit::Violation(DecodeError::Protocol(
                    "[MQTT-4.8.0-1] a packet only a server may send",
                )));
            }
        };
        result.map_err(|error| Exit::Io(io::Error::other(error)))
    }

    /// Sends what is left in the write buffer, briefly, and closes the socket.
    async fn close(&mut self) {
        let flush = async {
            self.writer.write_all_buf(&mut self.wbuf).await?;
            self.writer.shutdown().await
        };
        let _ = tokio::time::timeout(FINAL_FLUSH, flush).await;
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
