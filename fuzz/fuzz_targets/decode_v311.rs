//! Fuzz target: arbitrary bytes through the MQTT 3.1 and 3.1.1 decoder.
//!
//! Each input is decoded as a stream of packets, once as 3.1 and once as 3.1.1, with a small
//! maximum packet size. The decoder must never panic, must consume exactly the packet that `check`
//! reads from the fixed header and nothing while it waits for more bytes, and every packet it
//! returns must encode to `encoded_size` bytes that decode back to the same packet. Packets the
//! decoder cannot produce are not fed to the encoder here.

#![no_main]

use bytes::BytesMut;
use iothub_protocol::{check, decode, Packet, ProtocolVersion};
use libfuzzer_sys::fuzz_target;

/// Small, so that inputs reach the limit often and no input makes the decoder buffer much.
const MAX_PACKET_SIZE: usize = 1024;

fuzz_target!(|data: &[u8]| {
    for version in [ProtocolVersion::V31, ProtocolVersion::V311] {
        decode_stream(data, version);
    }
});

/// Decodes packets from the front of `data` until the decoder waits for more bytes or fails.
fn decode_stream(data: &[u8], version: ProtocolVersion) {
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.len();
        let announced = check(&buf, MAX_PACKET_SIZE).map(|header| header.map(|h| h.packet_len()));
        match decode(&mut buf, version, MAX_PACKET_SIZE) {
            Ok(Some(packet)) => {
                assert_eq!(announced, Ok(Some(before - buf.len())), "{packet:?} took the wrong bytes");
                round_trip(&packet, version);
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
}

/// Encodes `packet` in `version` and checks that the bytes decode back to the same packet.
fn round_trip(packet: &Packet, version: ProtocolVersion) {
    let mut out = BytesMut::new();
    if let Err(error) = packet.encode(version, &mut out) {
        panic!("decoded {packet:?} does not encode: {error}");
    }
    assert_eq!(out.len(), packet.encoded_size(), "encoded_size of {packet:?}");
    match decode(&mut out, version, MAX_PACKET_SIZE) {
        Ok(Some(again)) => assert_eq!(&again, packet, "{packet:?} changed in a round trip"),
        other => panic!("{packet:?} encodes to bytes that decode to {other:?}"),
    }
    assert!(out.is_empty(), "{packet:?} encodes to {} bytes more than one packet", out.len());
}
