//! Memory per stored item, measured as resident-set growth: 20,000 distinct 200-level filters in
//! the subscription tree and 10,000 distinct 200-level retained topics in the retained store (the
//! shapes of the hostile-input report), and the same counts of short ones. Prints bytes per item
//! and per byte of filter or topic text. Run with `cargo bench --bench memory`.
#![allow(missing_docs)] // A benchmark binary.

use std::sync::Arc;

use bytes::Bytes;
use iothub::internals::{Mailbox, Message, QueueLimits, RetainStore, Subscriber, SubscriptionTree};
use iothub_protocol::QoS;

/// Resident set size of this process, in bytes (Linux).
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

fn deep(i: usize, levels: usize) -> String {
    let mut text = i.to_string();
    for _ in 1..levels {
        text.push_str("/a");
    }
    text
}

fn report(what: &str, count: usize, text_bytes: usize, before: usize, after: usize) {
    let grown = after.saturating_sub(before);
    println!(
        "{what}: {count} items, {:.1} MB: {} B per item, {:.1}x the text",
        grown as f64 / 1e6,
        grown / count,
        grown as f64 / text_bytes as f64
    );
}

/// Runs one case in this process: `tree` or `retained`, at `levels` levels.
fn run_case(case: &str, levels: usize) {
    if case == "tree" {
        let mailbox = Arc::new(Mailbox::new(1, QueueLimits::messages(1)));
        let subscriber = Subscriber::new(mailbox, QoS::AtLeastOnce);
        let filters: Vec<String> = (0..20_000).map(|i| deep(i, levels)).collect();
        let text: usize = filters.iter().map(String::len).sum();
        let before = rss();
        let mut tree = SubscriptionTree::default();
        for filter in &filters {
            tree.insert(filter, subscriber.clone());
        }
        report(&format!("subscription tree, {levels}-level filters"), filters.len(), text, before, rss());
    } else {
        let topics: Vec<String> = (0..10_000).map(|i| deep(i, levels)).collect();
        let text: usize = topics.iter().map(String::len).sum();
        let messages: Vec<Arc<Message>> = topics
            .iter()
            .map(|t| {
                Arc::new(Message::new(t.as_str().into(), Bytes::from_static(b"v"), QoS::AtMostOnce, true))
            })
            .collect();
        let before = rss();
        let mut store = RetainStore::new(0);
        for message in &messages {
            store.set(message);
        }
        report(&format!("retained store, {levels}-level topics"), topics.len(), text, before, rss());
    }
}

/// Each case runs in a fresh process of its own, so that memory freed by one case (and kept by
/// the allocator) does not hide the growth of the next.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, case, levels] = args.as_slice() {
        if flag == "--case" {
            run_case(case, levels.parse().unwrap_or(3));
            return;
        }
    }
    let Ok(me) = std::env::current_exe() else { return };
    for (case, levels) in [("tree", "200"), ("retained", "200"), ("tree", "3"), ("retained", "3")] {
        let status = std::process::Command::new(&me).args(["--case", case, levels]).status();
        if !status.is_ok_and(|s| s.success()) {
            eprintln!("case {case} {levels} failed");
        }
    }
}
