//! The subscription tree: topic filters stored level by level, so matching a topic costs the
//! number of its levels and of the matching filters, not the number of subscriptions.
//!
//! Level `+` is an ordinary child keyed "+"; subscriptions whose filter ends in `#` sit on the
//! node of the level before the `#`, so that "sport/#" also matches "sport" (4.7.1.2).

use std::collections::HashMap;

use super::Subscriber;

/// Subscriptions keyed by topic filter.
#[derive(Default)]
pub struct SubscriptionTree {
    /// The level before the first one.
    root: Node,
    /// Number of subscriptions held.
    len: usize,
}

#[derive(Default)]
struct Node {
    /// Children by level text; "+" is the single-level wildcard.
    children: HashMap<Box<str>, Node>,
    /// Subscriptions whose filter ends exactly at this level.
    exact: Vec<Subscriber>,
    /// Subscriptions whose filter is this level followed by "/#".
    multi: Vec<Subscriber>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.exact.is_empty() && self.multi.is_empty()
    }
}

fn upsert(list: &mut Vec<Subscriber>, subscriber: Subscriber) -> bool {
    let id = subscriber.mailbox.session_id();
    if let Some(existing) = list.iter_mut().find(|s| s.mailbox.session_id() == id) {
        *existing = subscriber;
        true
    } else {
        list.push(subscriber);
        false
    }
}

fn remove_from(list: &mut Vec<Subscriber>, session_id: u64) -> bool {
    let before = list.len();
    list.retain(|s| s.mailbox.session_id() != session_id);
    list.len() != before
}

impl SubscriptionTree {
    /// Number of subscriptions held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no subscription is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds a subscription, replacing the same session's subscription to the same filter.
    /// Returns true if it replaced one. `filter` must be a valid topic filter.
    pub fn insert(&mut self, filter: &str, subscriber: Subscriber) -> bool {
        let mut node = &mut self.root;
        let mut levels = filter.split('/').peekable();
        let replaced = loop {
            let Some(level) = levels.next() else {
                break upsert(&mut node.exact, subscriber);
            };
            if level == "#" {
                break upsert(&mut node.multi, subscriber);
            }
            node = node.children.entry(level.into()).or_default();
        };
        if !replaced {
            self.len += 1;
        }
        replaced
    }

    /// Removes the subscription of `session_id` to `filter`, pruning nodes left empty. Returns
    /// true if it existed.
    pub fn remove(&mut self, filter: &str, session_id: u64) -> bool {
        let levels: Vec<&str> = filter.split('/').collect();
        let removed = remove_at(&mut self.root, &levels, session_id);
        if removed {
            self.len -= 1;
        }
        removed
    }

    /// Appends to `out` every subscription whose filter matches `topic`. A session with several
    /// matching filters appears once per filter. Filters starting with a wildcard do not match
    /// topics starting with '$' [MQTT-4.7.2-1].
    pub fn matches(&self, topic: &str, out: &mut Vec<Subscriber>) {
        let dollar = topic.starts_with('$');
        let mut levels = topic.split('/');
        let Some(first) = levels.next() else {
            return;
        };
        if !dollar {
            out.extend_from_slice(&self.root.multi);
            if let Some(plus) = self.root.children.get("+") {
                collect(plus, levels.clone(), out);
            }
        }
        if let Some(child) = self.root.children.get(first) {
            collect(child, levels, out);
        }
    }
}

/// Collects matches below `node`, which matched the levels already consumed from `levels`.
fn collect(node: &Node, mut levels: std::str::Split<'_, char>, out: &mut Vec<Subscriber>) {
    out.extend_from_slice(&node.multi);
    let Some(level) = levels.next() else {
        out.extend_from_slice(&node.exact);
        return;
    };
    if let Some(plus) = node.children.get("+") {
        collect(plus, levels.clone(), out);
    }
    if let Some(child) = node.children.get(level) {
        collect(child, levels, out);
    }
}

fn remove_at(node: &mut Node, levels: &[&str], session_id: u64) -> bool {
    match levels {
        [] => remove_from(&mut node.exact, session_id),
        ["#"] => remove_from(&mut node.multi, session_id),
        [level, rest @ ..] => {
            let Some(child) = node.children.get_mut(*level) else {
                return false;
            };
            let removed = remove_at(child, rest, session_id);
            if removed && child.is_empty() {
                node.children.remove(*level);
            }
            removed
        }
    }
}
