//! Which acknowledged QoS 1/2 messages never reached a subscriber.
//!
//! `lost` in the report counts every publication the subscribers are short of, acknowledged or
//! not. A message the broker has acknowledged (PUBACK for QoS 1, PUBREC for QoS 2: the point at
//! which it took the message over) and then never delivered is the loss that matters for QoS 1
//! and 2, so it is counted on its own: each publisher records the sequence numbers the broker
//! acknowledged, each subscriber the sequence numbers it received from each publisher of its
//! flow, and at the end `acknowledged_lost` counts, for every subscriber, the acknowledged
//! messages of its flow's publishers that it never received. Duplicates count once.
//!
//! Only QoS 1 and 2 runs keep these sets; QoS 0 has no acknowledgement.

use std::sync::{Arc, Mutex};

use iothub_protocol::PacketId;

use crate::pubsub::plan::Topology;

/// Highest sequence number a set records; larger ones (never produced by a bench publisher in
/// a bounded run) are ignored, so a foreign payload cannot make a set allocate without limit.
const MAX_TRACKED: u64 = 1 << 32;

/// A set of sequence numbers, as a bitmap grown on demand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeqSet {
    /// Bit `s % 64` of word `s / 64` is set when `s` is in the set.
    words: Vec<u64>,
    /// Members.
    len: u64,
}

impl SeqSet {
    /// An empty set.
    pub fn new() -> SeqSet {
        SeqSet::default()
    }

    /// Adds `seq`; returns false if it was already there or is beyond `MAX_TRACKED`.
    pub fn insert(&mut self, seq: u64) -> bool {
        if seq >= MAX_TRACKED {
            return false;
        }
        let Ok(word) = usize::try_from(seq / 64) else {
            return false;
        };
        if word >= self.words.len() {
            let grown = (word + 1).max(self.words.len() * 2).max(64);
            self.words.resize(grown, 0);
        }
        let bit = 1u64 << (seq % 64);
        let fresh = self.words[word] & bit == 0;
        if fresh {
            self.words[word] |= bit;
            self.len += 1;
        }
        fresh
    }

    /// Whether `seq` is in the set.
    pub fn contains(&self, seq: u64) -> bool {
        usize::try_from(seq / 64)
            .ok()
            .and_then(|word| self.words.get(word))
            .is_some_and(|w| w & (1u64 << (seq % 64)) != 0)
    }

    /// Members.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Members of `self` that are not in `other`.
    pub fn missing_from(&self, other: &SeqSet) -> u64 {
        self.words
            .iter()
            .enumerate()
            .map(|(i, w)| u64::from((w & !other.words.get(i).copied().unwrap_or(0)).count_ones()))
            .sum()
    }
}

/// The sequence number of the message acknowledged with `packet_id`, for a publisher that has
/// sent `sent` messages and numbers them as `PacketIds` does (sequence `s` carries identifier
/// `s % 65535 + 1`). Exact while fewer than 65535 are unacknowledged: the acknowledged message
/// is the latest sent with that identifier. `None` if no message sent so far has it.
pub fn seq_for_ack(sent: u64, packet_id: PacketId) -> Option<u64> {
    let residue = u64::from(packet_id.get()) - 1;
    let last = sent.checked_sub(1)?;
    let back = (last % 65_535 + 65_535 - residue) % 65_535;
    last.checked_sub(back)
}

/// Acknowledged and received sets handed in by the clients of one run as they finish.
#[derive(Debug)]
pub struct Ledger {
    /// Per publisher (index into `Topology::publishers`): what the broker acknowledged.
    acked: Mutex<Vec<Option<SeqSet>>>,
    /// Per subscriber (index into `Topology::subscribers`): what it received, per publisher of
    /// its flow (index into `Ledger::sources`).
    received: Mutex<Vec<Option<Vec<SeqSet>>>>,
    /// Per flow: the topics of its publishers, in the order of `Topology::publishers`.
    sources: Vec<Arc<[Box<str>]>>,
    /// Per flow: the indices of its publishers in `Topology::publishers`.
    flow_publishers: Vec<Vec<usize>>,
}

impl Ledger {
    /// An empty ledger for the clients of `topology`.
    pub fn new(topology: &Topology) -> Ledger {
        let flows = topology.flow_sizes.len();
        let mut flow_publishers = vec![Vec::new(); flows];
        let mut topics: Vec<Vec<Box<str>>> = vec![Vec::new(); flows];
        for (index, publisher) in topology.publishers.iter().enumerate() {
            flow_publishers[publisher.flow].push(index);
            topics[publisher.flow].push(publisher.topic.as_str().into());
        }
        Ledger {
            acked: Mutex::new(vec![None; topology.publishers.len()]),
            received: Mutex::new(vec![None; topology.subscribers.len()]),
            sources: topics.into_iter().map(Arc::from).collect(),
            flow_publishers,
        }
    }

    /// The topics of the publishers of `flow`, for a subscriber to tell them apart.
    pub fn sources(&self, flow: usize) -> Arc<[Box<str>]> {
        self.sources.get(flow).cloned().unwrap_or_else(|| Arc::from(Vec::new()))
    }

    /// Hands in what publisher `index` had acknowledged.
    pub fn put_acked(&self, index: usize, set: SeqSet) {
        if let Ok(mut acked) = self.acked.lock() {
            if let Some(slot) = acked.get_mut(index) {
                *slot = Some(set);
            }
        }
    }

    /// Hands in what subscriber `index` had received, per publisher of its flow.
    pub fn put_received(&self, index: usize, sets: Vec<SeqSet>) {
        if let Ok(mut received) = self.received.lock() {
            if let Some(slot) = received.get_mut(index) {
                *slot = Some(sets);
            }
        }
    }

    /// Deliveries owed for acknowledged messages, and how many of them never arrived. A
    /// publisher that handed nothing in is left out; a subscriber that handed nothing in counts
    /// as having received nothing.
    pub fn tally(&self, topology: &Topology) -> AckTally {
        let empty = SeqSet::new();
        let (Ok(acked), Ok(received)) = (self.acked.lock(), self.received.lock()) else {
            return AckTally::default();
        };
        let mut tally = AckTally::default();
        for (index, subscriber) in topology.subscribers.iter().enumerate() {
            let got = received.get(index).and_then(Option::as_ref);
            for (source, &publisher) in self.flow_publishers[subscriber.flow].iter().enumerate() {
                let Some(Some(sent)) = acked.get(publisher) else { continue };
                let arrived = got.and_then(|sets| sets.get(source)).unwrap_or(&empty);
                tally.owed += sent.len();
                tally.lost += sent.missing_from(arrived);
            }
        }
        tally
    }
}

/// The outcome of `Ledger::tally`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AckTally {
    /// Acknowledged messages times the subscribers that should receive each.
    pub owed: u64,
    /// Of those deliveries, the ones that never arrived.
    pub lost: u64,
}

/// Which of `sources` (the topics of a flow's publishers) a message on `topic` came from.
/// Bench topics end in the publisher's index when a flow has several publishers (fan-in).
pub fn source_of(sources: &[Box<str>], topic: &str) -> Option<usize> {
    if sources.len() == 1 {
        return Some(0);
    }
    let guess = topic.rsplit('/').next().and_then(|last| last.parse::<usize>().ok());
    if let Some(index) = guess.filter(|&i| sources.get(i).is_some_and(|s| &**s == topic)) {
        return Some(index);
    }
    sources.iter().position(|s| &**s == topic)
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU16;

    use super::*;
    use crate::pubsub::plan::Shape;
    use crate::wire::PacketIds;

    fn id(n: u16) -> PacketId {
        NonZeroU16::new(n).unwrap()
    }

    #[test]
    fn sets_count_members_once_and_tell_what_is_missing() {
        let mut a = SeqSet::new();
        assert!(a.is_empty());
        for seq in [0, 1, 63, 64, 1000, 1000] {
            a.insert(seq);
        }
        assert_eq!(a.len(), 5);
        assert!(a.contains(63) && a.contains(1000) && !a.contains(2) && !a.contains(1 << 40));
        assert!(!a.insert(MAX_TRACKED));
        let mut b = SeqSet::new();
        b.insert(1);
        b.insert(64);
        b.insert(5);
        assert_eq!(a.missing_from(&b), 3);
        assert_eq!(b.missing_from(&a), 1);
        assert_eq!(a.missing_from(&SeqSet::new()), 5);
        assert_eq!(SeqSet::new().missing_from(&a), 0);
    }

    #[test]
    fn acks_map_back_to_the_sequence_that_carried_the_identifier() {
        let mut ids = PacketIds::new();
        let carried: Vec<PacketId> = (0..200_000u64).map(|_| ids.next_id()).collect();
        for sent in [1u64, 20, 65_535, 65_536, 131_071, 200_000] {
            for back in 1..=20u64.min(sent) {
                let seq = sent - back;
                let packet_id = carried[usize::try_from(seq).unwrap()];
                assert_eq!(seq_for_ack(sent, packet_id), Some(seq), "sent {sent} seq {seq}");
            }
        }
        assert_eq!(seq_for_ack(0, id(1)), None);
        assert_eq!(seq_for_ack(3, id(5)), None, "identifier 5 not handed out yet");
    }

    #[test]
    fn fan_in_sources_are_told_apart_by_topic() {
        let t = Topology::new(Shape::FanIn(12), "abc123");
        let ledger = Ledger::new(&t);
        let sources = ledger.sources(0);
        assert_eq!(source_of(&sources, "iothub-bench/abc123/fanin/11"), Some(11));
        assert_eq!(source_of(&sources, "iothub-bench/abc123/fanin/3"), Some(3));
        assert_eq!(source_of(&sources, "iothub-bench/other/fanin/3"), None);
        let pairs = Ledger::new(&Topology::new(Shape::Pairs(3), "abc123"));
        assert_eq!(source_of(&pairs.sources(2), "anything"), Some(0));
    }

    #[test]
    fn the_tally_counts_acknowledged_messages_each_subscriber_missed() {
        let t = Topology::new(Shape::FanOut(3), "abc123");
        let ledger = Ledger::new(&t);
        let set = |seqs: &[u64]| {
            let mut s = SeqSet::new();
            for &q in seqs {
                s.insert(q);
            }
            s
        };
        ledger.put_acked(0, set(&[0, 1, 2, 3]));
        ledger.put_received(0, vec![set(&[0, 1, 2, 3, 4])]);
        ledger.put_received(1, vec![set(&[0, 2])]);
        // Subscriber 2 hands nothing in: everything acknowledged counts as missed.
        assert_eq!(ledger.tally(&t), AckTally { owed: 12, lost: 6 });

        let fanin = Topology::new(Shape::FanIn(2), "abc123");
        let ledger = Ledger::new(&fanin);
        ledger.put_acked(0, set(&[0, 1]));
        ledger.put_acked(1, set(&[0, 1, 2]));
        ledger.put_received(0, vec![set(&[0, 1]), set(&[1])]);
        assert_eq!(ledger.tally(&fanin), AckTally { owed: 5, lost: 2 });
    }
}
