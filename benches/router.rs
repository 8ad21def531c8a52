//! Router micro-benchmarks: matching cost as the number of non-matching subscriptions grows
//! (1k, 100k, 1M; exact and wildcard filters), and a wildcard lookup over 100k retained
//! messages; and N sessions subscribing to and unsubscribing from one filter.
#![allow(missing_docs)] // criterion_group! generates an undocumented public function.

use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use iothub::internals::{Mailbox, Message, QueueLimits, RetainStore, Subscriber, SubscriptionTree};
use iothub_protocol::QoS;

fn subscriber(id: u64) -> Subscriber {
    let mailbox = Arc::new(Mailbox::new(id, QueueLimits::messages(1)));
    Subscriber::new(mailbox, QoS::AtLeastOnce)
}

/// A tree with `n` subscriptions, one of which matches `site/7/dev/42/temp`.
fn tree(n: usize, wildcard: bool) -> SubscriptionTree {
    let mut tree = SubscriptionTree::default();
    let shared = subscriber(1);
    for i in 0..n {
        let filter = if wildcard { format!("site/{i}/+/temp") } else { format!("site/7/dev/{i}/temp") };
        tree.insert(&filter, shared.clone());
    }
    tree.insert(if wildcard { "site/7/+/42/#" } else { "site/7/dev/42/temp" }, subscriber(2));
    tree
}

fn matching(c: &mut Criterion) {
    let mut group = c.benchmark_group("router_match");
    group.sample_size(20);
    for wildcard in [false, true] {
        for n in [1_000, 100_000, 1_000_000] {
            let tree = tree(n, wildcard);
            let mut out = Vec::new();
            let kind = if wildcard { "wildcard" } else { "exact" };
            group.bench_with_input(BenchmarkId::new(kind, n), &n, |b, _| {
                b.iter(|| {
                    out.clear();
                    tree.matches(black_box("site/7/dev/42/temp"), &mut out);
                    black_box(out.len())
                });
            });
        }
    }
    group.finish();
}

fn retained(c: &mut Criterion) {
    let mut store = RetainStore::new(0);
    for i in 0..100_000 {
        let message = Arc::new(Message::new(
            format!("dev/{i}/temp").into(),
            vec![1u8; 16].into(),
            QoS::AtLeastOnce,
            true,
        ));
        store.set(&message);
    }
    let mut group = c.benchmark_group("retained_100k");
    group.sample_size(20);
    for filter in ["dev/+/temp", "dev/#", "#", "dev/99999/temp"] {
        let mut out = Vec::new();
        group.bench_function(filter, |b| {
            b.iter(|| {
                out.clear();
                store.matching(black_box(filter), &mut out);
                black_box(out.len())
            });
        });
    }
    group.finish();
}

/// Subscribing and then unsubscribing N sessions to one filter: linear in N (each operation is
/// O(levels) whatever the number of sessions already on the filter), so the time per session
/// stays flat from 1k to 100k.
fn many_sessions_one_filter(c: &mut Criterion) {
    let mut group = c.benchmark_group("router_one_filter");
    group.sample_size(10);
    for n in [1_000u64, 10_000, 100_000] {
        let subscribers: Vec<Subscriber> = (1..=n).map(subscriber).collect();
        group.throughput(criterion::Throughput::Elements(n));
        group.bench_with_input(BenchmarkId::new("subscribe_then_unsubscribe", n), &subscribers, |b, subs| {
            b.iter(|| {
                let mut tree = SubscriptionTree::default();
                for s in subs {
                    tree.insert("status/#", s.clone());
                }
                for s in subs {
                    tree.remove("status/#", s.session_id);
                }
                black_box(tree.len())
            });
        });
    }
    group.finish();
}

criterion_group!(benches, matching, retained, many_sessions_one_filter);
criterion_main!(benches);
