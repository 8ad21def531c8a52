//! The plan of a message run, taken from the command line, and its topology: which clients
//! publish or subscribe to which topic, grouped into flows.
//!
//! Fan-in is one flow (P publishers on `.../fanin/<i>`, one subscriber on `.../fanin/+`); fan-out
//! is one flow (one publisher, S subscribers on the same topic); pairs are N flows of one
//! publisher and one subscriber each. Topics and client identifiers carry a per-run tag so
//! concurrent or earlier runs against the same broker do not mix. Nothing here opens a socket.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use iothub_protocol::QoS;

use crate::cli::{FaninArgs, FanoutArgs, LatencyArgs, PairsArgs, Target, Traffic};

/// Which clients a run has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// This many publishers, one wildcard subscriber.
    FanIn(u32),
    /// One publisher, this many subscribers.
    FanOut(u32),
    /// This many publisher/subscriber pairs.
    Pairs(u32),
}

/// Everything a message run needs to know.
#[derive(Debug, Clone)]
pub struct PubSubPlan {
    /// Name of the scenario, as reported.
    pub scenario: &'static str,
    /// Where to connect and what to sample.
    pub target: Target,
    /// Which clients.
    pub shape: Shape,
    /// QoS of publications and subscriptions.
    pub qos: QoS,
    /// Payload size in bytes.
    pub payload: usize,
    /// Cap on messages per second over all publishers; 0 for none.
    pub rate: u64,
    /// Unacknowledged QoS 1/2 publications per publisher.
    pub inflight: u16,
    /// Most undelivered messages per subscriber before publishers pause.
    pub closed_loop: Option<u64>,
    /// Warm-up left out of the measurements; at most half the duration.
    pub warmup: Duration,
}

impl PubSubPlan {
    fn from_traffic(scenario: &'static str, target: &Target, traffic: &Traffic, shape: Shape) -> PubSubPlan {
        PubSubPlan {
            scenario,
            target: target.clone(),
            shape,
            qos: QoS::from_bits(traffic.qos).unwrap_or(QoS::AtMostOnce),
            payload: traffic.payload,
            rate: traffic.rate,
            inflight: traffic.inflight,
            closed_loop: traffic.closed_loop,
            warmup: traffic.warmup.min(target.duration / 2),
        }
    }

    /// The plan of `fanin`.
    pub fn fanin(args: &FaninArgs) -> PubSubPlan {
        PubSubPlan::from_traffic("fanin", &args.target, &args.traffic, Shape::FanIn(args.publishers))
    }

    /// The plan of `fanout`.
    pub fn fanout(args: &FanoutArgs) -> PubSubPlan {
        PubSubPlan::from_traffic("fanout", &args.target, &args.traffic, Shape::FanOut(args.subscribers))
    }

    /// The plan of `pairs`.
    pub fn pairs(args: &PairsArgs) -> PubSubPlan {
        PubSubPlan::from_traffic("pairs", &args.target, &args.traffic, Shape::Pairs(args.pairs))
    }

    /// The plan of `latency`: pairs at a fixed rate, open loop.
    pub fn latency(args: &LatencyArgs) -> PubSubPlan {
        PubSubPlan {
            scenario: "latency",
            target: args.target.clone(),
            shape: Shape::Pairs(args.pairs),
            qos: QoS::from_bits(args.qos).unwrap_or(QoS::AtMostOnce),
            payload: args.payload,
            rate: args.rate,
            inflight: args.inflight,
            closed_loop: None,
            warmup: args.warmup.min(args.target.duration / 2),
        }
    }
}

/// One client of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Client identifier: at most 23 letters and digits, as every 3.1.1 server must accept
    /// [MQTT-3.1.3-5].
    pub client_id: String,
    /// Topic to publish to, or filter to subscribe to.
    pub topic: String,
    /// Index of its flow.
    pub flow: usize,
    /// Index among its flow's subscribers (0 for publishers).
    pub slot: usize,
}

/// Every client of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Publishers.
    pub publishers: Vec<Endpoint>,
    /// Subscribers.
    pub subscribers: Vec<Endpoint>,
    /// Number of subscribers in each flow.
    pub flow_sizes: Vec<usize>,
    /// Deliveries each published message should produce.
    pub fan: u64,
}

impl Topology {
    /// The clients of `shape`, named with the run tag `tag`.
    pub fn new(shape: Shape, tag: &str) -> Topology {
        let publisher = |i: u32, topic: String, flow: usize| Endpoint {
            client_id: format!("b{tag}p{i}"),
            topic,
            flow,
            slot: 0,
        };
        let subscriber = |i: u32, topic: String, flow: usize, slot: usize| Endpoint {
            client_id: format!("b{tag}s{i}"),
            topic,
            flow,
            slot,
        };
        let base = format!("iothub-bench/{tag}");
        match shape {
            Shape::FanIn(publishers) => Topology {
                publishers: (0..publishers).map(|i| publisher(i, format!("{base}/fanin/{i}"), 0)).collect(),
                subscribers: vec![subscriber(0, format!("{base}/fanin/+"), 0, 0)],
                flow_sizes: vec![1],
                fan: 1,
            },
            Shape::FanOut(subscribers) => Topology {
                publishers: vec![publisher(0, format!("{base}/fanout"), 0)],
                subscribers: (0..subscribers)
                    .map(|i| subscriber(i, format!("{base}/fanout"), 0, i as usize))
                    .collect(),
                flow_sizes: vec![subscribers as usize],
                fan: u64::from(subscribers),
            },
            Shape::Pairs(pairs) => Topology {
                publishers: (0..pairs)
                    .map(|i| publisher(i, format!("{base}/pairs/{i}"), i as usize))
                    .collect(),
                subscribers: (0..pairs)
                    .map(|i| subscriber(i, format!("{base}/pairs/{i}"), i as usize, 0))
                    .collect(),
                flow_sizes: vec![1; pairs as usize],
                fan: 1,
            },
        }
    }
}

/// A six-hex-digit tag that tells this run's topics and clients from any other's.
pub fn run_tag() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let mixed = u64::from(nanos) ^ (u64::from(std::process::id()) << 20);
    format!("{:06x}", mixed & 0xFF_FFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fan_in_shares_one_wildcard_subscriber() {
        let t = Topology::new(Shape::FanIn(3), "abc123");
        assert_eq!(t.publishers.len(), 3);
        assert_eq!(t.publishers[2].topic, "iothub-bench/abc123/fanin/2");
        assert_eq!(t.subscribers.len(), 1);
        assert_eq!(t.subscribers[0].topic, "iothub-bench/abc123/fanin/+");
        assert_eq!((t.flow_sizes.as_slice(), t.fan), (&[1][..], 1));
    }

    #[test]
    fn fan_out_multiplies_deliveries() {
        let t = Topology::new(Shape::FanOut(4), "abc123");
        assert_eq!(t.publishers.len(), 1);
        assert_eq!(t.subscribers.iter().map(|s| s.slot).collect::<Vec<_>>(), [0, 1, 2, 3]);
        assert!(t.subscribers.iter().all(|s| s.topic == t.publishers[0].topic));
        assert_eq!((t.flow_sizes.as_slice(), t.fan), (&[4][..], 4));
    }

    #[test]
    fn pairs_have_a_flow_and_topic_each() {
        let t = Topology::new(Shape::Pairs(1_000_000), "ffffff");
        assert_eq!(t.flow_sizes.len(), 1_000_000);
        let last = &t.subscribers[999_999];
        assert_eq!((last.flow, last.topic.as_str()), (999_999, "iothub-bench/ffffff/pairs/999999"));
        assert_eq!(t.publishers[999_999].topic, last.topic);
        for endpoint in [&t.publishers[999_999], last] {
            assert!(endpoint.client_id.len() <= 23);
            assert!(endpoint.client_id.chars().all(|c| c.is_ascii_alphanumeric()));
        }
    }

    #[test]
    fn run_tags_are_six_hex_digits() {
        let tag = run_tag();
        assert_eq!(tag.len(), 6);
        assert!(tag.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
