//! The outbound inflight window: QoS 1 and 2 messages sent to the client and not yet fully
//! acknowledged, and the packet identifiers they use.
//!
//! Every operation a peer can trigger costs O(1): up to 32 messages in flight (the default window
//! is 20) entries are found in a short vector in send order, beyond that by packet identifier in a
//! map (with a cheap multiplicative hash: the broker chooses every key, so a peer cannot pick
//! colliding ones), send order is kept in a queue compacted lazily, and a free packet identifier
//! is found among the next `PROBES` after the last one or, once a window is too full for that,
//! in a two-level bitmap of the 65,535 identifiers (at most 17 word reads), so that even
//! `max_inflight_messages = 65535` costs nothing per acknowledgement.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use iothub_protocol::PacketId;

use crate::message::Delivery;

/// Where an outbound exchange stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Awaiting {
    /// QoS 1 PUBLISH sent, PUBACK expected.
    Ack,
    /// QoS 2 PUBLISH sent, PUBREC expected.
    Rec,
    /// PUBREL sent, PUBCOMP expected.
    Comp,
}

/// One outbound QoS 1 or 2 message the client has not finished acknowledging.
#[derive(Debug)]
pub(super) struct Outgoing {
    /// Where the exchange stands.
    pub state: Awaiting,
    /// The message, kept for re-sending with DUP=1 after a reconnect.
    pub delivery: Delivery,
    /// Position in send order, to tell live entries of `order` from stale ones.
    sequence: u64,
    /// Still to be re-sent on the current connection, which has not seen it yet.
    owed: bool,
    /// Past PUBREC with no PUBLISH of it sent on the current connection (its PUBREL was re-sent
    /// there, or the client's PUBREC came before the re-send): it holds no place in the
    /// connection's window, which counts PUBLISH packets (4.9).
    free: bool,
}

/// Packet identifiers in use, as a bitmap with a summary of full words.
#[derive(Debug)]
struct IdBitmap {
    /// Bit `id % 64` of word `id / 64` is set while `id` is in use.
    words: Box<[u64; 1024]>,
    /// Bit `w % 64` of word `w / 64` is set while word `w` is full.
    full: [u64; 16],
}

impl IdBitmap {
    fn new() -> IdBitmap {
        // Identifier 0 is not a valid packet identifier: it is permanently "in use".
        let mut words = Box::new([0u64; 1024]);
        words[0] = 1;
        IdBitmap { words, full: [0; 16] }
    }

    fn set(&mut self, id: u16, used: bool) {
        let (word, bit) = (usize::from(id / 64), id % 64);
        if used {
            self.words[word] |= 1 << bit;
        } else {
            self.words[word] &= !(1 << bit);
        }
        let mark = 1u64 << (word % 64);
        if self.words[word] == u64::MAX {
            self.full[word / 64] |= mark;
        } else {
            self.full[word / 64] &= !mark;
        }
    }

    fn is_set(&self, id: u16) -> bool {
        self.words[usize::from(id / 64)] & (1 << (id % 64)) != 0
    }

    /// The first free identifier at or after `start`, wrapping around.
    fn free_from(&self, start: u16) -> Option<u16> {
        if !self.is_set(start) {
            return Some(start);
        }
        let first_word = usize::from(start / 64);
        // The rest of the starting word, then whole words found through the summary.
        let rest = self.words[first_word] | ((1u64 << (start % 64)) - 1);
        if rest != u64::MAX {
            return Some(word_id(first_word, rest));
        }
        // Then the words after it, 64 at a time through the summary, wrapping around to the
        // start of the starting word (17 summary reads at most).
        let next_word = (first_word + 1) % 1024;
        for step in 0..=16 {
            let summary = (next_word / 64 + step) % 16;
            let mut free_words = !self.full[summary];
            if step == 0 {
                free_words &= !((1u64 << (next_word % 64)) - 1);
            }
            if free_words != 0 {
                let word = summary * 64 + free_words.trailing_zeros() as usize;
                return Some(word_id(word, self.words[word]));
            }
        }
        None
    }
}

/// Identifiers tried after the last one before a window switches to the bitmap.
const PROBES: usize = 64;

/// Hashes a packet identifier by one multiplication (Fibonacci hashing).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u16(&mut self, id: u16) {
        self.0 = u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

fn word_id(word: usize, bits: u64) -> u16 {
    // `bits` has a zero bit, so trailing_ones is below 64; `word` is below 1024.
    u16::try_from(word * 64 + bits.trailing_ones() as usize).unwrap_or(0)
}

/// Up to this many messages in flight, the window is a short vector searched linearly: cheaper
/// than hashing for the usual windows (20 by default), and still a constant bound.
const SMALL: usize = 32;

/// The inflight window of one session.
#[derive(Debug, Default)]
pub(super) struct Inflight {
    /// The window while it holds at most `SMALL` messages (and `entries` is empty), in send
    /// order.
    small: VecDeque<(u16, Outgoing)>,
    /// The window once it has held more: entries by packet identifier.
    entries: HashMap<u16, Outgoing, BuildHasherDefault<IdHasher>>,
    /// Packet identifiers of `entries` in send order with their sequence numbers; entries that
    /// no longer match `entries` are stale and skipped.
    order: VecDeque<(u64, u16)>,
    /// Next sequence number.
    next_sequence: u64,
    /// Identifiers in use, once the window has been large enough to need it (small windows find
    /// a free identifier among the next few and never pay for the 8 KiB bitmap).
    ids: Option<IdBitmap>,
    /// Last identifier handed out.
    last_id: u16,
    /// Entries with `owed` set.
    owed: usize,
    /// Entries with `free` set.
    free: usize,
    /// Whether owed entries may include PUBRELs: from `owe_all` until `take_owed` has taken
    /// them all, which its first call does.
    pubrels_owed: bool,
}

impl Inflight {
    /// Number of messages in flight.
    pub(super) fn len(&self) -> usize {
        self.small.len() + self.entries.len()
    }

    fn in_use(&self, id: u16) -> bool {
        if self.entries.is_empty() {
            self.small.iter().any(|(used, _)| *used == id)
        } else {
            self.entries.contains_key(&id)
        }
    }

    /// Adds a sent delivery under a fresh packet identifier, which it returns; `None` only if all
    /// 65,535 identifiers are in use.
    pub(super) fn insert(&mut self, state: Awaiting, delivery: Delivery) -> Option<PacketId> {
        if self.entries.is_empty() && self.small.len() >= SMALL {
            self.grow();
        }
        let id = self.free_id()?;
        let packet_id = PacketId::new(id)?;
        if let Some(ids) = &mut self.ids {
            ids.set(id, true);
        }
        self.last_id = id;
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let outgoing = Outgoing { state, delivery, sequence, owed: false, free: false };
        if self.entries.is_empty() && self.small.len() < SMALL {
            self.small.push_back((id, outgoing));
        } else {
            self.entries.insert(id, outgoing);
            self.order.push_back((sequence, id));
        }
        Some(packet_id)
    }

    /// Puts back a delivery read from durable storage under the packet identifier it was sent
    /// with; false if that identifier is already in use.
    pub(super) fn restore(&mut self, packet_id: PacketId, state: Awaiting, delivery: Delivery) -> bool {
        let id = packet_id.get();
        if self.in_use(id) {
            return false;
        }
        if self.entries.is_empty() && self.small.len() >= SMALL {
            self.grow();
        }
        if let Some(ids) = &mut self.ids {
            ids.set(id, true);
        }
        self.last_id = id;
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let outgoing = Outgoing { state, delivery, sequence, owed: false, free: false };
        if self.entries.is_empty() && self.small.len() < SMALL {
            self.small.push_back((id, outgoing));
        } else {
            self.entries.insert(id, outgoing);
            self.order.push_back((sequence, id));
        }
        true
    }

    /// Moves a full short window into the map.
    fn grow(&mut self) {
        for (id, outgoing) in self.small.drain(..) {
            self.order.push_back((outgoing.sequence, id));
            self.entries.insert(id, outgoing);
        }
    }

    /// A free identifier at or after the one following the last handed out.
    fn free_id(&mut self) -> Option<u16> {
        let start = self.last_id.wrapping_add(1);
        if let Some(ids) = &self.ids {
            return ids.free_from(start);
        }
        let mut candidate = start;
        for _ in 0..PROBES {
            if candidate != 0 && !self.in_use(candidate) {
                return Some(candidate);
            }
            candidate = candidate.wrapping_add(1);
        }
        // A window this full of neighbouring identifiers: from now on, the bitmap.
        let mut ids = IdBitmap::new();
        for id in self.entries.keys().chain(self.small.iter().map(|(id, _)| id)) {
            ids.set(*id, true);
        }
        let id = ids.free_from(start);
        self.ids = Some(ids);
        id
    }

    /// The exchange using `packet_id`, if any.
    pub(super) fn get(&self, packet_id: PacketId) -> Option<&Outgoing> {
        let id = packet_id.get();
        if self.entries.is_empty() {
            self.small.iter().find(|(used, _)| *used == id).map(|(_, outgoing)| outgoing)
        } else {
            self.entries.get(&id)
        }
    }

    /// The state of the exchange using `packet_id`, moved from `from` to `to` if it was in
    /// `from`; one lookup.
    pub(super) fn advance(&mut self, packet_id: PacketId, from: Awaiting, to: Awaiting) -> Option<Awaiting> {
        let id = packet_id.get();
        let outgoing = if self.entries.is_empty() {
            self.small.iter_mut().find(|(used, _)| *used == id).map(|(_, outgoing)| outgoing)?
        } else {
            self.entries.get_mut(&id)?
        };
        let was = outgoing.state;
        if was == from {
            outgoing.state = to;
            // The client has the message; what it is owed now is the answer to this
            // acknowledgement, which the caller sends. No PUBLISH of it went out on this
            // connection, so it takes no place in the window.
            if outgoing.owed {
                outgoing.owed = false;
                self.owed -= 1;
                outgoing.free = true;
                self.free += 1;
            }
        }
        Some(was)
    }

    /// Ends the exchange using `packet_id` if it is in `state`; returns true if it was. One
    /// lookup, plus one for the front of the send order.
    pub(super) fn complete(&mut self, packet_id: PacketId, state: Awaiting) -> bool {
        let id = packet_id.get();
        if self.entries.is_empty() {
            let Some(at) = self.small.iter().position(|(used, o)| *used == id && o.state == state) else {
                return false;
            };
            if let Some((_, outgoing)) = self.small.remove(at) {
                self.forget(&outgoing);
            }
        } else {
            match self.entries.entry(id) {
                Entry::Occupied(entry) if entry.get().state == state => {
                    let outgoing = entry.remove();
                    self.forget(&outgoing);
                }
                _ => return false,
            }
            self.compact();
        }
        if let Some(ids) = &mut self.ids {
            ids.set(id, false);
        }
        true
    }

    /// Drops stale entries of the send order: from the front at once, and all of them when they
    /// outnumber the live ones, so the queue stays within twice the window (amortised O(1)). An
    /// emptied map goes back to the short vector.
    fn compact(&mut self) {
        while let Some(&(sequence, id)) = self.order.front() {
            if self.entries.get(&id).is_some_and(|o| o.sequence == sequence) {
                break;
            }
            self.order.pop_front();
        }
        if self.order.len() > 2 * self.entries.len() + 16 {
            let entries = &self.entries;
            self.order.retain(|(sequence, id)| entries.get(id).is_some_and(|o| o.sequence == *sequence));
        }
        if self.entries.is_empty() {
            self.order.clear();
        }
    }

    /// Removes every message whose PUBLISH the client has not acknowledged (PUBREL not yet
    /// sent), in send order, for a session that ends with them (shared subscriptions hand them
    /// to another member). Messages past PUBREC stay: the client has them.
    pub(super) fn take_unreceived(&mut self) -> Vec<Delivery> {
        let ids: Vec<PacketId> =
            self.in_order().filter(|(_, o)| o.state != Awaiting::Comp).map(|(id, _)| id).collect();
        let mut taken = Vec::with_capacity(ids.len());
        for id in ids {
            let outgoing = if self.entries.is_empty() {
                let at = self.small.iter().position(|(used, _)| *used == id.get());
                at.and_then(|at| self.small.remove(at)).map(|(_, o)| o)
            } else {
                self.entries.remove(&id.get())
            };
            if let Some(outgoing) = &outgoing {
                self.forget(outgoing);
            }
            let delivery = outgoing.map(|o| o.delivery);
            if let Some(ids) = &mut self.ids {
                ids.set(id.get(), false);
            }
            taken.extend(delivery);
        }
        self.compact();
        taken
    }

    /// Keeps the counts of owed and free entries right when `outgoing` leaves the window.
    fn forget(&mut self, outgoing: &Outgoing) {
        self.owed -= usize::from(outgoing.owed);
        self.free -= usize::from(outgoing.free);
    }

    /// Marks every entry as owed to a new connection, which has not seen any of them yet.
    pub(super) fn owe_all(&mut self) {
        for (_, outgoing) in &mut self.small {
            outgoing.owed = true;
            outgoing.free = false;
        }
        for outgoing in self.entries.values_mut() {
            outgoing.owed = true;
            outgoing.free = false;
        }
        self.owed = self.len();
        self.free = 0;
        self.pubrels_owed = true;
    }

    /// Entries that hold a place in the current connection's window or are owed to it: all but
    /// the free ones.
    pub(super) fn holding(&self) -> usize {
        self.len() - self.free
    }

    /// Number of entries still owed to the current connection.
    pub(super) fn owed(&self) -> usize {
        self.owed
    }

    /// Takes the owed entries to re-send now, oldest first, marking them as sent: every one past
    /// PUBREC, whose PUBREL is not held back by the window [MQTT-3.3.4-10] and takes no place
    /// in it, and up to `room` whose PUBLISH is. The caller re-sends them, in this order. Costs
    /// the window's length while anything is owed, and nothing once all is sent.
    pub(super) fn take_owed(&mut self, room: usize) -> Vec<PacketId> {
        if self.owed == 0 || (room == 0 && !self.pubrels_owed) {
            return Vec::new();
        }
        let pubrels = std::mem::take(&mut self.pubrels_owed);
        let mut room = room;
        let mut ids = Vec::new();
        for (id, outgoing) in self.in_order().filter(|(_, o)| o.owed) {
            if outgoing.state == Awaiting::Comp {
                ids.push(id);
            } else if room > 0 {
                ids.push(id);
                room -= 1;
            } else if !pubrels {
                break;
            }
        }
        for id in &ids {
            let outgoing = if self.entries.is_empty() {
                self.small.iter_mut().find(|(used, _)| *used == id.get()).map(|(_, o)| o)
            } else {
                self.entries.get_mut(&id.get())
            };
            if let Some(outgoing) = outgoing {
                outgoing.owed = false;
                self.owed -= 1;
                if outgoing.state == Awaiting::Comp {
                    outgoing.free = true;
                    self.free += 1;
                }
            }
        }
        ids
    }

    /// Every entry in send order, with its packet identifier.
    pub(super) fn in_order(&self) -> impl Iterator<Item = (PacketId, &Outgoing)> {
        let small = self.small.iter().filter_map(|(id, outgoing)| Some((PacketId::new(*id)?, outgoing)));
        let large = self.order.iter().filter_map(|(sequence, id)| {
            let outgoing = self.entries.get(id).filter(|o| o.sequence == *sequence)?;
            Some((PacketId::new(*id)?, outgoing))
        });
        small.chain(large)
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests start their fake clocks from a real instant.
mod tests {
    use super::*;
    use crate::message::Message;
    use iothub_protocol::QoS;
    use std::sync::Arc;

    fn delivery() -> Delivery {
        let message = Arc::new(Message::new("t".into(), bytes::Bytes::new(), QoS::AtLeastOnce, false));
        Delivery::live(message, QoS::AtLeastOnce)
    }

    #[test]
    fn identifiers_wrap_around_and_skip_those_in_use() {
        let mut inflight = Inflight::default();
        let first = inflight.insert(Awaiting::Ack, delivery()).map(PacketId::get);
        assert_eq!(first, Some(1));
        // Use up to 65535, keeping 1 and 2 in flight, then wrap: 1 and 2 are skipped.
        let two = inflight.insert(Awaiting::Ack, delivery());
        for _ in 3..=65_535u32 {
            let id = inflight.insert(Awaiting::Ack, delivery());
            let Some(id) = id else { panic!("ran out of identifiers") };
            assert!(inflight.complete(id, Awaiting::Ack));
        }
        assert_eq!(inflight.len(), 2);
        assert_eq!(inflight.insert(Awaiting::Ack, delivery()).map(PacketId::get), Some(3));
        assert!(two.is_some());
    }

    #[test]
    fn a_full_window_of_65535_finds_the_one_free_identifier() {
        let mut inflight = Inflight::default();
        let ids: Vec<PacketId> =
            (0..65_535).filter_map(|_| inflight.insert(Awaiting::Ack, delivery())).collect();
        assert_eq!(ids.len(), 65_535);
        assert!(inflight.insert(Awaiting::Ack, delivery()).is_none(), "every identifier is in use");
        for &id in ids.iter().rev().take(1000) {
            assert!(inflight.complete(id, Awaiting::Ack));
            assert_eq!(inflight.insert(Awaiting::Ack, delivery()), Some(id));
        }
    }

    #[test]
    fn send_order_survives_completions_out_of_order() {
        let mut inflight = Inflight::default();
        let ids: Vec<PacketId> =
            (0..100).filter_map(|_| inflight.insert(Awaiting::Ack, delivery())).collect();
        for id in ids.iter().skip(1).step_by(2) {
            assert!(inflight.complete(*id, Awaiting::Ack));
        }
        let left: Vec<u16> = inflight.in_order().map(|(id, _)| id.get()).collect();
        let expected: Vec<u16> = ids.iter().step_by(2).map(|id| id.get()).collect();
        assert_eq!(left, expected);
        assert!(inflight.order.len() <= 2 * inflight.len() + 16);
        assert!(!inflight.complete(ids[0], Awaiting::Rec), "wrong state is ignored");
        assert!(inflight.ids.is_none(), "a window of neighbouring free ids never needs the bitmap");
    }
}
