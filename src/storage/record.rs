//! The byte layouts of stored records. Every record starts with its layout version byte; a
//! record this build does not know is corruption, never a guess.
//!
//! - message: version, expiry deadline (Unix milliseconds, 0 for none), publisher's client id
//!   hash, then the message as a 5.0 PUBLISH packet (topic, QoS, RETAIN, payload, forwarded
//!   properties), written and read by the broker's own codec;
//! - entry: version, state (0 queued, 1 sent, 2 released), QoS, flags (RETAIN, on subscribe),
//!   packet identifier, message id, Subscription Identifiers;
//! - subscription: version, the 5.0 subscription options byte, Subscription Identifier (0: none);
//! - session: version, protocol level, session expiry interval, the time it went offline
//!   (Unix milliseconds, 0 while online), and its will (delay, then the will as a message).
//!
//! Deadlines are monotonic (`tokio::time::Instant`) inside the broker and wall-clock on disk:
//! [`Clock`] converts at this edge only.

use std::num::NonZeroU32;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, BytesMut};
use iothub_protocol::{
    decode, OutgoingPublish, Packet, ProtocolVersion, PublishHeader, QoS, RetainHandling, SubscriptionOptions,
};
use tokio::time::Instant;

use super::StorageError;
use crate::message::{Delivery, Message};

/// Layout version of every record; bumped when any record changes.
pub(crate) const LAYOUT: u8 = 1;

/// Most bytes a stored message record may have: a maximum-size PUBLISH and its header fields.
const MAX_MESSAGE_RECORD: usize = 268_435_455 + 32;

fn corrupt(what: &str) -> StorageError {
    StorageError::Corrupt(format!("unreadable {what} record"))
}

/// Converts between the broker's monotonic deadlines and wall-clock milliseconds, from one
/// reading of both clocks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    instant: Instant,
    unix_ms: u64,
}

impl Clock {
    /// Both clocks, now.
    #[allow(clippy::disallowed_methods)] // The storage edge reads the clock.
    pub(crate) fn now() -> Clock {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Clock { instant: Instant::now(), unix_ms }
    }

    /// The monotonic instant.
    pub(crate) fn instant(&self) -> Instant {
        self.instant
    }

    /// Wall-clock milliseconds of `at`; never 0, which means "none" on disk.
    pub(crate) fn unix_ms_of(&self, at: Instant) -> u64 {
        let ms = if at >= self.instant {
            self.unix_ms.saturating_add(millis(at - self.instant))
        } else {
            self.unix_ms.saturating_sub(millis(self.instant - at))
        };
        ms.max(1)
    }

    /// The instant of wall-clock milliseconds `ms`: in the past (clamped to now) or ahead.
    pub(crate) fn instant_of(&self, ms: u64) -> Instant {
        match ms.checked_sub(self.unix_ms) {
            Some(ahead) => self.instant.checked_add(Duration::from_millis(ahead)).unwrap_or(self.instant),
            None => self.instant,
        }
    }

    /// Wall-clock milliseconds now.
    pub(crate) fn unix_ms(&self) -> u64 {
        self.unix_ms
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A session's durable record.
#[derive(Debug, Clone)]
pub(crate) struct SessionRecord {
    /// Protocol level of the last connection (3, 4 or 5).
    pub(crate) protocol_level: u8,
    /// The 5.0 Session Expiry Interval granted, in seconds; for 3.1.1 0 (the server's
    /// `session_timeout_secs` applies).
    pub(crate) expiry_interval: u32,
    /// When the session went offline (wall-clock ms); 0 while a connection has it.
    pub(crate) offline_since: u64,
    /// The will to publish if the connection ends abnormally, or the delayed will waiting.
    pub(crate) will: Option<StoredWill>,
}

/// A will as stored.
#[derive(Debug, Clone)]
pub(crate) struct StoredWill {
    /// The will, with its delay and its own Message Expiry Interval, as the session encoded it
    /// (`Will::encode`; storage does not know what a will is).
    pub(crate) will: Vec<u8>,
    /// When a delayed will is due (wall-clock ms), once its connection has ended; 0 otherwise.
    pub(crate) due: u64,
}

/// Encodes a message (for the `messages` table, or inside a will).
pub(crate) fn encode_message(message: &Message, clock: &Clock, out: &mut Vec<u8>) {
    out.put_u8(LAYOUT);
    out.put_u64(message.expires_at.map_or(0, |at| clock.unix_ms_of(at)));
    out.put_u64(message.origin_hash);
    let outgoing = OutgoingPublish {
        header: PublishHeader {
            dup: false,
            qos: message.qos,
            retain: message.retain,
            packet_id: (message.qos != QoS::AtMostOnce).then_some(iothub_protocol::PacketId::MIN),
        },
        topic: &message.topic,
        payload: &message.payload,
        properties: message.properties.as_deref(),
        message_expiry_interval: None,
        topic_alias: None,
        subscription_identifiers: &[],
    };
    let mut packet = BytesMut::with_capacity(outgoing.size(ProtocolVersion::V5));
    // A message the broker accepted fits a PUBLISH: its fields came from one.
    let _ = outgoing.encode(ProtocolVersion::V5, &mut packet);
    out.extend_from_slice(&packet);
}

/// Decodes a message record, with its stored id.
pub(crate) fn decode_message(id: u64, mut record: &[u8], clock: &Clock) -> Result<Message, StorageError> {
    if record.len() < 17 || record.len() > MAX_MESSAGE_RECORD || record.get_u8() != LAYOUT {
        return Err(corrupt("message"));
    }
    let expires = record.get_u64();
    let origin_hash = record.get_u64();
    let mut packet = BytesMut::from(record);
    let publish = match decode(&mut packet, ProtocolVersion::V5, MAX_MESSAGE_RECORD) {
        Ok(Some(Packet::Publish(publish))) if packet.is_empty() => publish,
        _ => return Err(corrupt("message")),
    };
    let mut message = Message::new(publish.topic, publish.payload, publish.qos, publish.retain)
        .from_session(0, origin_hash)
        .with_properties(publish.properties, clock.instant())
        .with_id(id);
    message.expires_at = (expires != 0).then(|| clock.instant_of(expires));
    Ok(message)
}

/// State of a queue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryState {
    /// Waiting in the queue.
    Queued,
    /// PUBLISH sent with this packet identifier; PUBACK or PUBREC awaited.
    Sent(u16),
    /// PUBREL sent; PUBCOMP awaited.
    Released(u16),
}

/// A queue entry as stored.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) state: EntryState,
    pub(crate) qos: QoS,
    pub(crate) retain: bool,
    pub(crate) on_subscribe: bool,
    pub(crate) message: u64,
    pub(crate) subscription_ids: Vec<NonZeroU32>,
    /// The shared subscription (`$share/{group}/{filter}`) the delivery was chosen for, so that
    /// after a restart a member that leaves still hands it on.
    pub(crate) shared: Option<std::sync::Arc<str>>,
}

impl Entry {
    /// The entry of a delivery of message `message`.
    pub(crate) fn of(delivery: &Delivery, message: u64) -> Entry {
        Entry {
            state: EntryState::Queued,
            qos: delivery.qos,
            retain: delivery.retain,
            on_subscribe: delivery.on_subscribe,
            message,
            subscription_ids: delivery.subscription_ids().to_vec(),
            shared: delivery.shared().cloned(),
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + 4 * self.subscription_ids.len());
        out.put_u8(LAYOUT);
        let (state, packet_id) = match self.state {
            EntryState::Queued => (0, 0),
            EntryState::Sent(id) => (1, id),
            EntryState::Released(id) => (2, id),
        };
        out.put_u8(state);
        out.put_u8(self.qos.bits());
        out.put_u8(u8::from(self.retain) | (u8::from(self.on_subscribe) << 1));
        out.put_u16(packet_id);
        out.put_u64(self.message);
        let ids = u8::try_from(self.subscription_ids.len().min(255)).unwrap_or(u8::MAX);
        out.put_u8(ids);
        for id in self.subscription_ids.iter().take(usize::from(ids)) {
            out.put_u32(id.get());
        }
        // A shared subscription's filter fits a SUBSCRIBE, so its length fits two bytes.
        let shared = self.shared.as_deref().map_or(&b""[..], str::as_bytes);
        let len = u16::try_from(shared.len()).unwrap_or(0);
        out.put_u16(len);
        out.extend_from_slice(&shared[..usize::from(len)]);
        out
    }

    pub(crate) fn decode(mut record: &[u8]) -> Result<Entry, StorageError> {
        if record.len() < 17 || record.get_u8() != LAYOUT {
            return Err(corrupt("queue entry"));
        }
        let state = record.get_u8();
        let qos = QoS::from_bits(record.get_u8()).ok_or_else(|| corrupt("queue entry"))?;
        let flags = record.get_u8();
        let packet_id = record.get_u16();
        let message = record.get_u64();
        let count = usize::from(record.get_u8());
        if record.len() < 4 * count + 2 {
            return Err(corrupt("queue entry"));
        }
        let subscription_ids =
            (0..count).map(|_| NonZeroU32::new(record.get_u32())).collect::<Option<Vec<_>>>();
        let len = usize::from(record.get_u16());
        if record.len() != len {
            return Err(corrupt("queue entry"));
        }
        let shared = match len {
            0 => None,
            _ => Some(std::sync::Arc::from(std::str::from_utf8(record).map_err(|_| corrupt("queue entry"))?)),
        };
        let state = match (state, packet_id) {
            (0, _) => EntryState::Queued,
            (1, id) if id != 0 => EntryState::Sent(id),
            (2, id) if id != 0 => EntryState::Released(id),
            _ => return Err(corrupt("queue entry")),
        };
        Ok(Entry {
            state,
            qos,
            retain: flags & 1 != 0,
            on_subscribe: flags & 2 != 0,
            message,
            subscription_ids: subscription_ids.ok_or_else(|| corrupt("queue entry"))?,
            shared,
        })
    }
}

/// A subscription's record: its options and identifier (0 for none).
pub(crate) fn encode_subscription(options: &SubscriptionOptions, id: u32) -> Vec<u8> {
    let bits = options.qos.bits()
        | (u8::from(options.no_local) << 2)
        | (u8::from(options.retain_as_published) << 3)
        | (options.retain_handling.bits() << 4);
    let mut out = Vec::with_capacity(6);
    out.put_u8(LAYOUT);
    out.put_u8(bits);
    out.put_u32(id);
    out
}

/// Decodes a subscription record.
pub(crate) fn decode_subscription(
    mut record: &[u8],
) -> Result<(SubscriptionOptions, Option<NonZeroU32>), StorageError> {
    if record.len() != 6 || record.get_u8() != LAYOUT {
        return Err(corrupt("subscription"));
    }
    let bits = record.get_u8();
    let options = SubscriptionOptions {
        qos: QoS::from_bits(bits & 3).ok_or_else(|| corrupt("subscription"))?,
        no_local: bits & 4 != 0,
        retain_as_published: bits & 8 != 0,
        retain_handling: RetainHandling::from_bits((bits >> 4) & 3).ok_or_else(|| corrupt("subscription"))?,
    };
    Ok((options, NonZeroU32::new(record.get_u32())))
}

impl SessionRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        out.put_u8(LAYOUT);
        out.put_u8(self.protocol_level);
        out.put_u32(self.expiry_interval);
        out.put_u64(self.offline_since);
        match &self.will {
            None => out.put_u8(0),
            Some(will) => {
                out.put_u8(1);
                out.put_u64(will.due);
                out.extend_from_slice(&will.will);
            }
        }
        out
    }

    pub(crate) fn decode(mut record: &[u8]) -> Result<SessionRecord, StorageError> {
        if record.len() < 15 || record.get_u8() != LAYOUT {
            return Err(corrupt("session"));
        }
        let protocol_level = record.get_u8();
        let expiry_interval = record.get_u32();
        let offline_since = record.get_u64();
        let will = match record.get_u8() {
            0 if record.is_empty() => None,
            1 if record.len() > 12 => {
                let due = record.get_u64();
                Some(StoredWill { will: record.to_vec(), due })
            }
            _ => return Err(corrupt("session")),
        };
        if !matches!(protocol_level, 3..=5) {
            return Err(corrupt("session"));
        }
        Ok(SessionRecord { protocol_level, expiry_interval, offline_since, will })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use bytestring::ByteString;
    use iothub_protocol::PublishProperties;

    #[test]
    fn a_message_survives_its_record_with_properties_and_expiry() {
        let clock = Clock::now();
        let properties = PublishProperties {
            content_type: Some(ByteString::from("text/plain")),
            message_expiry_interval: Some(60),
            user_properties: vec![(ByteString::from("k"), ByteString::from("v"))],
            ..PublishProperties::default()
        };
        let message =
            Message::new(ByteString::from("a/b"), Bytes::from_static(b"hello"), QoS::ExactlyOnce, true)
                .from_session(9, 42)
                .with_properties(Some(Box::new(properties)), clock.instant());
        let mut record = Vec::new();
        encode_message(&message, &clock, &mut record);
        let back = decode_message(7, &record, &clock).unwrap();
        assert_eq!(back.id, 7);
        assert_eq!(&*back.topic, "a/b");
        assert_eq!(&back.payload[..], b"hello");
        assert_eq!((back.qos, back.retain, back.origin_hash), (QoS::ExactlyOnce, true, 42));
        assert_eq!(back.properties, message.properties);
        let left = back.expires_at.unwrap() - clock.instant();
        assert!(left <= Duration::from_secs(60) && left >= Duration::from_secs(59));
    }

    #[test]
    fn damaged_records_are_corruption_not_guesses() {
        let clock = Clock::now();
        assert!(decode_message(1, &[], &clock).is_err());
        assert!(decode_message(1, &[LAYOUT; 40], &clock).is_err());
        assert!(Entry::decode(&[2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(Entry::decode(&[LAYOUT, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(SessionRecord::decode(&[LAYOUT, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(decode_subscription(&[LAYOUT, 3, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn entries_and_subscriptions_round_trip() {
        let entry = Entry {
            state: EntryState::Released(513),
            qos: QoS::ExactlyOnce,
            retain: true,
            on_subscribe: false,
            message: 1 << 40,
            subscription_ids: vec![NonZeroU32::new(3).unwrap(), NonZeroU32::new(268_435_455).unwrap()],
            shared: Some(std::sync::Arc::from("$share/g/t/#")),
        };
        let back = Entry::decode(&entry.encode()).unwrap();
        assert_eq!(back.state, entry.state);
        assert_eq!(
            (back.qos, back.retain, back.on_subscribe, back.message),
            (QoS::ExactlyOnce, true, false, 1 << 40)
        );
        assert_eq!(back.subscription_ids, entry.subscription_ids);
        assert_eq!(back.shared, entry.shared);
        let options = SubscriptionOptions {
            qos: QoS::AtLeastOnce,
            no_local: true,
            retain_as_published: false,
            retain_handling: RetainHandling::DoNotSend,
        };
        let (back, id) = decode_subscription(&encode_subscription(&options, 77)).unwrap();
        assert_eq!(back, options);
        assert_eq!(id.map(NonZeroU32::get), Some(77));
    }
}
