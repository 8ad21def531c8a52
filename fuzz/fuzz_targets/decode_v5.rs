//! Fuzz target: arbitrary bytes through the MQTT 5.0 decoder.
//!
//! Each input is decoded as a stream of 5.0 packets with a small maximum packet size. The
//! decoder must never panic, must consume exactly the packet that `check` reads from the fixed
//! header and nothing while it waits for more bytes, and every packet it returns must encode in
//! 5.0 to `size(V5)` bytes that decode back to the same packet. Where the packet is a PUBLISH,
//! the same bytes must come from an `OutgoingPublish` built from its parts, and `encode_within`
//! must never write more than it is allowed. A PUBLISH without properties must also come out of
//! `encode_publish_v5_plain`, the 3.1.1 writer plus a zero Property Length, byte for byte.

#![no_main]

use bytes::BytesMut;
use iothub_protocol::{
    check, decode, encode_publish_v5_plain, EncodeError, OutgoingPublish, Packet, ProtocolVersion,
};
use libfuzzer_sys::fuzz_target;

/// Small, so that inputs reach the limit often and no input makes the decoder buffer much.
const MAX_PACKET_SIZE: usize = 1024;

const V5: ProtocolVersion = ProtocolVersion::V5;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.len();
        let announced = check(&buf, MAX_PACKET_SIZE).map(|header| header.map(|h| h.packet_len()));
        match decode(&mut buf, V5, MAX_PACKET_SIZE) {
            Ok(Some(packet)) => {
                assert_eq!(announced, Ok(Some(before - buf.len())), "{packet:?} took the wrong bytes");
                round_trip(&packet);
            }
            Ok(None) => {
                assert_eq!(buf.len(), before, "bytes of an incomplete packet were consumed");
                assert!(announced.is_ok(), "check failed where decode waits: {announced:?}");
                if let Ok(Some(len)) = announced {
                    assert!(len > before, "a whole packet of {len} bytes was left waiting");
                }
                return;
            }
            Err(_) => return,
        }
    }
});

/// Encodes `packet` in 5.0 and checks that the bytes decode back to the same packet.
fn round_trip(packet: &Packet) {
    let mut out = BytesMut::new();
    if let Err(error) = packet.encode(V5, &mut out) {
        panic!("decoded {packet:?} does not encode: {error}");
    }
    assert_eq!(out.len(), packet.size(V5), "size of {packet:?}");
    if let Packet::Publish(p) = packet {
        let properties = p.properties.as_deref();
        let outgoing = OutgoingPublish {
            header: p.header(),
            topic: &p.topic,
            payload: &p.payload,
            properties,
            message_expiry_interval: properties.and_then(|p| p.message_expiry_interval),
            topic_alias: properties.and_then(|p| p.topic_alias),
            subscription_identifiers: properties.map_or(&[], |p| &p.subscription_identifiers[..]),
        };
        let mut parts = BytesMut::new();
        outgoing.encode(V5, &mut parts).unwrap();
        assert_eq!(parts, out, "OutgoingPublish of {packet:?}");
        assert_eq!(outgoing.size(V5), parts.len(), "OutgoingPublish::size of {packet:?}");
        if properties.is_none() {
            let mut plain = BytesMut::new();
            encode_publish_v5_plain(&mut plain, &p.header(), &p.topic, &p.payload).unwrap();
            assert_eq!(plain, out, "encode_publish_v5_plain of {packet:?}");
        }
    }
    // Within a limit a little under the packet's size: trimmed to fit, or refused untouched.
    let max = out.len().saturating_sub(out.len() % 7 + 1);
    let mut within = BytesMut::new();
    match packet.encode_within(V5, max, &mut within) {
        Ok(()) => assert!(within.len() <= max, "encode_within wrote {} bytes over {max}", within.len()),
        Err(EncodeError::ExceedsMaximumPacketSize { size, max: limit }) => {
            assert!(size > max && limit == max && within.is_empty(), "{packet:?}: {size} within {max}");
        }
        Err(error) => panic!("encode_within of {packet:?}: {error}"),
    }
    match decode(&mut out, V5, MAX_PACKET_SIZE) {
        Ok(Some(again)) => assert_eq!(&again, packet, "{packet:?} changed in a round trip"),
        other => panic!("{packet:?} encodes to bytes that decode to {other:?}"),
    }
    assert!(out.is_empty(), "{packet:?} encodes to {} bytes more than one packet", out.len());
}
