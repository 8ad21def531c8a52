//! Authentication seams: the password file (`password.rs`, mosquitto_passwd's format plus
//! RFC 5803's SCRAM-SHA-256 entries) checked at CONNECT by `Authenticator`, the ACL
//! (`acl.rs`), and MQTT 5.0 enhanced authentication (section 4.12), the exchange of AUTH
//! packets that a named method drives during CONNECT and again on re-authentication. One
//! method is built in: SCRAM-SHA-256 (`scram.rs`), over the same password file.
//!
//! **Architecture Invariant:** a method never touches a socket or the session: it is given the
//! Authentication Data the client sent and says what to answer.

mod acl;
mod http;
mod jwt;
pub mod passwd_tool;
mod password;
mod scram;

use std::collections::HashMap;
use std::fmt::Debug;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Semaphore;
use tokio::time::Instant;

pub use acl::{Acl, AclError, GrantedRule, Permissions, RuleAction};
pub(crate) use http::HttpHook;
pub use http::{HookAction, HookClient, HookVerdict};
pub(crate) use jwt::JwtVerifier;
pub use password::{
    hash_password, is_hash, scram_entry, PasswordFile, PasswordFileError, NEW_ITERATIONS, SCRAM_ITERATIONS,
};
pub(crate) use scram::ScramSha256;

/// The password file in force, shared by the `Authenticator` and the SCRAM-SHA-256 method: a
/// reload replaces it for both at once.
pub(crate) type SharedPasswords = Arc<RwLock<Option<Arc<PasswordFile>>>>;

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

/// The outcome of a login, with what a token said about the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// Let in or not.
    pub verdict: Verdict,
    /// When a token authenticated the client: its username (which replaces CONNECT's) and its
    /// ACL, if it carries one (which replaces the ACL file's rules).
    pub grant: Option<Grant>,
}

/// What a token granted a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The client's username.
    pub username: Option<String>,
    /// The client's ACL, if the token carries one.
    pub rules: Option<Vec<GrantedRule>>,
}

impl Login {
    fn verdict(verdict: Verdict) -> Login {
        Login { verdict, grant: None }
    }
}

/// Checks usernames and passwords at CONNECT: `[auth]` with `enabled`, `allow_anonymous` and
/// `password_file`, and throttles addresses and client identifiers that keep failing
/// (`throttle_failures`, `throttle_secs`).
#[derive(Debug)]
pub struct Authenticator {
    /// Replaced whole by a reload; the SCRAM-SHA-256 method reads the same lock.
    passwords: SharedPasswords,
    /// JSON Web Tokens as passwords, when configured.
    jwt: Option<JwtVerifier>,
    /// The HTTP hook, when it decides logins.
    hook: Option<Arc<HttpHook>>,
    allow_anonymous: bool,
    hashing: Semaphore,
    throttle: Throttle,
}

/// Most addresses and client identifiers whose failures are remembered at once: a storm from
/// many addresses cannot grow the table without bound.
const THROTTLE_ENTRIES: usize = 10_000;

/// Failed logins by address and by client identifier.
#[derive(Debug)]
struct Throttle {
    /// Failures within `window` after which an address or client identifier is refused
    /// without a password check; 0 turns throttling off.
    limit: u32,
    window: Duration,
    failures: Mutex<HashMap<ThrottleKey, (u32, Instant)>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ThrottleKey {
    Address(IpAddr),
    ClientId(String),
    Username(String),
}

impl Throttle {
    fn keys(peer: IpAddr, client_id: &str, username: Option<&str>) -> Vec<ThrottleKey> {
        let mut keys = vec![ThrottleKey::Address(peer), ThrottleKey::ClientId(client_id.to_owned())];
        if let Some(user) = username {
            keys.push(ThrottleKey::Username(user.to_owned()));
        }
        keys
    }

    /// Whether either key has failed `limit` times, the last within the window, at `now`.
    fn blocked(&self, keys: &[ThrottleKey], now: Instant) -> bool {
        if self.limit == 0 {
            return false;
        }
        let failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        keys.iter().any(|key| {
            failures
                .get(key)
                .is_some_and(|&(count, last)| count >= self.limit && now.duration_since(last) < self.window)
        })
    }

    /// Records a login's outcome: a failure counts against every key; a success clears the
    /// client identifier's and the username's, not the address's, so that a good login of
    /// one's own does not wipe the record of guesses against others from the same address.
    fn record(&self, keys: Vec<ThrottleKey>, failed: bool, now: Instant) {
        if self.limit == 0 {
            return;
        }
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        for key in keys {
            if !failed {
                if !matches!(key, ThrottleKey::Address(_)) {
                    failures.remove(&key);
                }
                continue;
            }
            if failures.len() >= THROTTLE_ENTRIES && !failures.contains_key(&key) {
                let window = self.window;
                failures.retain(|_, &mut (_, last)| now.duration_since(last) < window);
                if failures.len() >= THROTTLE_ENTRIES {
                    continue;
                }
            }
            let entry = failures.entry(key).or_insert((0, now));
            // Failures older than the window are forgotten.
            if now.duration_since(entry.1) >= self.window {
                entry.0 = 0;
            }
            entry.0 += 1;
            entry.1 = now;
        }
    }
}

impl Authenticator {
    /// An authenticator over `passwords` (none: only anonymous clients, if allowed), refusing
    /// an address or client identifier without checking after `throttle_failures` failures
    /// until `throttle_secs` have passed since the last one (0 failures: no throttling).
    pub fn new(
        passwords: Option<PasswordFile>,
        allow_anonymous: bool,
        throttle_failures: u32,
        throttle_secs: u64,
    ) -> Authenticator {
        Authenticator {
            passwords: Arc::new(RwLock::new(passwords.map(Arc::new))),
            jwt: None,
            hook: None,
            allow_anonymous,
            hashing: Semaphore::new(HASHING_AT_ONCE),
            throttle: Throttle {
                limit: throttle_failures,
                window: Duration::from_secs(throttle_secs),
                failures: Mutex::new(HashMap::new()),
            },
        }
    }

    /// Also accepts JSON Web Tokens as passwords, checked by `jwt`, and asks `hook` about the
    /// logins neither the password file nor a token decides.
    pub(crate) fn with_providers(
        mut self,
        jwt: Option<JwtVerifier>,
        hook: Option<Arc<HttpHook>>,
    ) -> Authenticator {
        self.jwt = jwt;
        self.hook = hook.filter(|hook| hook.decides_logins());
        self
    }

    /// Puts a reloaded password file in force for the logins that follow; clients already
    /// connected stay so.
    pub fn replace_passwords(&self, passwords: PasswordFile) {
        *self.passwords.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(passwords));
    }

    /// The lock that holds the password file in force, for the SCRAM-SHA-256 method to read.
    pub(crate) fn shared_passwords(&self) -> SharedPasswords {
        Arc::clone(&self.passwords)
    }

    /// Whether logins from `peer` or for `client_id` are refused without a check, for an
    /// enhanced authentication exchange about to start.
    #[allow(clippy::disallowed_methods)] // The throttle's window is read at the I/O edge.
    pub(crate) fn throttled(&self, peer: IpAddr, client_id: &str) -> bool {
        self.throttle.blocked(&Throttle::keys(peer, client_id, None), Instant::now())
    }

    /// Counts the outcome of an enhanced authentication exchange as a login's: a failure
    /// against `peer` and `client_id`, a success clearing the client identifier's.
    #[allow(clippy::disallowed_methods)] // The throttle's window is read at the I/O edge.
    pub(crate) fn record_exchange(&self, peer: IpAddr, client_id: &str, failed: bool) {
        self.throttle.record(Throttle::keys(peer, client_id, None), failed, Instant::now());
    }

    /// Checks a CONNECT's username and password, from `peer` for `client_id`. A password is
    /// binary data and is hashed whole: a NUL byte in it is part of it. The hash runs on the
    /// blocking pool, at most `HASHING_AT_ONCE` at a time; a throttled address or client
    /// identifier is refused before any hashing. A `certified` username is the Common Name of a
    /// client certificate that TLS verified: it needs no password, but one given must match.
    #[allow(clippy::disallowed_methods)] // The throttle's window is read at the I/O edge.
    pub async fn check(
        &self,
        peer: SocketAddr,
        client_id: &str,
        username: Option<&str>,
        password: Option<&[u8]>,
        certified: bool,
        protocol: u8,
    ) -> Login {
        let keys = Throttle::keys(peer.ip(), client_id, username);
        if self.throttle.blocked(&keys, Instant::now()) {
            tracing::debug!(%peer, "login refused without a check: too many failures");
            return Login::verdict(Verdict::BadCredentials);
        }
        let login = if certified && password.is_none() {
            Login::verdict(Verdict::Allowed)
        } else {
            let who = HookClient { client_id, username, peer };
            self.verify(who, password, protocol).await
        };
        self.throttle.record(keys, login.verdict != Verdict::Allowed, Instant::now());
        login
    }

    /// The providers in turn: a user of the password file is checked against it; otherwise a
    /// password shaped like a token is checked as one when tokens are configured; otherwise the
    /// HTTP hook decides, when it decides logins; what it ignores goes on to the anonymous
    /// rule (no username) or is refused.
    async fn verify(&self, who: HookClient<'_>, password: Option<&[u8]>, protocol: u8) -> Login {
        let username = who.username;
        let passwords = self.passwords.read().unwrap_or_else(PoisonError::into_inner).clone();
        let in_file = username.is_some_and(|user| passwords.as_ref().is_some_and(|p| p.contains(user)));
        if let (Some(jwt), Some(token), false) = (&self.jwt, password, in_file) {
            if JwtVerifier::looks_like_token(token) {
                return Login::token(jwt.verify(token), username);
            }
        }
        if let (Some(hook), false) = (&self.hook, in_file) {
            match hook.login(who, password, protocol).await {
                HookVerdict::Allow(rules) => {
                    let grant = rules
                        .map(|rules| Grant { username: username.map(str::to_owned), rules: Some(rules) });
                    return Login { verdict: Verdict::Allowed, grant };
                }
                HookVerdict::Deny | HookVerdict::Unavailable => {
                    let verdict =
                        if username.is_some() { Verdict::BadCredentials } else { Verdict::NotAuthorized };
                    return Login::verdict(verdict);
                }
                HookVerdict::Ignore => {}
            }
        }
        let Some(username) = username else {
            let verdict = if self.allow_anonymous { Verdict::Allowed } else { Verdict::NotAuthorized };
            return Login::verdict(verdict);
        };
        Login::verdict(self.verify_password(passwords, username, password).await)
    }

    async fn verify_password(
        &self,
        passwords: Option<Arc<PasswordFile>>,
        username: &str,
        password: Option<&[u8]>,
    ) -> Verdict {
        let (Some(passwords), Some(password)) = (passwords, password) else {
            return Verdict::BadCredentials;
        };
        let Ok(_permit) = self.hashing.acquire().await else {
            return Verdict::BadCredentials;
        };
        let (username, password) = (username.to_owned(), password.to_vec());
        let verified = tokio::task::spawn_blocking(move || passwords.verify(&username, &password)).await;
        if verified.unwrap_or(false) {
            Verdict::Allowed
        } else {
            Verdict::BadCredentials
        }
    }
}

impl Login {
    /// The outcome of a token check: a CONNECT username must be the token's, or empty (3.1.1
    /// has no password without a username, so clients send an empty one).
    fn token(verified: Result<jwt::TokenGrant, String>, username: Option<&str>) -> Login {
        let unnamed = username.is_none_or(str::is_empty);
        match verified {
            Ok(grant) if unnamed || username == grant.username.as_deref() => Login {
                verdict: Verdict::Allowed,
                grant: Some(Grant { username: grant.username, rules: grant.rules }),
            },
            Ok(grant) => {
                tracing::info!(token_username = ?grant.username, "token refused: CONNECT names another username");
                Login::verdict(Verdict::BadCredentials)
            }
            Err(problem) => {
                tracing::info!(%problem, "token refused");
                Login::verdict(Verdict::BadCredentials)
            }
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

    /// The username the exchange authenticated, once it has succeeded; `None` for a method that
    /// authenticates no username. A name given here becomes the connection's username (for the
    /// ACL and the client's identity), a CONNECT User Name must be the same (CONNACK 0x86
    /// otherwise), and a re-authentication must give it again. With `None`, while `[auth]` is
    /// enabled, a CONNECT User Name is refused the same way, since nothing verified it.
    fn username(&self) -> Option<&str> {
        None
    }
}
