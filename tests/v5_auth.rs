//! MQTT 5.0 enhanced authentication (section 4.12) over raw packets: the AUTH exchange of
//! CONNECT and of re-authentication, driven by a challenge-response method the test plugs in
//! through the authentication seam (`iothub::auth`).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use bytes::Bytes;
use iothub::auth::{AuthenticationMethod, Exchange, Step};
use iothub_protocol::{
    Auth, AuthProperties, Connect, ConnectProperties, Packet, ProtocolVersion, ReasonCode,
};
use iothub_test_util::{loopback_config, RawClient, TestBroker};

/// The method's name.
const METHOD: &str = "TEST-CHALLENGE";

/// A challenge-response method: the server sends a nonce, the client must send it back
/// reversed; the server then answers "welcome".
#[derive(Debug)]
struct Challenge;

#[derive(Debug)]
struct Waiting {
    /// The nonce sent.
    nonce: Vec<u8>,
}

impl AuthenticationMethod for Challenge {
    fn name(&self) -> &str {
        METHOD
    }

    fn begin(&self, client_id: &str, data: Option<&[u8]>) -> (Box<dyn Exchange>, Step) {
        if data != Some(b"hello") {
            return (Box::new(Waiting { nonce: Vec::new() }), Step::Failure);
        }
        let nonce = format!("nonce-{client_id}").into_bytes();
        let step = Step::Continue(Some(Bytes::from(nonce.clone())));
        (Box::new(Waiting { nonce }), step)
    }
}

impl Exchange for Waiting {
    fn step(&mut self, data: Option<&[u8]>) -> Step {
        let expected: Vec<u8> = self.nonce.iter().rev().copied().collect();
        if data == Some(&expected[..]) {
            Step::Success(Some(Bytes::from_static(b"welcome")))
        } else {
            Step::Failure
        }
    }
}

fn broker() -> TestBroker {
    TestBroker::with_auth_methods(
        loopback_config(""),
        vec![Arc::new(Challenge) as Arc<dyn AuthenticationMethod>],
    )
}

use iothub_test_util::v5_client::{encode_v5 as encode, read_v5 as read};

fn connect(client_id: &str, method: &str, data: &[u8]) -> Vec<u8> {
    let properties = ConnectProperties {
        authentication_method: Some(method.into()),
        authentication_data: Some(Bytes::copy_from_slice(data)),
        ..ConnectProperties::default()
    };
    encode(&Packet::Connect(Box::new(Connect {
        protocol: ProtocolVersion::V5,
        clean_start: true,
        keep_alive: 60,
        client_id: client_id.into(),
        will: None,
        username: None,
        password: None,
        properties: Some(Box::new(properties)),
    })))
}

fn auth(reason_code: ReasonCode, method: &str, data: &[u8]) -> Vec<u8> {
    let properties = AuthProperties {
        authentication_method: Some(method.into()),
        authentication_data: Some(Bytes::copy_from_slice(data)),
        ..AuthProperties::default()
    };
    encode(&Packet::Auth(Auth { reason_code, properties: Some(Box::new(properties)) }))
}

/// The AUTH data of a packet that must be an AUTH with `reason_code` naming the method.
fn auth_data(packet: &Packet, reason_code: ReasonCode) -> Vec<u8> {
    let Packet::Auth(auth) = packet else { panic!("expected AUTH, got {packet:?}") };
    assert_eq!(auth.reason_code, reason_code);
    let properties = auth.properties.as_deref().unwrap();
    assert_eq!(properties.authentication_method.as_deref(), Some(METHOD));
    properties.authentication_data.as_deref().unwrap_or_default().to_vec()
}

fn reversed(bytes: &[u8]) -> Vec<u8> {
    bytes.iter().rev().copied().collect()
}

/// Runs the CONNECT exchange to its CONNACK.
fn authenticated(broker: &TestBroker, client_id: &str) -> RawClient {
    let mut client = RawClient::connect(broker.addr);
    client.send(&connect(client_id, METHOD, b"hello"));
    let nonce = auth_data(&read(&mut client), ReasonCode::ContinueAuthentication);
    assert_eq!(nonce, format!("nonce-{client_id}").into_bytes());
    client.send(&auth(ReasonCode::ContinueAuthentication, METHOD, &reversed(&nonce)));
    let Packet::ConnAck(connack) = read(&mut client) else { panic!("expected CONNACK") };
    assert_eq!(connack.reason_code, ReasonCode::Success);
    let properties = connack.properties.as_deref().unwrap();
    // 3.2.2.3.17: CONNACK names the method of the CONNECT.
    assert_eq!(properties.authentication_method.as_deref(), Some(METHOD));
    assert_eq!(properties.authentication_data.as_deref(), Some(&b"welcome"[..]));
    client
}

/// 4.12: the server answers CONNECT with AUTH 0x18, the client continues with AUTH 0x18, and
/// CONNACK 0x00 ends the exchange with the method and its data.
#[test]
fn enhanced_authentication_exchange_ends_in_connack_success() {
    let broker = broker();
    let mut client = authenticated(&broker, "device-1");
    client.send(&encode(&Packet::PingReq));
    assert_eq!(read(&mut client), Packet::PingResp);
}

/// 4.12: a method that refuses the client gets CONNACK 0x87 Not authorized, then the close.
#[test]
fn a_failed_exchange_gets_connack_0x87_and_the_close() {
    let broker = broker();
    let mut client = RawClient::connect(broker.addr);
    client.send(&connect("device-2", METHOD, b"hello"));
    let _ = auth_data(&read(&mut client), ReasonCode::ContinueAuthentication);
    client.send(&auth(ReasonCode::ContinueAuthentication, METHOD, b"wrong"));
    let Packet::ConnAck(connack) = read(&mut client) else { panic!("expected CONNACK") };
    assert_eq!(connack.reason_code, ReasonCode::NotAuthorized);
    client.expect_closed();
}

/// 3.1.2.11.9, 4.12: a method the server does not have gets CONNACK 0x8C Bad authentication
/// method.
#[test]
fn an_unknown_method_gets_connack_0x8c() {
    let broker = broker();
    let mut client = RawClient::connect(broker.addr);
    client.send(&connect("device-3", "SCRAM-SHA-1", b"hello"));
    let Packet::ConnAck(connack) = read(&mut client) else { panic!("expected CONNACK") };
    assert_eq!(connack.reason_code, ReasonCode::BadAuthenticationMethod);
    client.expect_closed();
}

/// 4.12: an AUTH naming another method during the exchange is a Protocol Error: the
/// connection is closed without CONNACK.
#[test]
fn an_auth_with_another_method_closes_the_connection() {
    let broker = broker();
    let mut client = RawClient::connect(broker.addr);
    client.send(&connect("device-4", METHOD, b"hello"));
    let nonce = auth_data(&read(&mut client), ReasonCode::ContinueAuthentication);
    client.send(&auth(ReasonCode::ContinueAuthentication, "OTHER", &reversed(&nonce)));
    client.expect_closed();
}

/// 4.12.1: AUTH 0x19 starts re-authentication on a connected client; the exchange continues
/// with AUTH 0x18 and ends with AUTH 0x00, the connection staying up throughout.
#[test]
fn re_authentication_ends_in_auth_success() {
    let broker = broker();
    let mut client = authenticated(&broker, "device-5");
    client.send(&auth(ReasonCode::ReAuthenticate, METHOD, b"hello"));
    let nonce = auth_data(&read(&mut client), ReasonCode::ContinueAuthentication);
    client.send(&auth(ReasonCode::ContinueAuthentication, METHOD, &reversed(&nonce)));
    assert_eq!(auth_data(&read(&mut client), ReasonCode::Success), b"welcome");
    client.send(&encode(&Packet::PingReq));
    assert_eq!(read(&mut client), Packet::PingResp);
}

/// 4.12.1: a failed re-authentication ends the connection with DISCONNECT 0x87.
#[test]
fn a_failed_re_authentication_gets_disconnect_0x87() {
    let broker = broker();
    let mut client = authenticated(&broker, "device-6");
    client.send(&auth(ReasonCode::ReAuthenticate, METHOD, b"hello"));
    let _ = auth_data(&read(&mut client), ReasonCode::ContinueAuthentication);
    client.send(&auth(ReasonCode::ContinueAuthentication, METHOD, b"wrong"));
    let Packet::Disconnect(disconnect) = read(&mut client) else { panic!("expected DISCONNECT") };
    assert_eq!(disconnect.reason_code, ReasonCode::NotAuthorized);
    client.expect_closed();
}

/// 4.12.1: an AUTH 0x18 when no re-authentication was started is a Protocol Error
/// (DISCONNECT 0x82).
#[test]
fn an_auth_continue_out_of_sequence_gets_disconnect_0x82() {
    let broker = broker();
    let mut client = authenticated(&broker, "device-7");
    client.send(&auth(ReasonCode::ContinueAuthentication, METHOD, b"x"));
    let Packet::Disconnect(disconnect) = read(&mut client) else { panic!("expected DISCONNECT") };
    assert_eq!(disconnect.reason_code, ReasonCode::ProtocolError);
    client.expect_closed();
}

/// 4.12: without a method agreed at CONNECT, AUTH is a Protocol Error (DISCONNECT 0x82).
#[test]
fn an_auth_without_a_method_gets_disconnect_0x82() {
    let broker = broker();
    let mut client = RawClient::connect(broker.addr);
    client.send(&encode(&Packet::Connect(Box::new(Connect {
        protocol: ProtocolVersion::V5,
        clean_start: true,
        keep_alive: 60,
        client_id: "device-8".into(),
        will: None,
        username: None,
        password: None,
        properties: None,
    }))));
    let Packet::ConnAck(connack) = read(&mut client) else { panic!("expected CONNACK") };
    assert_eq!(connack.reason_code, ReasonCode::Success);
    client.send(&auth(ReasonCode::ReAuthenticate, METHOD, b"hello"));
    let Packet::Disconnect(disconnect) = read(&mut client) else { panic!("expected DISCONNECT") };
    assert_eq!(disconnect.reason_code, ReasonCode::ProtocolError);
    client.expect_closed();
}
