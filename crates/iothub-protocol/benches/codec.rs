//! Codec micro-benchmarks: decode and encode cost per packet type.
#![allow(missing_docs)] // criterion_group! generates an undocumented public function.

use bytes::BytesMut;
use core::num::{NonZeroU16, NonZeroU32};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use iothub_protocol::{
    decode, encode_publish, Connect, OutgoingPublish, Packet, PacketId, ProtocolVersion, Publish,
    PublishHeader, PublishProperties, PublishResponse, QoS, Subscribe, SubscriptionOptions,
};

fn packet_id(value: u16) -> PacketId {
    PacketId::new(value).unwrap_or(PacketId::MIN)
}

fn samples() -> Vec<(&'static str, Packet)> {
    let publish = |qos: QoS, size: usize| {
        Packet::Publish(Publish {
            dup: false,
            qos,
            retain: false,
            topic: "sensors/building-7/floor-3/temperature".into(),
            packet_id: (qos != QoS::AtMostOnce).then(|| packet_id(42)),
            payload: vec![0xA5; size].into(),
            properties: None,
        })
    };
    vec![
        (
            "connect",
            Packet::Connect(Box::new(Connect {
                protocol: ProtocolVersion::V311,
                clean_start: true,
                keep_alive: 60,
                client_id: "bench-client-0001".into(),
                will: None,
                username: Some("user".into()),
                password: Some(b"secret".to_vec().into()),
                properties: None,
            })),
        ),
        ("publish_qos0_64B", publish(QoS::AtMostOnce, 64)),
        ("publish_qos1_64B", publish(QoS::AtLeastOnce, 64)),
        ("publish_qos1_4KiB", publish(QoS::AtLeastOnce, 4096)),
        ("puback", Packet::PubAck(PublishResponse::new(packet_id(7)))),
        (
            "subscribe_3_filters",
            Packet::Subscribe(Subscribe {
                packet_id: packet_id(9),
                filters: ["a/+/c", "sensors/#", "x/y/z"]
                    .iter()
                    .map(|f| {
                        ((*f).into(), SubscriptionOptions { qos: QoS::AtLeastOnce, ..Default::default() })
                    })
                    .collect(),
                properties: None,
            }),
        ),
        ("pingreq", Packet::PingReq),
    ]
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    for (name, packet) in samples() {
        let mut encoded = BytesMut::new();
        packet.encode(ProtocolVersion::V311, &mut encoded).unwrap_or_default();
        let wire = encoded.freeze();
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_function(format!("decode/{name}"), |b| {
            b.iter_batched_ref(
                || BytesMut::from(&wire[..]),
                |buf| black_box(decode(buf, ProtocolVersion::V311, usize::MAX)),
                BatchSize::SmallInput,
            );
        });
        let mut out = BytesMut::with_capacity(wire.len() * 2);
        group.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| {
                out.clear();
                black_box(packet.encode(ProtocolVersion::V311, &mut out))
            });
        });
    }
    group.finish();
}

/// The broker's fan-out path: one stored message written for one subscriber, in 3.1.1 with
/// `encode_publish` and in 5.0 with `OutgoingPublish` and per-delivery properties.
fn outgoing_publish(c: &mut Criterion) {
    let mut group = c.benchmark_group("outgoing_publish");
    let topic = "sensors/building-7/floor-3/temperature";
    let payload = vec![0xA5; 64];
    let header =
        PublishHeader { dup: false, qos: QoS::AtLeastOnce, retain: false, packet_id: Some(packet_id(42)) };
    let stored = PublishProperties {
        content_type: Some("application/json".into()),
        user_properties: vec![("site".into(), "b7".into())],
        ..PublishProperties::default()
    };
    let ids = [NonZeroU32::MIN];
    let outgoing = OutgoingPublish {
        header,
        topic,
        payload: &payload,
        properties: Some(&stored),
        message_expiry_interval: Some(3600),
        topic_alias: NonZeroU16::new(3),
        subscription_identifiers: &ids,
    };
    let mut out = BytesMut::with_capacity(512);
    group.bench_function("v311/encode_publish_64B", |b| {
        b.iter(|| {
            out.clear();
            black_box(encode_publish(&mut out, &header, topic, &payload))
        });
    });
    group.bench_function("v5/outgoing_publish_64B_with_properties", |b| {
        b.iter(|| {
            out.clear();
            black_box(outgoing.encode(ProtocolVersion::V5, &mut out))
        });
    });
    group.finish();
}

criterion_group!(benches, codec, outgoing_publish);
criterion_main!(benches);
