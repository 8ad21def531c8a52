//! The subscription tree: topic filters stored level by level, so matching a topic costs the
//! number of its levels and of the matching filters, not the number of subscriptions.
//!
//! Level `+` is an ordinary child keyed "+"; subscriptions whose filter ends in `#` sit on the
//! node of the level before the `#`, so that "sport/#" also matches "sport" (4.7.1.2).
//!
//! Adding or removing one subscription costs O(levels) whatever the number of sessions on the
//! same filter: a node's subscriber list is indexed by session once it holds more than a few.

use std::collections::HashMap;

use super::children::Children;
use super::Subscriber;

/// Up to this many subscribers a list is searched linearly; beyond, it keeps an index.
const INDEX_ABOVE: usize = 8;

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
    children: Children<Node>,
    /// The subscriptions ending here; boxed, since most nodes of a deep filter have none.
    subscribers: Option<Box<Subscribers>>,
}

/// The subscriptions that end at one node.
#[derive(Default)]
struct Subscribers {
    /// Subscriptions whose filter ends exactly at this level.
    exact: SubscriberList,
    /// Subscriptions whose filter is this level followed by "/#".
    multi: SubscriberList,
}

/// Nobody's subscribers, for nodes that hold none.
static NONE: &[Subscriber] = &[];

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.subscribers.is_none()
    }

    fn exact(&self) -> &[Subscriber] {
        self.subscribers.as_ref().map_or(NONE, |s| &s.exact.list)
    }

    fn multi(&self) -> &[Subscriber] {
        self.subscribers.as_ref().map_or(NONE, |s| &s.multi.list)
    }

    fn subscribers_mut(&mut self) -> &mut Subscribers {
        self.subscribers.get_or_insert_with(Box::default)
    }

    /// Removes `session_id` from the exact or the multi-level list, dropping the box once both
    /// are empty.
    fn remove(&mut self, multi: bool, session_id: u64) -> bool {
        let Some(subscribers) = &mut self.subscribers else {
            return false;
        };
        let list = if multi { &mut subscribers.multi } else { &mut subscribers.exact };
        let removed = list.remove(session_id);
        if subscribers.exact.list.is_empty() && subscribers.multi.list.is_empty() {
            self.subscribers = None;
        }
        removed
    }
}

/// The subscribers of one filter, with an O(1) index by session once the list is long.
#[derive(Default)]
struct SubscriberList {
    /// The subscribers, in no particular order.
    list: Vec<Subscriber>,
    /// Position of each session's entry in `list`; kept only above `INDEX_ABOVE` entries, and
    /// boxed so that a list without one costs a pointer.
    #[allow(clippy::box_collection)]
    index: Option<Box<HashMap<u64, usize>>>,
}

impl SubscriberList {
    fn position(&self, session_id: u64) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(&session_id).copied(),
            None => self.list.iter().position(|s| s.session_id == session_id),
        }
    }

    /// Adds or replaces the subscriber's entry; returns true if it replaced one.
    fn upsert(&mut self, subscriber: Subscriber) -> bool {
        if let Some(at) = self.position(subscriber.session_id) {
            self.list[at] = subscriber;
            return true;
        }
        if let Some(index) = &mut self.index {
            index.insert(subscriber.session_id, self.list.len());
        }
        self.list.push(subscriber);
        if self.index.is_none() && self.list.len() > INDEX_ABOVE {
            self.index =
                Some(Box::new(self.list.iter().enumerate().map(|(at, s)| (s.session_id, at)).collect()));
        }
        false
    }

    /// Removes the session's entry by swapping the last one into its place; returns true if it
    /// existed.
    fn remove(&mut self, session_id: u64) -> bool {
        let Some(at) = self.position(session_id) else {
            return false;
        };
        self.list.swap_remove(at);
        if let Some(index) = &mut self.index {
            index.remove(&session_id);
            if let Some(moved) = self.list.get(at) {
                index.insert(moved.session_id, at);
            }
            if self.list.len() <= INDEX_ABOVE / 2 {
                self.index = None;
            }
        }
        if self.list.capacity() > 4 * self.list.len() + 4 {
            self.list.shrink_to_fit();
        }
        true
    }
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
                break node.subscribers_mut().exact.upsert(subscriber);
            };
            if level == "#" {
                break node.subscribers_mut().multi.upsert(subscriber);
            }
            node = node.children.get_or_default(level);
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
            out.extend_from_slice(self.root.multi());
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
    out.extend_from_slice(node.multi());
    let Some(level) = levels.next() else {
        out.extend_from_slice(node.exact());
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
        [] => node.remove(false, session_id),
        ["#"] => node.remove(true, session_id),
        [level, rest @ ..] => {
            let Some(child) = node.children.get_mut(level) else {
                return false;
            };
            let removed = remove_at(child, rest, session_id);
            if removed && child.is_empty() {
                node.children.remove(level);
            }
            removed
        }
    }
}
/// A summary: the whole tree or table would be too large to print.
impl std::fmt::Debug for SubscriptionTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriptionTree").field("len", &self.len).finish_non_exhaustive()
    }
}
