//! Authentication seams: the password file (`password.rs`, mosquitto_passwd's format) checked
//! at CONNECT by `Authenticator`, and MQTT 5.0 enhanced authentication (section 4.12), the
//! exchange of AUTH packets that a named method drives during CONNECT and again on
//! re-authentication. ACLs and the built-in methods arrive later and plug in here.
//!
//! **Architecture Invariant:** a method never touches a socket or the session: it is given the
//! Authentication Data the client sent and says what to answer.

mod acl;
pub mod passwd_tool;
mod password;

use std::fmt::Debug;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::Semaphore;

pub use acl::{Acl, AclError, Permissions};
pub use password::{hash_password, is_hash, PasswordFile, PasswordFileError, NEW_ITERATIONS};

/// Password checks that may run at once; each runs off the connection tasks, on the blocking
/// pool, so a storm of logins never stalls the connections that are already in.
const HASHING_AT_ONCE: usize = 4;

/// The outcome of checking a CONNECT's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let in.
    Allowed,
    /// Wrong username or password, or a username the file does not have (3.1.1 CONNACK 0x04,
    /// 5.0 0x86).
    BadCredentials,
    /// No username, and anonymous clients are not allowed (3.1.1 0x05, 5.0 0x87).
    NotAuthorized,
}

/// Checks usernames and passwords at CONNECT: `[auth]` with `enabled`, `allow_anonymous` and
/// `password_file`.
#[derive(Debug)]
pub struct Authenticator {
    passwords: Option<Arc<PasswordFile>>,
    allow_anonymous: bool,
    hashing: Semaphore,
}

impl Authenticator {
    /// An authenticator over `passwords` (none: only anonymous clients, if allowed).
    pub fn new(passwords: Option<PasswordFile>, allow_anonymous: bool) -> Authenticator {
        Authenticator {
            passwords: passwords.map(Arc::new),
            allow_anonymous,
            hashing: Semaphore::new(HASHING_AT_ONCE),
        }
    }

    /// Checks a CONNECT's username and password. A password is binary data and is hashed whole
    /// [MQTT-3.1.3-5 note]: a NUL byte in it is part of it. The hash runs on the blocking pool,
    /// at most `HASHING_AT_ONCE` at a time.
    pub async fn check(&self, username: Option<&str>, password: Option<&[u8]>) -> Verdict {
        let Some(username) = username else {
            return if self.allow_anonymous { Verdict::Allowed } else { Verdict::NotAuthorized };
        };
        let (Some(passwords), Some(password)) = (&self.passwords, password) else {
            return Verdict::BadCredentials;
        };
        let Ok(_permit) = self.hashing.acquire().await else {
            return Verdict::BadCredentials;
        };
        let (passwords, username, password) = (Arc::clone(passwords), username.to_owned(), password.to_vec());
        let verified = tokio::task::spawn_blocking(move || passwords.verify(&username, &password)).await;
        if verified.unwrap_or(false) {
            Verdict::Allowed
        } else {
            Verdict::BadCredentials
        }
    }
}

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
