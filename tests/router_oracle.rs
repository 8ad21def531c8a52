//! Property tests of the router's data structures against an oracle written from the
//! specification text (4.7): `SubscriptionTree::matches` after random inserts and removals, and
//! `RetainStore::matching` after random stores, replacements, deletions and refusals at the
//! limit, must return exactly what a naive filter-against-topic comparison says.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use iothub::internals::{
    Mailbox, Message, QueueLimits, RetainOutcome, RetainStore, Subscriber, SubscriptionTree,
};
use iothub_protocol::QoS;
use proptest::prelude::*;

/// Whether `filter` matches `topic`, decided directly from the words of section 4.7.
fn oracle_matches(filter: &str, topic: &str) -> bool {
    // [MQTT-4.7.2-1]: a filter starting with a wildcard does not match a topic starting with
    // '$'.
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    // 4.7.1.1: '/' separates levels, and empty levels are levels.
    let filter_levels: Vec<&str> = filter.split('/').collect();
    let topic_levels: Vec<&str> = topic.split('/').collect();
    for (i, level) in filter_levels.iter().enumerate() {
        // 4.7.1.2: '#' matches the parent level and any number of child levels, so "sport/#"
        // matches "sport"; the levels before it have already matched.
        if *level == "#" {
            return true;
        }
        match topic_levels.get(i) {
            None => return false,
            // 4.7.1.3: '+' matches exactly one level, whatever it holds (empty included).
            Some(_) if *level == "+" => {}
            // 4.7.3: other levels compare character by character.
            Some(topic_level) if topic_level == level => {}
            Some(_) => return false,
        }
    }
    filter_levels.len() == topic_levels.len()
}

#[test]
fn the_oracle_agrees_with_the_examples_of_the_specification() {
    let cases = [
        ("sport/tennis/player1/#", "sport/tennis/player1", true),
        ("sport/tennis/player1/#", "sport/tennis/player1/ranking", true),
        ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true),
        ("sport/#", "sport", true),
        ("sport/tennis/+", "sport/tennis/player1", true),
        ("sport/tennis/+", "sport/tennis/player1/ranking", false),
        ("sport/+", "sport", false),
        ("sport/+", "sport/", true),
        ("+/+", "/finance", true),
        ("/+", "/finance", true),
        ("+", "/finance", false),
        ("#", "$SYS/monitor/Clients", false),
        ("+/monitor/Clients", "$SYS/monitor/Clients", false),
        ("$SYS/#", "$SYS/monitor/Clients", true),
        ("$SYS/monitor/+", "$SYS/monitor/Clients", true),
        ("ACCOUNTS", "Accounts", false),
    ];
    for (filter, topic, expected) in cases {
        assert_eq!(oracle_matches(filter, topic), expected, "{filter} against {topic}");
    }
}

/// A topic level of a topic name: ordinary, '$'-prefixed, or empty.
fn topic_level() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["a", "b", "$s", ""])
}

/// A valid topic name of one to four levels (never the empty string [MQTT-4.7.3-1]).
fn topic() -> impl Strategy<Value = String> {
    prop::collection::vec(topic_level(), 1..=4)
        .prop_map(|levels| levels.join("/"))
        .prop_filter("a topic name is not empty", |topic| !topic.is_empty())
}

/// A valid topic filter: one to four levels that may be '+', optionally ending in '#'.
fn filter() -> impl Strategy<Value = String> {
    let level = prop::sample::select(vec!["a", "b", "$s", "", "+"]);
    (prop::collection::vec(level, 0..=4), any::<bool>())
        .prop_map(|(mut levels, hash)| {
            if hash || levels.is_empty() {
                levels.push("#");
            }
            levels.join("/")
        })
        .prop_filter("a topic filter is not empty", |filter| !filter.is_empty())
}

fn qos() -> impl Strategy<Value = QoS> {
    prop::sample::select(vec![QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce])
}

/// One change to the subscription tree.
#[derive(Debug, Clone)]
enum TreeOp {
    Insert { session: u64, filter: String, qos: QoS },
    Remove { session: u64, filter: String },
}

fn tree_op(filters: Vec<String>) -> impl Strategy<Value = TreeOp> {
    let pick = prop::sample::select(filters);
    prop_oneof![
        3 => (1..=4u64, pick.clone(), qos()).prop_map(|(session, filter, qos)| TreeOp::Insert { session, filter, qos }),
        1 => (1..=4u64, pick).prop_map(|(session, filter)| TreeOp::Remove { session, filter }),
    ]
}

/// A few filters and a sequence of changes drawn from them, so that removals and replacements
/// hit existing subscriptions often.
fn tree_ops() -> impl Strategy<Value = Vec<TreeOp>> {
    prop::collection::vec(filter(), 1..=6)
        .prop_flat_map(|filters| prop::collection::vec(tree_op(filters), 0..=30))
}

/// The subscriptions matching `topic`, as (session, QoS) pairs, sorted.
fn tree_matches(tree: &SubscriptionTree, topic: &str) -> Vec<(u64, QoS)> {
    let mut out = Vec::new();
    tree.matches(topic, &mut out);
    let mut found: Vec<(u64, QoS)> = out.iter().map(|s| (s.mailbox.session_id(), s.qos)).collect();
    found.sort();
    found
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn subscription_tree_matches_exactly_what_the_oracle_says(ops in tree_ops(), topics in prop::collection::vec(topic(), 1..=8)) {
        let mailboxes: HashMap<u64, Arc<Mailbox>> = (1..=4u64)
            .map(|id| (id, Arc::new(Mailbox::new(id, QueueLimits::messages(10)))))
            .collect();
        let mut tree = SubscriptionTree::default();
        // The model: the granted QoS per (session, filter).
        let mut model: BTreeMap<(u64, String), QoS> = BTreeMap::new();
        for op in ops {
            match op {
                TreeOp::Insert { session, filter, qos } => {
                    let subscriber = Subscriber::new(Arc::clone(&mailboxes[&session]), qos);
                    let replaced = tree.insert(&filter, subscriber);
                    prop_assert_eq!(replaced, model.insert((session, filter), qos).is_some());
                }
                TreeOp::Remove { session, filter } => {
                    let removed = tree.remove(&filter, session);
                    prop_assert_eq!(removed, model.remove(&(session, filter)).is_some());
                }
            }
            prop_assert_eq!(tree.len(), model.len());
        }
        for topic in &topics {
            let mut expected: Vec<(u64, QoS)> = model
                .iter()
                .filter(|((_, filter), _)| oracle_matches(filter, topic))
                .map(|((session, _), qos)| (*session, *qos))
                .collect();
            expected.sort();
            prop_assert_eq!(tree_matches(&tree, topic), expected, "topic {:?}, subscriptions {:?}", topic, model);
        }
    }

    #[test]
    fn retain_store_matching_returns_exactly_what_the_oracle_says(
        limit in 0..=4usize,
        sets in prop::collection::vec((topic(), prop::sample::select(vec!["", "x", "y"])), 0..=30),
        filters in prop::collection::vec(filter(), 1..=8),
    ) {
        let mut store = RetainStore::new(limit);
        // The model: the retained payload per topic.
        let mut model: BTreeMap<String, &str> = BTreeMap::new();
        for (topic, payload) in sets {
            let message = Arc::new(Message::new(
                topic.as_str().into(),
                Bytes::from_static(payload.as_bytes()),
                QoS::AtLeastOnce,
                true,
            ));
            let expected = if payload.is_empty() {
                model.remove(&topic);
                RetainOutcome::Deleted
            } else if model.contains_key(&topic) || limit == 0 || model.len() < limit {
                model.insert(topic, payload);
                RetainOutcome::Stored
            } else {
                RetainOutcome::Refused
            };
            prop_assert_eq!(store.set(&message), expected);
            prop_assert_eq!(store.len(), model.len());
        }
        for filter in &filters {
            let mut out = Vec::new();
            store.matching(filter, &mut out);
            let mut found: Vec<(String, String)> = out
                .iter()
                .map(|m| (m.topic.to_string(), String::from_utf8(m.payload.to_vec()).unwrap()))
                .collect();
            found.sort();
            let expected: Vec<(String, String)> = model
                .iter()
                .filter(|(topic, _)| oracle_matches(filter, topic))
                .map(|(topic, payload)| (topic.clone(), (*payload).to_owned()))
                .collect();
            prop_assert_eq!(found, expected, "filter {:?}, retained {:?}", filter, model);
        }
    }
}
