//! The subscription tree: topic filters stored level by level, so matching a topic costs the
//! number of its levels and of the matching filters, not the number of subscriptions.
//!
//! Level `+` is an ordinary child keyed "+"; subscriptions whose filter ends in `#` sit on the
//! node of the level before the `#`, so that "sport/#" also matches "sport" (4.7.1.2).
//!
//! Adding or removing one subscription costs O(levels) whatever the number of sessions on the
//! same filter: a node's subscriber list is indexed by session once it holds more than a few.
//!
//! A shared subscription `$share/{group}/{filter}` (5.0 section 4.8.2) sits on the node of its
//! `{filter}`, in the group of its name; matching picks one member of each matching group.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use super::children::Children;
use super::Subscriber;
use crate::config::SharedStrategy;

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
    /// Shared subscription groups whose filter ends here, or here followed by "/#".
    groups: Vec<Group>,
}

/// One shared subscription group: the sessions subscribed to `$share/{name}/{filter}`.
struct Group {
    /// The whole shared filter, `$share/{name}/{filter}`, which deliveries carry.
    key: Arc<str>,
    /// Whether the filter ends in "/#" (or is "#").
    multi: bool,
    /// The members.
    members: SubscriberList,
    /// Where the next pick starts: a counter for round robin, the chosen member for sticky.
    cursor: AtomicUsize,
}

/// How one message picks a member of each matching shared group.
#[derive(Debug, Clone, Copy)]
pub struct Pick {
    /// The configured strategy.
    pub strategy: SharedStrategy,
    /// Hash of the publisher's client identifier, for `hash_client_id`.
    pub origin_hash: u64,
}

/// State of the `random` strategy's generator (splitmix64), shared by every group.
static RANDOM: AtomicU64 = AtomicU64::new(0x853c_49e6_748f_ea9b);

fn random() -> u64 {
    let mut z = RANDOM.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Group {
    /// The member this message goes to: the strategy's choice, or, if that session is offline,
    /// the next member that is online (an offline member is chosen only when all are).
    fn pick(&self, pick: Pick) -> Option<&Subscriber> {
        let members = &self.members.list;
        let len = members.len();
        if len == 0 {
            return None;
        }
        let start = match pick.strategy {
            SharedStrategy::RoundRobin => self.cursor.fetch_add(1, Ordering::Relaxed) % len,
            SharedStrategy::Random => usize::try_from(random() % len as u64).unwrap_or(0),
            SharedStrategy::Sticky => self.cursor.load(Ordering::Relaxed) % len,
            SharedStrategy::HashClientId => usize::try_from(pick.origin_hash % len as u64).unwrap_or(0),
        };
        let online = (0..len).map(|step| (start + step) % len).find(|&at| members[at].mailbox.is_online());
        let chosen = online.unwrap_or(start);
        if pick.strategy == SharedStrategy::Sticky && chosen != start {
            self.cursor.store(chosen, Ordering::Relaxed);
        }
        members.get(chosen)
    }
}

/// Nobody's subscribers, for nodes that hold none.
static NONE: &[Subscriber] = &[];

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.subscribers.is_none()
    }

    fn groups(&self) -> &[Group] {
        self.subscribers.as_ref().map_or(&[], |s| &s.groups)
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
        self.prune();
        removed
    }

    /// Removes `session_id` from the shared group `key`, dropping the group once it is empty.
    fn remove_shared(&mut self, key: &str, session_id: u64) -> bool {
        let Some(subscribers) = &mut self.subscribers else {
            return false;
        };
        let Some(at) = subscribers.groups.iter().position(|g| &*g.key == key) else {
            return false;
        };
        let removed = subscribers.groups[at].members.remove(session_id);
        if subscribers.groups[at].members.list.is_empty() {
            subscribers.groups.swap_remove(at);
        }
        self.prune();
        removed
    }

    /// Drops the subscriber box once nothing is left in it.
    fn prune(&mut self) {
        if let Some(s) = &self.subscribers {
            if s.exact.list.is_empty() && s.multi.list.is_empty() && s.groups.is_empty() {
                self.subscribers = None;
            }
        }
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
    /// Calls `visit` with every subscription and its filter (a shared one with its whole
    /// `$share/{group}/{filter}`), in no particular order; for the admin API.
    pub(crate) fn visit(&self, visit: &mut dyn FnMut(&str, &Subscriber)) {
        /// `path` is the filter of `node`, `depth` its number of levels.
        fn walk(node: &Node, path: &mut String, depth: usize, visit: &mut dyn FnMut(&str, &Subscriber)) {
            if let Some(subscribers) = &node.subscribers {
                for subscriber in &subscribers.exact.list {
                    visit(path, subscriber);
                }
                let multi = if depth == 0 { "#".to_owned() } else { format!("{path}/#") };
                for subscriber in &subscribers.multi.list {
                    visit(&multi, subscriber);
                }
                for group in &subscribers.groups {
                    for subscriber in &group.members.list {
                        visit(&group.key, subscriber);
                    }
                }
            }
            for (level, child) in node.children.iter() {
                let before = path.len();
                if depth > 0 {
                    path.push('/');
                }
                path.push_str(level);
                walk(child, path, depth + 1, visit);
                path.truncate(before);
            }
        }
        walk(&self.root, &mut String::new(), 0, visit);
    }

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

    /// Adds a member to the shared subscription `key` (`$share/{name}/{filter}`), replacing
    /// the same session's membership. Returns true if it replaced one. `filter` must be a valid
    /// topic filter.
    pub fn insert_shared(&mut self, key: &Arc<str>, filter: &str, mut subscriber: Subscriber) -> bool {
        let mut node = &mut self.root;
        let mut levels = filter.split('/').peekable();
        let multi = loop {
            match levels.next() {
                None => break false,
                Some("#") => break true,
                Some(level) => node = node.children.get_or_default(level),
            }
        };
        let groups = &mut node.subscribers_mut().groups;
        let at = match groups.iter().position(|g| g.key == *key) {
            Some(at) => at,
            None => {
                groups.push(Group {
                    key: Arc::clone(key),
                    multi,
                    members: SubscriberList::default(),
                    cursor: AtomicUsize::new(0),
                });
                groups.len() - 1
            }
        };
        subscriber.shared = Some(Arc::clone(key));
        let replaced = groups[at].members.upsert(subscriber);
        if !replaced {
            self.len += 1;
        }
        replaced
    }

    /// A member of the shared subscription `key` on `filter`, picked as `pick` says; `None` if
    /// the group has no member.
    pub fn shared_member(&self, key: &str, filter: &str, pick: Pick) -> Option<Subscriber> {
        let mut node = &self.root;
        for level in filter.split('/') {
            if level == "#" {
                break;
            }
            node = node.children.get(level)?;
        }
        node.groups().iter().find(|g| &*g.key == key).and_then(|g| g.pick(pick)).cloned()
    }

    /// Removes the subscription of `session_id` to `filter`, pruning nodes left empty. Returns
    /// true if it existed.
    pub fn remove(&mut self, filter: &str, session_id: u64) -> bool {
        let levels: Vec<&str> = filter.split('/').collect();
        let removed = remove_at(&mut self.root, &levels, None, session_id);
        if removed {
            self.len -= 1;
        }
        removed
    }

    /// Removes the membership of `session_id` in the shared subscription `key` on `filter`.
    /// Returns true if it existed.
    pub fn remove_shared(&mut self, key: &str, filter: &str, session_id: u64) -> bool {
        let levels: Vec<&str> = filter.split('/').collect();
        let removed = remove_at(&mut self.root, &levels, Some(key), session_id);
        if removed {
            self.len -= 1;
        }
        removed
    }

    /// Appends to `out` every subscription whose filter matches `topic`. A session with several
    /// matching filters appears once per filter. Filters starting with a wildcard do not match
    /// topics starting with '$' [MQTT-4.7.2-1].
    pub fn matches(&self, topic: &str, out: &mut Vec<Subscriber>) {
        self.collect_matches(topic, &mut Matches { out, shared: None });
    }

    /// Like `matches`, and also appends to `shared` one member of each shared subscription
    /// group whose filter matches, picked as `pick` says.
    pub fn matches_with_shared(
        &self,
        topic: &str,
        out: &mut Vec<Subscriber>,
        shared: &mut Vec<Subscriber>,
        pick: Pick,
    ) {
        self.collect_matches(topic, &mut Matches { out, shared: Some((shared, pick)) });
    }

    fn collect_matches(&self, topic: &str, found: &mut Matches<'_>) {
        let dollar = topic.starts_with('$');
        let mut levels = topic.split('/');
        let Some(first) = levels.next() else {
            return;
        };
        if !dollar {
            found.multi(&self.root);
            if let Some(plus) = self.root.children.get("+") {
                collect(plus, levels.clone(), found);
            }
        }
        if let Some(child) = self.root.children.get(first) {
            collect(child, levels, found);
        }
    }
}

/// Where a match walk puts what it finds.
struct Matches<'a> {
    /// Non-shared subscriptions.
    out: &'a mut Vec<Subscriber>,
    /// The picked members of shared groups, if the caller wants them.
    shared: Option<(&'a mut Vec<Subscriber>, Pick)>,
}

impl Matches<'_> {
    /// Takes the node's "/#" subscriptions and groups.
    fn multi(&mut self, node: &Node) {
        self.out.extend_from_slice(node.multi());
        self.groups(node, true);
    }

    /// Takes the node's exact subscriptions and groups.
    fn exact(&mut self, node: &Node) {
        self.out.extend_from_slice(node.exact());
        self.groups(node, false);
    }

    fn groups(&mut self, node: &Node, multi: bool) {
        if let Some((shared, pick)) = &mut self.shared {
            for group in node.groups().iter().filter(|g| g.multi == multi) {
                if let Some(member) = group.pick(*pick) {
                    shared.push(member.clone());
                }
            }
        }
    }
}

/// Collects matches below `node`, which matched the levels already consumed from `levels`.
fn collect(node: &Node, mut levels: std::str::Split<'_, char>, found: &mut Matches<'_>) {
    found.multi(node);
    let Some(level) = levels.next() else {
        found.exact(node);
        return;
    };
    if let Some(plus) = node.children.get("+") {
        collect(plus, levels.clone(), found);
    }
    if let Some(child) = node.children.get(level) {
        collect(child, levels, found);
    }
}

fn remove_at(node: &mut Node, levels: &[&str], shared: Option<&str>, session_id: u64) -> bool {
    match (levels, shared) {
        ([] | ["#"], Some(key)) => node.remove_shared(key, session_id),
        ([], None) => node.remove(false, session_id),
        (["#"], None) => node.remove(true, session_id),
        ([level, rest @ ..], _) => {
            let Some(child) = node.children.get_mut(level) else {
                return false;
            };
            let removed = remove_at(child, rest, shared, session_id);
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
