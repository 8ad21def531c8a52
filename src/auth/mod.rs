//! Authentication seams. Today: MQTT 5.0 enhanced authentication (section 4.12), the exchange
//! of AUTH packets that a named method drives during CONNECT and again on re-authentication.
//! The password file, ACLs and the built-in methods arrive with the authentication release and
//! plug in here.
//!
//! **Architecture Invariant:** a method never touches a socket or the session: it is given the
//! Authentication Data the client sent and says what to answer.

use std::fmt::Debug;

use bytes::Bytes;

/// One step's answer of an enhanced authentication exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this Authentication Data in an AUTH 0x18 (Continue authentication) and wait for the
    /// client's next AUTH.
    Continue(Option<Bytes>),
    /// The client is authenticated: CONNACK 0x00 (or AUTH 0x00 on re-authentication) with this
    /// Authentication Data.
    Success(Option<Bytes>),
    /// The client is not authenticated: CONNACK 0x87 (or DISCONNECT 0x87 on re-authentication).
    Failure,
}

/// An enhanced authentication method, named by the Authentication Method property
/// (3.1.2.11.9): a factory of exchanges, one per CONNECT or re-authentication.
pub trait AuthenticationMethod: Send + Sync + Debug {
    /// The method's name, as clients send it (e.g. "SCRAM-SHA-256").
    fn name(&self) -> &str;

    /// Starts an exchange for `client_id`, with the Authentication Data of the CONNECT (or of
    /// the AUTH 0x19 that asks for re-authentication); returns the exchange and its first step.
    fn begin(&self, client_id: &str, data: Option<&[u8]>) -> (Box<dyn Exchange>, Step);
}

/// The state of one exchange of a method.
pub trait Exchange: Send + Debug {
    /// The client's next AUTH 0x18 arrived with this Authentication Data.
    fn step(&mut self, data: Option<&[u8]>) -> Step;
}
