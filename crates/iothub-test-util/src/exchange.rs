//! Whole exchanges over a [`RawClient`]: connect, subscribe and check the SUBACK, publish and
//! complete the QoS handshake, read and acknowledge deliveries, and prove that nothing more was
//! sent.

use std::net::SocketAddr;

use crate::packets::{
    ack, connect_packet, parse_publish, publish_packet, suback_granting, subscribe_packet, Incoming,
    CONNACK_ACCEPTED, PINGREQ, PINGRESP, PUBACK, PUBCOMP, PUBREC, PUBREL,
};
use crate::RawClient;

/// Connects a raw client with a clean session and checks the CONNACK.
#[track_caller]
pub fn raw_connected(addr: SocketAddr, client_id: &str) -> RawClient {
    let mut client = RawClient::connect(addr);
    client.send(&connect_packet(client_id, true, 60));
    client.expect(&CONNACK_ACCEPTED);
    client
}

/// Connects a raw clean-session client and subscribes it to `filters`, checking that the SUBACK
/// grants each requested QoS.
#[track_caller]
pub fn raw_subscriber(addr: SocketAddr, client_id: &str, filters: &[(&str, u8)]) -> RawClient {
    let mut client = raw_connected(addr, client_id);
    subscribe(&mut client, 1, filters);
    client
}

/// Sends SUBSCRIBE and checks the SUBACK grants each requested QoS, in order.
#[track_caller]
pub fn subscribe(client: &mut RawClient, packet_id: u16, filters: &[(&str, u8)]) {
    client.send(&subscribe_packet(packet_id, filters));
    client.expect(&suback_granting(packet_id, filters));
}

/// Publishes a message and completes its QoS handshake: PUBACK for QoS 1; PUBREC, PUBREL,
/// PUBCOMP for QoS 2. The client must not be subscribed to anything the broker could send
/// in between.
#[track_caller]
pub fn publish(client: &mut RawClient, topic: &str, payload: &[u8], qos: u8, retain: bool, packet_id: u16) {
    client.send(&publish_packet(topic, payload, qos, retain, false, packet_id));
    match qos {
        // QoS 0 has no acknowledgement; a PINGREQ round trip after a retained one guarantees the
        // broker has handled (and stored) it before the test goes on, since a connection's
        // packets are handled in order.
        0 if retain => {
            client.send(&PINGREQ);
            client.expect(&PINGRESP);
        }
        0 => {}
        1 => client.expect(&ack(PUBACK, packet_id)),
        _ => {
            client.expect(&ack(PUBREC, packet_id));
            client.send(&ack(PUBREL, packet_id));
            client.expect(&ack(PUBCOMP, packet_id));
        }
    }
}

/// Reads the next PUBLISH and acknowledges it as its QoS requires (PUBACK, or PUBREC). PUBREL
/// packets read on the way are answered with PUBCOMP.
#[track_caller]
pub fn next_publish(client: &mut RawClient) -> Incoming {
    loop {
        let packet = client.read_packet();
        if packet[0] == PUBREL {
            client.send(&ack(PUBCOMP, u16::from_be_bytes([packet[2], packet[3]])));
            continue;
        }
        let incoming = parse_publish(&packet);
        match (incoming.qos, incoming.packet_id) {
            (1, Some(id)) => client.send(&ack(PUBACK, id)),
            (2, Some(id)) => client.send(&ack(PUBREC, id)),
            _ => {}
        }
        return incoming;
    }
}

/// Reads and acknowledges messages until one arrives on `marker`, and returns the ones before
/// it. A marker published after the messages under test proves that nothing else was routed.
#[track_caller]
pub fn publishes_until(client: &mut RawClient, marker: &str) -> Vec<Incoming> {
    let mut received = Vec::new();
    loop {
        let incoming = next_publish(client);
        if incoming.topic == marker {
            return received;
        }
        received.push(incoming);
    }
}

/// Sends PINGREQ and waits for PINGRESP, answering PUBREL packets on the way and failing on
/// any PUBLISH. Messages the broker queued before the PINGREQ was read are sent before the
/// PINGRESP, so this proves that none was queued.
#[track_caller]
pub fn expect_no_publish_before_pingresp(client: &mut RawClient) {
    client.send(&PINGREQ);
    loop {
        let packet = client.read_packet();
        match packet[0] {
            0xD0 => return,
            PUBREL => client.send(&ack(PUBCOMP, u16::from_be_bytes([packet[2], packet[3]]))),
            _ => panic!("expected PINGRESP, got {:?}", parse_publish(&packet)),
        }
    }
}
