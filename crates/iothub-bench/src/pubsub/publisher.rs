//! A publisher: one connection that encodes PUBLISH packets in batches, one buffer per write,
//! within three limits (the rate cap, the QoS 1/2 inflight window and the closed loop), and
//! reads acknowledgements on the same task.
//!
//! Reading and writing wait side by side in one `select!`, so a broker that pushes back on writes
//! still has its acknowledgements read. A full window or closed loop reopens only once a quarter
//! of it is free (or the rate cap wants less than that), so writes stay batched under back-pressure. Each batch is stamped with the time it is encoded. A
//! publisher stops encoding at the end of the run and leaves once its buffer is written and
//! every QoS 1/2 publication is acknowledged, or when the drain period ends.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use iothub_protocol::{Packet, QoS};
use tokio::io::AsyncWriteExt;
use tokio::sync::futures::Notified;

use crate::client::{disconnected, next_packet, read_more, Connection, PING_AFTER};
use crate::error::BenchError;
use crate::pubsub::ledger::{seq_for_ack, Ledger, SeqSet};
use crate::pubsub::shared::{Flow, Schedule, Totals};
use crate::wire::{self, put_ack, Ack, PacketIds, PublishEncoder};

/// How long a closed loop waits with no delivery at all before it writes the missing messages
/// off as lost: a broker that drops messages (any QoS 0 overflow; QoS 1 and 2 beyond some
/// brokers' limits, acknowledged all the same in 3.1.1) would otherwise hold the run still.
const STALL: Duration = Duration::from_secs(1);

/// How one publisher is to behave.
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    /// Topic, QoS and payload size of its messages.
    pub encoder: PublishEncoder,
    /// QoS of its messages.
    pub qos: QoS,
    /// Messages per second for this publisher; 0 for as fast as possible.
    pub rate: f64,
    /// Delay of this publisher's first message, so capped publishers take turns.
    pub phase: Duration,
    /// Most unacknowledged QoS 1/2 publications.
    pub inflight: usize,
    /// Most messages any subscriber of its flow may be behind, if the closed loop is on.
    pub closed_loop: Option<u64>,
    /// Target size of one write.
    pub batch_bytes: usize,
}

/// What stops the next batch.
enum Gate {
    /// This many messages may be encoded now.
    Open(u64),
    /// The rate cap allows the next message at this instant.
    Until(Instant),
    /// The inflight window is full.
    Acks,
}

/// What woke the publisher.
enum Event {
    /// Bytes arrived, or reading failed.
    Read(std::io::Result<usize>),
    /// Bytes were written, or writing failed.
    Wrote(std::io::Result<usize>),
    /// A deadline passed or a subscriber made progress.
    Wake,
}

/// A connected publisher and its state.
pub struct Publisher {
    /// The connection.
    connection: Connection,
    /// How to behave.
    config: PublisherConfig,
    /// The topic group it feeds.
    flow: Arc<Flow>,
    /// Run-wide counters.
    totals: Arc<Totals>,
    /// The run's schedule.
    schedule: Schedule,
    /// Bytes encoded and not yet written.
    out: BytesMut,
    /// Messages encoded so far; also the next sequence number.
    sent: u64,
    /// QoS 1/2 publications not yet acknowledged.
    unacked: usize,
    /// Packet identifiers.
    ids: PacketIds,
    /// When bytes were last written, for PINGREQ.
    last_write: Instant,
    /// Since when the closed loop has kept this publisher waiting, and the slowest subscriber's
    /// count then; a delivery restarts the clock.
    stall: Option<(Instant, u64)>,
    /// Sequence numbers the broker acknowledged (PUBACK, or PUBREC for QoS 2); QoS 1/2 only.
    acked: Option<SeqSet>,
    /// Its index among the run's publishers, and where `acked` is handed in at the end.
    ledger: (usize, Arc<Ledger>),
}

impl Publisher {
    /// A publisher over an established connection.
    pub fn new(
        connection: Connection,
        config: PublisherConfig,
        flow: Arc<Flow>,
        totals: Arc<Totals>,
        schedule: Schedule,
        ledger: (usize, Arc<Ledger>),
    ) -> Publisher {
        Publisher {
            acked: (config.qos != QoS::AtMostOnce).then(SeqSet::new),
            ledger,
            connection,
            out: BytesMut::with_capacity(config.batch_bytes),
            config,
            flow,
            totals,
            schedule,
            sent: 0,
            unacked: 0,
            ids: PacketIds::new(),
            last_write: Instant::now(),
            stall: None,
        }
    }

    /// Publishes until the end of the run, drains, and disconnects. Failures are counted in the
    /// run's totals; what was acknowledged is handed in to the ledger either way.
    pub async fn run(mut self) {
        let outcome = self.drive().await;
        if let Some(acked) = self.acked.take() {
            self.ledger.1.put_acked(self.ledger.0, acked);
        }
        match outcome {
            Ok(()) => self.connection.close().await,
            Err(e) => self.totals.fail(e.to_string()),
        }
    }

    async fn drive(&mut self) -> Result<(), BenchError> {
        let flow = Arc::clone(&self.flow);
        loop {
            let now = Instant::now();
            if now >= self.schedule.drain_end {
                return Ok(());
            }
            let publishing = now < self.schedule.run_end;
            let mut wake = if publishing { self.schedule.run_end } else { self.schedule.drain_end };
            let notified = flow.progress.notified();
            tokio::pin!(notified);
            let mut awaiting_delivery = false;
            if publishing && self.out.len() < self.config.batch_bytes / 2 {
                match self.gate(now) {
                    Gate::Open(wanted) => {
                        let granted = self.reserve(wanted, now, notified.as_mut());
                        if granted > 0 {
                            self.publish_batch(granted, now)?;
                        } else {
                            awaiting_delivery = true;
                            if let Some((since, _)) = self.stall {
                                wake = wake.min(since + STALL);
                            }
                        }
                    }
                    Gate::Until(at) => wake = wake.min(at),
                    Gate::Acks => {}
                }
            }
            if !publishing && self.out.is_empty() && self.unacked == 0 {
                return Ok(());
            }
            if self.out.is_empty() {
                if now >= self.last_write + PING_AFTER {
                    wire::put(&Packet::PingReq, self.connection.version, &mut self.out)?;
                }
                wake = wake.min(self.last_write + PING_AFTER);
            }
            let event = tokio::select! {
                read = read_more(&mut self.connection.reader, &mut self.connection.inbox, self.connection.read_chunk) => {
                    Event::Read(read)
                }
                written = self.connection.writer.write(&self.out), if !self.out.is_empty() => Event::Wrote(written),
                () = &mut notified, if awaiting_delivery => Event::Wake,
                () = tokio::time::sleep_until(wake.into()) => Event::Wake,
            };
            self.handle(event)?;
        }
    }

    fn handle(&mut self, event: Event) -> Result<(), BenchError> {
        let client_id = &self.connection.client_id;
        match event {
            Event::Read(read) => {
                read.map_err(|e| BenchError::io(format!("{client_id}: reading"), e))?;
                self.handle_incoming()
            }
            Event::Wrote(written) => {
                let n = written.map_err(|e| BenchError::io(format!("{client_id}: writing"), e))?;
                self.out.advance(n);
                self.last_write = Instant::now();
                Ok(())
            }
            Event::Wake => Ok(()),
        }
    }

    /// How many messages the rate cap, the window and the batch size allow now. The window
    /// counts as full until a quarter of it, or a whole batch if that is less, is free.
    fn gate(&self, now: Instant) -> Gate {
        let room = self.config.batch_bytes.saturating_sub(self.out.len()) / self.config.encoder.packet_size();
        let mut wanted = u64::try_from(room.max(1)).unwrap_or(1);
        if self.config.qos != QoS::AtMostOnce {
            let free = self.config.inflight.saturating_sub(self.unacked);
            if free == 0 || free < self.config.inflight.div_ceil(4).min(room.max(1)) {
                return Gate::Acks;
            }
            wanted = wanted.min(u64::try_from(free).unwrap_or(u64::MAX));
        }
        if self.config.rate > 0.0 {
            let first = self.schedule.start + self.config.phase;
            let elapsed = now.saturating_duration_since(first).as_secs_f64();
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            // Non-negative, far below 2^53.
            let due = if now < first { 0 } else { (elapsed * self.config.rate).floor() as u64 + 1 };
            if due <= self.sent {
                #[allow(clippy::cast_precision_loss)] // A sequence number far below 2^53.
                let next = Duration::from_secs_f64(self.sent as f64 / self.config.rate);
                return Gate::Until(first + next);
            }
            wanted = wanted.min(due - self.sent);
        }
        Gate::Open(wanted)
    }

    /// Takes up to `wanted` sends from the closed loop, if it is on. `notified` is enabled before
    /// the last check, so a delivery between the check and the wait is not missed.
    fn reserve(&mut self, wanted: u64, now: Instant, mut notified: Pin<&mut Notified<'_>>) -> u64 {
        let Some(limit) = self.config.closed_loop else {
            self.flow.sent.fetch_add(wanted, Ordering::AcqRel);
            return wanted;
        };
        let mut granted = self.flow.reserve_within(wanted, limit);
        if granted == 0 {
            notified.as_mut().enable();
            granted = self.flow.reserve_within(wanted, limit);
        }
        if granted > 0 {
            self.stall = None;
            return granted;
        }
        let floor = self.flow.min_received();
        match self.stall {
            Some((since, seen)) if seen == floor && now >= since + STALL => {
                if self.flow.write_off_lag() > 0 {
                    self.totals.stalls.fetch_add(1, Ordering::Relaxed);
                }
                self.stall = Some((now, floor));
                self.flow.reserve_within(wanted, limit)
            }
            Some((_, seen)) if seen == floor => 0,
            _ => {
                self.stall = Some((now, floor));
                0
            }
        }
    }

    /// Encodes `count` PUBLISH packets stamped with `now` into the write buffer.
    fn publish_batch(&mut self, count: u64, now: Instant) -> Result<(), BenchError> {
        let timestamp = self.schedule.nanos_at(now);
        let with_id = self.config.qos != QoS::AtMostOnce;
        for _ in 0..count {
            let packet_id = with_id.then(|| self.ids.next_id());
            self.config.encoder.put(&mut self.out, packet_id, timestamp, self.sent)?;
            self.sent += 1;
        }
        if with_id {
            self.unacked += usize::try_from(count).unwrap_or(usize::MAX);
        }
        self.totals.published.fetch_add(count, Ordering::Relaxed);
        Ok(())
    }

    /// Handles every whole packet read: acknowledgements close publications, PUBREC is answered
    /// with PUBREL [MQTT-4.3.3-1]. In 5.0 a PUBACK or PUBREC whose reason code is 0x80 or more
    /// ends the exchange without the broker taking the message over (section 4.3.3): it frees its
    /// place in the window and counts as refused, not acknowledged; 0x10 (No matching
    /// subscribers) is a success. A DISCONNECT from the broker (5.0) ends the connection with its
    /// reason. Anything else is ignored.
    fn handle_incoming(&mut self) -> Result<(), BenchError> {
        let (mut acknowledged, mut refused, mut ended) = (0u64, 0u64, None);
        let version = self.connection.version;
        while let Some(packet) = next_packet(&mut self.connection.inbox, version, &self.connection.client_id)?
        {
            match packet {
                Packet::PubAck(response) => {
                    self.unacked = self.unacked.saturating_sub(1);
                    if wire::accepted(response.reason_code) {
                        acknowledged += 1;
                        self.record_ack(response.packet_id);
                    } else {
                        refused += 1;
                    }
                }
                Packet::PubComp(_) => {
                    self.unacked = self.unacked.saturating_sub(1);
                    acknowledged += 1;
                }
                Packet::PubRec(response) if wire::accepted(response.reason_code) => {
                    self.record_ack(response.packet_id);
                    put_ack(&mut self.out, version, Ack::PubRel, response.packet_id)?;
                }
                Packet::PubRec(_) => {
                    self.unacked = self.unacked.saturating_sub(1);
                    refused += 1;
                }
                Packet::Disconnect(disconnect) => {
                    ended = Some(disconnect.reason_code);
                    break;
                }
                _ => {}
            }
        }
        if acknowledged > 0 {
            self.totals.acknowledged.fetch_add(acknowledged, Ordering::Relaxed);
        }
        if refused > 0 {
            self.totals.refused.fetch_add(refused, Ordering::Relaxed);
        }
        if let Some(reason) = ended {
            return Err(disconnected(&self.connection.client_id, reason));
        }
        Ok(())
    }

    /// Notes that the broker took over the message that carried `packet_id`.
    fn record_ack(&mut self, packet_id: iothub_protocol::PacketId) {
        if let (Some(acked), Some(seq)) = (self.acked.as_mut(), seq_for_ack(self.sent, packet_id)) {
            acked.insert(seq);
        }
    }
}
