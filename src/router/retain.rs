//! The retained store: at most one message per topic, kept in a tree of topic levels so a
//! wildcard subscription visits only the branches its filter can match.
//!
//! Policy when `retained_message_limit` is reached: a message for a topic that has no retained
//! message yet is forwarded to subscribers but not stored, and the refusal is counted and logged.
//! Replacing or deleting an existing retained message is always allowed.
//!
//! A retained message whose Message Expiry Interval passes is deleted (3.3.2.3.3): an index in
//! expiry order makes that cost O(log n) per expired message, and frees its place under the
//! limit.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytestring::ByteString;
use tokio::time::Instant;

use super::children::Children;
use crate::message::Message;

/// What `RetainStore::set` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetainOutcome {
    /// The message is now the topic's retained message.
    Stored,
    /// The topic's retained message was deleted (empty payload).
    Deleted,
    /// The store is full and the topic had no retained message.
    Refused,
}

/// Retained messages by topic.
pub struct RetainStore {
    /// The level before the first one.
    root: Node,
    /// Number of messages held.
    len: usize,
    /// Most messages held at once; 0 means no limit.
    limit: usize,
    /// Stored messages that expire, by expiry time (and the message's address, to tell two
    /// apart): one entry per stored message with an expiry, never more.
    by_expiry: BTreeMap<(Instant, usize), ByteString>,
}

/// The expiry index key of a stored message, if it expires.
fn expiry_key(message: &Arc<Message>) -> Option<(Instant, usize)> {
    message.expires_at.map(|at| (at, Arc::as_ptr(message) as usize))
}

#[derive(Default)]
struct Node {
    /// Children by level text.
    children: Children<Node>,
    /// The retained message of the topic ending at this level.
    message: Option<Arc<Message>>,
}

impl RetainStore {
    /// An empty store holding at most `limit` messages (0: no limit).
    pub fn new(limit: usize) -> RetainStore {
        RetainStore { root: Node::default(), len: 0, limit, by_expiry: BTreeMap::new() }
    }

    /// Payload bytes of the messages held; a walk of the whole store, for metrics.
    pub fn payload_bytes(&self) -> usize {
        fn walk(node: &Node) -> usize {
            let own = node.message.as_ref().map_or(0, |m| m.payload.len());
            own + node.children.iter().map(|(_, child)| walk(child)).sum::<usize>()
        }
        walk(&self.root)
    }

    /// Number of messages held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no message is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Stores `message` as its topic's retained message, or deletes that message when the
    /// payload is empty [MQTT-3.3.1-10], [MQTT-3.3.1-11].
    pub fn set(&mut self, message: &Arc<Message>) -> RetainOutcome {
        let levels: Vec<&str> = message.topic.split('/').collect();
        if let Some(key) = find(&self.root, &levels).and_then(expiry_key) {
            // The message it replaces or deletes leaves the index with it.
            self.by_expiry.remove(&key);
        }
        if message.payload.is_empty() {
            if delete(&mut self.root, &levels) {
                self.len -= 1;
            }
            return RetainOutcome::Deleted;
        }
        let full = self.limit != 0 && self.len >= self.limit;
        let mut node = &mut self.root;
        for level in &levels {
            if full && !node.children.contains(level) {
                return RetainOutcome::Refused;
            }
            node = node.children.get_or_default(level);
        }
        if node.message.is_none() {
            if full {
                return RetainOutcome::Refused;
            }
            self.len += 1;
        }
        node.message = Some(Arc::clone(message));
        if let Some(key) = expiry_key(message) {
            self.by_expiry.insert(key, message.topic.clone());
        }
        RetainOutcome::Stored
    }

    /// Deletes every stored message whose expiry time has passed at `now`; returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        self.expire_into(now, &mut Vec::new())
    }

    /// Deletes every stored message whose expiry time has passed at `now`, appending their
    /// topics to `topics`; returns how many.
    pub fn expire_into(&mut self, now: Instant, topics: &mut Vec<ByteString>) -> usize {
        let mut expired = 0;
        while let Some(entry) = self.by_expiry.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let topic = entry.remove();
            let levels: Vec<&str> = topic.split('/').collect();
            if delete(&mut self.root, &levels) {
                self.len -= 1;
                expired += 1;
                topics.push(topic);
            }
        }
        expired
    }

    /// When the next stored message expires, if one does.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.by_expiry.first_key_value().map(|(key, _)| key.0)
    }

    /// Appends every retained message whose topic matches `filter` to `out`. Wildcards in the
    /// first level do not match topics starting with '$' [MQTT-4.7.2-1].
    pub fn matching(&self, filter: &str, out: &mut Vec<Arc<Message>>) {
        let mut unbounded = usize::MAX;
        self.matching_at_most(filter, out, usize::MAX, &mut unbounded);
    }

    /// Like `matching`, but stops once `out` holds `limit` messages, or once the walk has
    /// visited `budget` nodes. Each message found adds its depth to the budget, so a filter that
    /// matches pays for what it delivers and a filter that matches nothing pays at most the
    /// budget it was given: one SUBSCRIBE cannot make the broker walk the whole store once per
    /// filter. Returns false if the budget ran out before the walk was complete.
    pub fn matching_at_most(
        &self,
        filter: &str,
        out: &mut Vec<Arc<Message>>,
        limit: usize,
        budget: &mut usize,
    ) -> bool {
        if out.len() >= limit {
            return true;
        }
        let levels: Vec<&str> = filter.split('/').collect();
        let mut collector = Collector { out, limit, budget };
        walk(&self.root, &levels, 0, &mut collector);
        *collector.budget > 0
    }
}

/// The message stored at the topic of `levels`, if any.
fn find<'a>(node: &'a Node, levels: &[&str]) -> Option<&'a Arc<Message>> {
    match levels {
        [] => node.message.as_ref(),
        [level, rest @ ..] => find(node.children.get(level)?, rest),
    }
}

/// The output of a walk, the size at which it stops, and the nodes it may still visit.
struct Collector<'a> {
    /// Where matches go.
    out: &'a mut Vec<Arc<Message>>,
    /// Length of `out` at which the walk stops.
    limit: usize,
    /// Nodes the walk may still visit.
    budget: &'a mut usize,
}

impl Collector<'_> {
    fn done(&self) -> bool {
        self.out.len() >= self.limit || *self.budget == 0
    }

    /// Counts one node visited.
    fn visit(&mut self) {
        *self.budget = self.budget.saturating_sub(1);
    }

    fn take(&mut self, node: &Node, depth: usize) {
        if let (false, Some(message)) = (self.out.len() >= self.limit, &node.message) {
            self.out.push(Arc::clone(message));
            *self.budget = self.budget.saturating_add(depth + 4);
        }
    }
}

fn walk(node: &Node, levels: &[&str], depth: usize, out: &mut Collector<'_>) {
    out.visit();
    let at_root = depth == 0;
    let visible = |name: &str| !(at_root && name.starts_with('$'));
    match levels {
        [] => out.take(node, depth),
        ["#"] => {
            if !at_root {
                out.take(node, depth);
            }
            for (name, child) in node.children.iter() {
                if out.done() {
                    return;
                }
                if visible(name) {
                    everything(child, depth + 1, out);
                }
            }
        }
        ["+", rest @ ..] => {
            for (name, child) in node.children.iter() {
                if out.done() {
                    return;
                }
                if visible(name) {
                    walk(child, rest, depth + 1, out);
                }
            }
        }
        [level, rest @ ..] => {
            if let Some(child) = node.children.get(level) {
                walk(child, rest, depth + 1, out);
            }
        }
    }
}

fn everything(node: &Node, depth: usize, out: &mut Collector<'_>) {
    out.visit();
    out.take(node, depth);
    for (_, child) in node.children.iter() {
        if out.done() {
            return;
        }
        everything(child, depth + 1, out);
    }
}

fn delete(node: &mut Node, levels: &[&str]) -> bool {
    match levels {
        [] => node.message.take().is_some(),
        [level, rest @ ..] => {
            let Some(child) = node.children.get_mut(level) else {
                return false;
            };
            let deleted = delete(child, rest);
            if deleted && child.message.is_none() && child.children.is_empty() {
                node.children.remove(level);
            }
            deleted
        }
    }
}
/// A summary: the whole tree or table would be too large to print.
impl std::fmt::Debug for RetainStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetainStore")
            .field("len", &self.len)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use iothub_protocol::QoS;

    fn store_deep(store: &mut RetainStore, topics: usize, levels: usize) {
        for i in 0..topics {
            let topic = format!("{i}{}", "/a".repeat(levels - 1));
            store.set(&Arc::new(Message::new(topic.into(), Bytes::from_static(b"v"), QoS::AtMostOnce, true)));
        }
    }

    /// A wildcard filter that matches nothing cannot walk the whole store: its walk stops when
    /// its budget runs out (before, 200 such filters over 10,000 deep topics stalled the broker
    /// for 16 s), while a filter that matches earns the budget for what it delivers.
    #[test]
    fn a_walk_that_finds_nothing_stops_at_its_budget() {
        let mut store = RetainStore::new(0);
        store_deep(&mut store, 2000, 20);
        let nothing = format!("{}/zz", vec!["+"; 19].join("/"));
        let mut out = Vec::new();
        let mut budget = 1000;
        assert!(!store.matching_at_most(&nothing, &mut out, usize::MAX, &mut budget), "cut short");
        assert_eq!(budget, 0);
        let mut budget = 1000;
        assert!(store.matching_at_most("#", &mut out, usize::MAX, &mut budget), "paid for by its matches");
        assert_eq!(out.len(), 2000);
    }
}
