//! A subscriber: one connection that counts and times every PUBLISH it receives and
//! acknowledges it as its QoS requires, acknowledgements batched into one write per read.
//!
//! QoS 1 is answered with PUBACK [MQTT-4.3.2-2]; QoS 2 with PUBREC, and the broker's PUBREL with
//! PUBCOMP [MQTT-4.3.3-2]. A message counts as delivered when its PUBLISH arrives. Latency is
//! recorded for messages sent inside the measurement window, whenever they arrive, so slow
//! deliveries at the end of the window are not left out. The subscriber runs until told to stop,
//! or until a 5.0 broker sends DISCONNECT, which ends it with the broker's reason.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, BytesMut};
use iothub_protocol::{Packet, QoS};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use crate::client::{disconnected, next_packet, read_more, Connection, PING_AFTER};
use crate::error::BenchError;
use crate::pubsub::ledger::{source_of, Ledger, SeqSet};
use crate::pubsub::shared::{Flow, LatencySink, Schedule, Totals};
use crate::wire::{self, put_ack, read_payload, Ack};

/// What woke the subscriber.
enum Event {
    /// The run is over.
    Stop,
    /// Bytes arrived, or reading failed.
    Read(std::io::Result<usize>),
    /// Bytes were written, or writing failed.
    Wrote(std::io::Result<usize>),
    /// Time to send PINGREQ.
    Ping,
}

/// A connected, subscribed subscriber and its state.
pub struct Subscriber {
    /// The connection.
    connection: Connection,
    /// The topic group it receives.
    flow: Arc<Flow>,
    /// Its index among the group's subscribers.
    slot: usize,
    /// Run-wide counters.
    totals: Arc<Totals>,
    /// The run's schedule.
    schedule: Schedule,
    /// Where latencies go.
    latencies: LatencySink,
    /// Whether publishers wait on this subscriber's progress.
    closed_loop: bool,
    /// Acknowledgements encoded and not yet written.
    out: BytesMut,
    /// When bytes were last written, for PINGREQ.
    last_write: Instant,
    /// QoS 1/2 only: where to hand in, and the sequence numbers received from each publisher
    /// of its flow.
    tracking: Option<(Tracking, Vec<SeqSet>)>,
}

/// What a subscriber needs to record which messages it received, for the acknowledged-loss
/// count.
#[derive(Debug, Clone)]
pub struct Tracking {
    /// Its index among the run's subscribers.
    pub index: usize,
    /// Where its sets are handed in when it stops.
    pub ledger: Arc<Ledger>,
    /// The topics of its flow's publishers.
    pub sources: Arc<[Box<str>]>,
}

impl Subscriber {
    /// A subscriber over an established, subscribed connection.
    pub fn new(
        connection: Connection,
        flow: Arc<Flow>,
        slot: usize,
        totals: Arc<Totals>,
        schedule: Schedule,
        latencies: LatencySink,
        closed_loop: bool,
    ) -> Subscriber {
        Subscriber {
            tracking: None,
            connection,
            flow,
            slot,
            totals,
            schedule,
            latencies,
            closed_loop,
            out: BytesMut::new(),
            last_write: Instant::now(),
        }
    }

    /// Records the sequence numbers it receives per publisher and hands them in when it stops.
    pub fn with_tracking(mut self, tracking: Tracking) -> Subscriber {
        let sets = vec![SeqSet::new(); tracking.sources.len()];
        self.tracking = Some((tracking, sets));
        self
    }

    /// Receives until `stop` turns true, then disconnects. Failures are counted in the run's
    /// totals; what was received is handed in to the ledger either way.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let outcome = self.drive(&mut stop).await;
        self.latencies.flush();
        if let Some((tracking, sets)) = self.tracking.take() {
            tracking.ledger.put_received(tracking.index, sets);
        }
        match outcome {
            Ok(()) => self.connection.close().await,
            Err(e) => self.totals.fail(e.to_string()),
        }
    }

    async fn drive(&mut self, stop: &mut watch::Receiver<bool>) -> Result<(), BenchError> {
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            let ping_due = self.last_write + PING_AFTER;
            let event = tokio::select! {
                _ = stop.changed() => Event::Stop,
                read = read_more(&mut self.connection.reader, &mut self.connection.inbox, self.connection.read_chunk) => {
                    Event::Read(read)
                }
                written = self.connection.writer.write(&self.out), if !self.out.is_empty() => Event::Wrote(written),
                () = tokio::time::sleep_until(ping_due.into()) => Event::Ping,
            };
            let client_id = &self.connection.client_id;
            match event {
                Event::Stop => return Ok(()),
                Event::Read(read) => {
                    read.map_err(|e| BenchError::io(format!("{client_id}: reading"), e))?;
                    self.handle_incoming()?;
                }
                Event::Wrote(written) => {
                    let n = written.map_err(|e| BenchError::io(format!("{client_id}: writing"), e))?;
                    self.out.advance(n);
                    self.last_write = Instant::now();
                }
                Event::Ping => {
                    wire::put(&Packet::PingReq, self.connection.version, &mut self.out)?;
                    self.last_write = Instant::now();
                }
            }
        }
    }

    /// Counts, times and acknowledges every whole packet read, then publishes the new count.
    fn handle_incoming(&mut self) -> Result<(), BenchError> {
        let now = self.schedule.nanos_at(Instant::now());
        let (open, close) = self.schedule.window_nanos();
        let (mut received, mut ended) = (0u64, None);
        let version = self.connection.version;
        while let Some(packet) = next_packet(&mut self.connection.inbox, version, &self.connection.client_id)?
        {
            match packet {
                Packet::Publish(publish) => {
                    received += 1;
                    if let Some((sent_at, sequence)) = read_payload(&publish.payload) {
                        if (open..close).contains(&sent_at) {
                            self.latencies.record(now.saturating_sub(sent_at));
                        }
                        if let Some((tracking, sets)) = self.tracking.as_mut() {
                            if let Some(source) = source_of(&tracking.sources, &publish.topic) {
                                sets[source].insert(sequence);
                            }
                        }
                    }
                    match (publish.qos, publish.packet_id) {
                        (QoS::AtLeastOnce, Some(id)) => put_ack(&mut self.out, version, Ack::PubAck, id)?,
                        (QoS::ExactlyOnce, Some(id)) => put_ack(&mut self.out, version, Ack::PubRec, id)?,
                        _ => {}
                    }
                }
                Packet::PubRel(response) => {
                    put_ack(&mut self.out, version, Ack::PubComp, response.packet_id)?;
                }
                Packet::Disconnect(disconnect) => {
                    ended = Some(disconnect.reason_code);
                    break;
                }
                _ => {}
            }
        }
        if received > 0 {
            self.flow.received[self.slot].fetch_add(received, Ordering::AcqRel);
            self.totals.received.fetch_add(received, Ordering::Relaxed);
            if self.closed_loop {
                self.flow.progress.notify_waiters();
            }
        }
        if let Some(reason) = ended {
            return Err(disconnected(&self.connection.client_id, reason));
        }
        Ok(())
    }
}
