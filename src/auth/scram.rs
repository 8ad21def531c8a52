//! SCRAM-SHA-256 (RFC 5802 with RFC 7677's hash), the built-in MQTT 5.0 enhanced
//! authentication method (4.12) called "SCRAM-SHA-256", over the SCRAM entries of the password
//! file in force (`password.rs`). The SASL messages travel as MQTT 5.0 carries them: the
//! client-first-message in the Authentication Data of CONNECT (or of the AUTH 0x19 that asks for
//! re-authentication), the server-first-message in AUTH 0x18, the client-final-message in AUTH
//! 0x18, and the server-final-message (`v=`, the ServerSignature) in the CONNACK 0x00 (AUTH 0x00
//! on re-authentication).
//!
//! What a client may send:
//! - the GS2 header `n,,`; `y,,` (the client could bind a channel but thinks the server cannot)
//!   is taken as `n,,`, since the server offers no channel binding to be downgraded from; `p=`
//!   (channel binding) and an authorisation identity (`a=`) are refused;
//! - the username `n=` with `=2C` and `=3D` for `,` and `=`. SASLprep (RFC 4013) is not applied:
//!   an ASCII username is taken as it is (SASLprep leaves printable ASCII unchanged), and a
//!   non-ASCII one is compared byte for byte with the names of the password file;
//! - any nonce of printable ASCII but `,`; the server appends 18 random bytes in Base64;
//! - extensions, which are ignored, except `m=`, which RFC 5802 (section 5.1) says must fail.
//!
//! A username the file lacks, or one whose entry is `$7$` or `$6$` (they keep no StoredKey),
//! gets a server-first-message of the same shape as a known user's: a salt made up from the
//! username by an HMAC under a key drawn when the server starts (so the same name gets the same
//! salt every time, as a real salt is), and the iteration count `iothub passwd --scram` writes.
//! The exchange then runs to its end and fails there, after the same work as a wrong password.
//!
//! Every malformed message, unknown user and wrong proof is `Step::Failure` (CONNACK 0x87, or
//! DISCONNECT 0x87 on re-authentication); the server-final-message never carries `e=`. Parsing
//! borrows from the message and allocates at most a few copies of its size.
//!
//! **Architecture Invariant:** the exchange reads no clock and no socket; randomness is drawn in
//! `begin` only, so that the math is tested with the RFC's fixed nonces.

use std::fmt;
use std::sync::PoisonError;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use super::password::{hmac_sha256, SCRAM_ITERATIONS};
use super::{AuthenticationMethod, Exchange, SharedPasswords, Step};

/// The method's name, as clients send it in the Authentication Method property.
pub(crate) const SCRAM_SHA_256: &str = "SCRAM-SHA-256";

/// Random bytes the server appends to the client's nonce (RFC 5802 asks for a fresh, unguessable
/// value; 18 bytes are 24 Base64 characters without padding).
const NONCE_BYTES: usize = 18;

/// Bytes of a made-up salt: as many as `iothub passwd --scram` draws for a real one.
const FAKE_SALT_BYTES: usize = 16;

/// The built-in SCRAM-SHA-256 method over the password file in force: it shares the
/// `Authenticator`'s lock, so a reload reaches the exchanges that start after it.
pub(crate) struct ScramSha256 {
    /// The password file, as the `Authenticator` holds it.
    passwords: SharedPasswords,
    /// Key of the HMAC that makes up a salt for a username without SCRAM credentials.
    fake_salt_key: [u8; 32],
}

impl fmt::Debug for ScramSha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramSha256").field("fake_salt_key", &"<REDACTED>").finish_non_exhaustive()
    }
}

impl ScramSha256 {
    /// The method over `passwords`, with a fresh random key for made-up salts.
    pub(crate) fn new(passwords: SharedPasswords) -> Result<ScramSha256, String> {
        let mut fake_salt_key = [0u8; 32];
        getrandom::fill(&mut fake_salt_key).map_err(|e| format!("no random key for SCRAM-SHA-256: {e}"))?;
        Ok(ScramSha256 { passwords, fake_salt_key })
    }

    /// Answers a client-first-message with `server_nonce` appended to the client's nonce:
    /// the exchange that waits for the client-final-message, and the server-first-message.
    fn start(&self, message: &[u8], server_nonce: &str) -> Result<(ServerExchange, String), &'static str> {
        let first = ClientFirst::parse(message)?;
        let passwords = self.passwords.read().unwrap_or_else(PoisonError::into_inner).clone();
        // Made up for every user, known or not, so that both cost the same.
        let fake_salt = hmac_sha256(&self.fake_salt_key, &[first.username.as_bytes()]);
        let (known, salt, iterations, keys) =
            match passwords.as_deref().and_then(|file| file.scram_keys(&first.username)) {
                Some(keys) => (
                    true,
                    &keys.salt[..],
                    keys.iterations,
                    Keys { stored: keys.stored_key, server: keys.server_key },
                ),
                None => (false, &fake_salt[..FAKE_SALT_BYTES], SCRAM_ITERATIONS, Keys::default()),
            };
        let nonce = format!("{}{server_nonce}", first.nonce);
        let server_first = format!("r={nonce},s={},i={iterations}", STANDARD.encode(salt));
        let awaiting = Awaiting {
            auth_message: format!("{},{server_first},", first.bare),
            username: first.username,
            known,
            gs2_header: first.gs2_header.to_owned(),
            nonce,
            keys,
        };
        Ok((ServerExchange { state: State::AwaitingFinal(awaiting) }, server_first))
    }
}

impl AuthenticationMethod for ScramSha256 {
    fn name(&self) -> &str {
        SCRAM_SHA_256
    }

    fn begin(&self, _client_id: &str, data: Option<&[u8]>) -> (Box<dyn Exchange>, Step) {
        let mut random = [0u8; NONCE_BYTES];
        if let Err(error) = getrandom::fill(&mut random) {
            tracing::warn!(%error, "SCRAM-SHA-256: no random nonce; the client is refused");
            return (Box::new(ServerExchange::ended()), Step::Failure);
        }
        match self.start(data.unwrap_or_default(), &STANDARD.encode(random)) {
            Ok((exchange, server_first)) => {
                (Box::new(exchange), Step::Continue(Some(Bytes::from(server_first))))
            }
            Err(why) => {
                tracing::debug!(why, "SCRAM-SHA-256 client-first-message refused");
                (Box::new(ServerExchange::ended()), Step::Failure)
            }
        }
    }
}

/// The two keys a proof is checked and the server signs with.
#[derive(Default)]
struct Keys {
    /// StoredKey: H(ClientKey).
    stored: [u8; 32],
    /// ServerKey.
    server: [u8; 32],
}

/// One SCRAM-SHA-256 exchange, from the server-first-message on.
struct ServerExchange {
    /// Where the exchange is.
    state: State,
}

/// Where an exchange is.
enum State {
    /// The server-first-message is sent; the client-final-message is awaited.
    AwaitingFinal(Awaiting),
    /// The client proved it knows the password of this user.
    Authenticated(String),
    /// It failed (or never started); every further step fails.
    Ended,
}

/// What the server-first-message left to check.
struct Awaiting {
    /// AuthMessage up to the client-final-message-without-proof: client-first-message-bare,
    /// server-first-message, each followed by a comma.
    auth_message: String,
    /// The username, unescaped.
    username: String,
    /// Whether the username has SCRAM credentials (otherwise the keys are made up).
    known: bool,
    /// The GS2 header, which the client-final-message's `c=` must repeat.
    gs2_header: String,
    /// The client's nonce followed by the server's.
    nonce: String,
    /// The user's keys.
    keys: Keys,
}

impl fmt::Debug for ServerExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::AwaitingFinal(awaiting) => {
                format!("awaiting the client-final-message of {:?}", awaiting.username)
            }
            State::Authenticated(username) => format!("authenticated {username:?}"),
            State::Ended => "ended".to_owned(),
        };
        f.debug_struct("ServerExchange").field("state", &state).finish()
    }
}

impl ServerExchange {
    /// An exchange that failed before it started.
    fn ended() -> ServerExchange {
        ServerExchange { state: State::Ended }
    }
}

impl Exchange for ServerExchange {
    fn step(&mut self, data: Option<&[u8]>) -> Step {
        let State::AwaitingFinal(awaiting) = std::mem::replace(&mut self.state, State::Ended) else {
            return Step::Failure;
        };
        match awaiting.finish(data.unwrap_or_default()) {
            Ok((username, signature)) => {
                self.state = State::Authenticated(username);
                Step::Success(Some(Bytes::from(format!("v={}", STANDARD.encode(signature)))))
            }
            Err(why) => {
                tracing::debug!(why, "SCRAM-SHA-256 client-final-message refused");
                Step::Failure
            }
        }
    }

    fn username(&self) -> Option<&str> {
        match &self.state {
            State::Authenticated(username) => Some(username),
            _ => None,
        }
    }
}

impl Awaiting {
    /// Checks the client-final-message; returns the username and the ServerSignature.
    fn finish(self, message: &[u8]) -> Result<(String, [u8; 32]), &'static str> {
        let last = ClientFinal::parse(message)?;
        if last.channel_binding != self.gs2_header.as_bytes() {
            return Err("the channel binding does not repeat the GS2 header");
        }
        if last.nonce != self.nonce {
            return Err("the nonce is not the exchange's");
        }
        let auth_message = [self.auth_message.as_bytes(), last.without_proof.as_bytes()];
        let client_signature = hmac_sha256(&self.keys.stored, &auth_message);
        let mut client_key = last.proof;
        for (byte, signature) in client_key.iter_mut().zip(client_signature) {
            *byte ^= signature;
        }
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        let proved = stored_key.ct_eq(&self.keys.stored) & Choice::from(u8::from(self.known));
        let server_signature = hmac_sha256(&self.keys.server, &auth_message);
        if bool::from(proved) {
            Ok((self.username, server_signature))
        } else if self.known {
            Err("wrong proof")
        } else {
            Err("no SCRAM-SHA-256 credentials for the username")
        }
    }
}

/// A client-first-message (RFC 5802 section 7), borrowed from the Authentication Data.
struct ClientFirst<'a> {
    /// `n,,` or `y,,`.
    gs2_header: &'a str,
    /// The client-first-message-bare, which AuthMessage starts with.
    bare: &'a str,
    /// The username, unescaped.
    username: String,
    /// The client's nonce.
    nonce: &'a str,
}

impl ClientFirst<'_> {
    fn parse(message: &[u8]) -> Result<ClientFirst<'_>, &'static str> {
        let text = std::str::from_utf8(message).map_err(|_| "not UTF-8")?;
        let (flag, rest) = text.split_once(',').ok_or("no GS2 header")?;
        match flag {
            "n" | "y" => {}
            _ if flag.starts_with("p=") => return Err("channel binding is not offered"),
            _ => return Err("not a GS2 channel binding flag"),
        }
        let (authzid, bare) = rest.split_once(',').ok_or("no GS2 header")?;
        if !authzid.is_empty() {
            return Err("an authorisation identity is not supported");
        }
        let gs2_header = &text[..text.len() - bare.len()];
        let mut attributes = bare.split(',');
        let username = attributes.next().unwrap_or_default();
        if username.starts_with("m=") {
            return Err("a mandatory extension");
        }
        let username = unescape(username.strip_prefix("n=").ok_or("no username")?)?;
        let nonce = attributes.next().and_then(|a| a.strip_prefix("r=")).ok_or("no nonce")?;
        if nonce.is_empty() || !nonce.bytes().all(|b| (0x21..=0x7E).contains(&b) && b != b',') {
            return Err("the nonce is not printable ASCII");
        }
        extensions(attributes)?;
        Ok(ClientFirst { gs2_header, bare, username, nonce })
    }
}

/// A client-final-message (RFC 5802 section 7), borrowed from the Authentication Data.
struct ClientFinal<'a> {
    /// The client-final-message-without-proof, which AuthMessage ends with.
    without_proof: &'a str,
    /// `c=`, decoded.
    channel_binding: Vec<u8>,
    /// `r=`.
    nonce: &'a str,
    /// `p=`, decoded: the ClientProof.
    proof: [u8; 32],
}

impl ClientFinal<'_> {
    fn parse(message: &[u8]) -> Result<ClientFinal<'_>, &'static str> {
        let text = std::str::from_utf8(message).map_err(|_| "not UTF-8")?;
        let (without_proof, proof) = text.rsplit_once(",p=").ok_or("no proof")?;
        if proof.contains(',') {
            return Err("the proof is not the last attribute");
        }
        let proof = STANDARD.decode(proof).map_err(|_| "the proof is not Base64")?;
        let proof: [u8; 32] = proof.try_into().map_err(|_| "the proof is not 32 bytes")?;
        let mut attributes = without_proof.split(',');
        let channel_binding =
            attributes.next().and_then(|a| a.strip_prefix("c=")).ok_or("no channel binding")?;
        let channel_binding =
            STANDARD.decode(channel_binding).map_err(|_| "the channel binding is not Base64")?;
        let nonce = attributes.next().and_then(|a| a.strip_prefix("r=")).ok_or("no nonce")?;
        extensions(attributes)?;
        Ok(ClientFinal { without_proof, channel_binding, nonce, proof })
    }
}

/// A saslname with `=2C` and `=3D` turned back into `,` and `=`; it may not be empty or hold a
/// NUL, and any other `=` is malformed.
fn unescape(name: &str) -> Result<String, &'static str> {
    if name.is_empty() {
        return Err("an empty username");
    }
    let mut unescaped = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        unescaped.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => unescaped.push(','),
            Some("=3D") => unescaped.push('='),
            _ => return Err("a '=' in the username that is not =2C or =3D"),
        }
        rest = &rest[at + 3..];
    }
    unescaped.push_str(rest);
    if unescaped.contains('\0') {
        return Err("a NUL in the username");
    }
    Ok(unescaped)
}

/// Checks that the remaining attributes are extensions (`x=value`, a letter other than the
/// reserved `m`) and ignores them.
fn extensions<'a>(attributes: impl Iterator<Item = &'a str>) -> Result<(), &'static str> {
    for attribute in attributes {
        match attribute.as_bytes() {
            [b'm', b'=', ..] => return Err("a mandatory extension"),
            [name, b'=', value @ ..]
                if name.is_ascii_alphabetic() && !value.is_empty() && !value.contains(&0) => {}
            _ => return Err("an attribute that is not name=value"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, RwLock};

    use proptest::prelude::*;

    use super::*;
    use crate::auth::PasswordFile;

    /// RFC 7677 section 3: user "user", password "pencil", salt, 4096 iterations, and the
    /// StoredKey and ServerKey they derive, as an RFC 5803 entry.
    const RFC_USER: &str = "user:SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";
    const CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
    /// A `$7$` entry, which cannot serve SCRAM: alice / secret.
    const PBKDF2_USER: &str = "alice:$7$101$5duBLFV+Id+u99M9$F5b8rr06h80+doCG3w3/FSw5j8QJ4QxVnC2jhVE9DGk7Qa1ZvrKaDRvX000BkKAqNabW0W+M+r8hr4Ac0uy0QA==";

    fn method(text: &str) -> ScramSha256 {
        let file = PasswordFile::parse(text).unwrap();
        ScramSha256 { passwords: Arc::new(RwLock::new(Some(Arc::new(file)))), fake_salt_key: [7; 32] }
    }

    fn rfc_method() -> ScramSha256 {
        method(&format!("{RFC_USER}\n{PBKDF2_USER}\n"))
    }

    /// The salt and iteration count of a server-first-message with this combined nonce.
    fn salt_and_iterations<'a>(server_first: &'a str, nonce: &str) -> (&'a str, &'a str) {
        let rest = server_first.strip_prefix(&format!("r={nonce},s=")).unwrap();
        rest.split_once(",i=").unwrap()
    }

    #[test]
    fn rfc_7677_test_vector() {
        let method = rfc_method();
        let (mut exchange, server_first) = method.start(CLIENT_FIRST.as_bytes(), SERVER_NONCE).unwrap();
        assert_eq!(server_first, SERVER_FIRST);
        assert_eq!(exchange.username(), None, "nothing is authenticated yet");
        let step = exchange.step(Some(CLIENT_FINAL.as_bytes()));
        assert_eq!(step, Step::Success(Some(Bytes::from_static(SERVER_FINAL.as_bytes()))));
        assert_eq!(exchange.username(), Some("user"));
        assert_eq!(exchange.step(Some(CLIENT_FINAL.as_bytes())), Step::Failure, "an exchange ends once");
    }

    #[test]
    fn rfc_7677_entry_serves_the_plain_password_too() {
        let file = PasswordFile::parse(RFC_USER).unwrap();
        assert!(file.verify("user", b"pencil"));
        // Not "pencil\0": HMAC pads a short key with zeros, so PBKDF2 cannot tell trailing NULs.
        assert!(!file.verify("user", b"\0pencil") && !file.verify("user", b"Pencil"));
    }

    #[test]
    fn a_wrong_proof_fails() {
        let method = rfc_method();
        let wrong = CLIENT_FINAL.replace("p=dHzb", "p=dHzc");
        let (mut exchange, _) = method.start(CLIENT_FIRST.as_bytes(), SERVER_NONCE).unwrap();
        assert_eq!(exchange.step(Some(wrong.as_bytes())), Step::Failure);
        assert_eq!(exchange.username(), None);
    }

    #[test]
    fn begin_appends_18_random_bytes_to_the_client_nonce() {
        let method = rfc_method();
        let (_, first) = method.begin("c", Some(CLIENT_FIRST.as_bytes()));
        let (_, second) = method.begin("c", Some(CLIENT_FIRST.as_bytes()));
        let nonce = |step: &Step| match step {
            Step::Continue(Some(data)) => {
                let text = std::str::from_utf8(data).unwrap().to_owned();
                let nonce = text.split(',').next().unwrap().strip_prefix("r=rOprNGfwEbeRWgbNEkqO").unwrap();
                nonce.to_owned()
            }
            other => panic!("expected the server-first-message, got {other:?}"),
        };
        let (first, second) = (nonce(&first), nonce(&second));
        assert_eq!(STANDARD.decode(&first).unwrap().len(), NONCE_BYTES);
        assert_ne!(first, second);
    }

    #[test]
    fn an_unknown_user_gets_a_server_first_message_of_the_same_shape_and_fails() {
        let method = rfc_method();
        let start = |name: &str| {
            let message = format!("n,,n={name},r=rOprNGfwEbeRWgbNEkqO");
            method.start(message.as_bytes(), SERVER_NONCE).unwrap()
        };
        let (_, known) = start("user");
        let (mut unknown, ghost) = start("ghost");
        let nonce = format!("rOprNGfwEbeRWgbNEkqO{SERVER_NONCE}");
        let (known_salt, known_iterations) = salt_and_iterations(&known, &nonce);
        let (ghost_salt, ghost_iterations) = salt_and_iterations(&ghost, &nonce);
        assert_eq!(ghost_iterations, known_iterations);
        assert_eq!(STANDARD.decode(ghost_salt).unwrap().len(), STANDARD.decode(known_salt).unwrap().len());
        assert_eq!(start("ghost").1, ghost, "the same name gets the same salt");
        assert_ne!(salt_and_iterations(&start("other").1, &nonce).0, ghost_salt);
        assert_eq!(unknown.step(Some(CLIENT_FINAL.as_bytes())), Step::Failure);
    }

    #[test]
    fn a_user_with_a_mosquitto_entry_cannot_use_scram() {
        let method = rfc_method();
        let (mut exchange, server_first) = method.start(b"n,,n=alice,r=abc", "xyz").unwrap();
        let (salt, iterations) = salt_and_iterations(&server_first, "abcxyz");
        assert_eq!((STANDARD.decode(salt).unwrap().len(), iterations), (FAKE_SALT_BYTES, "4096"));
        let last = format!("c=biws,r=abcxyz,p={}", STANDARD.encode([0u8; 32]));
        assert_eq!(exchange.step(Some(last.as_bytes())), Step::Failure);
    }

    #[test]
    fn malformed_client_first_messages_fail() {
        let method = rfc_method();
        for message in [
            &b""[..],
            b"n,",
            b"n,,",
            b"p=tls-unique,,n=user,r=abc",
            b"n,a=user,n=user,r=abc",
            b"x,,n=user,r=abc",
            b"n,,m=ext,n=user,r=abc",
            b"n,,n=,r=abc",
            b"n,,n=us=er,r=abc",
            b"n,,n=us=2,r=abc",
            b"n,,n=us=2c,r=abc",
            b"n,,n=us\0er,r=abc",
            b"n,,n=user",
            b"n,,n=user,r=",
            b"n,,n=user,r=a b",
            b"n,,n=user,x=abc",
            b"n,,r=abc,n=user",
            b"n,,n=user,r=abc,1=x",
            b"n,,n=user,r=abc,m=x",
            b"n,,n=user,r=abc,x=",
            b"n,,n=user,r=abc,,",
            b"n,,n=\xff,r=abc",
        ] {
            assert!(method.start(message, "xyz").is_err(), "{:?}", String::from_utf8_lossy(message));
            let (_, step) = method.begin("c", Some(message));
            assert_eq!(step, Step::Failure);
        }
        assert_eq!(method.begin("c", None).1, Step::Failure);
    }

    #[test]
    fn usernames_are_unescaped_and_extensions_ignored() {
        let method = method("a,b=c:SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=");
        let (_, server_first) = method.start(b"y,,n=a=2Cb=3Dc,r=abc,x=ignored", "xyz").unwrap();
        assert!(server_first.starts_with("r=abcxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"), "{server_first}");
    }

    #[test]
    fn malformed_client_final_messages_fail() {
        let method = rfc_method();
        let nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let proof = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        for message in [
            String::new(),
            format!("c=biws,r={nonce}"),
            format!("c=biws,r={nonce},p="),
            format!("c=biws,r={nonce},p=!!!!"),
            format!("c=biws,r={nonce},p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndQ=="),
            format!("c=biws,r={nonce},p={proof},x=after"),
            format!("c=eSws,r={nonce},p={proof}"),
            format!("c=!,r={nonce},p={proof}"),
            format!("c=biws,r={nonce}x,p={proof}"),
            format!("c=biws,r=rOprNGfwEbeRWgbNEkqO,p={proof}"),
            format!("r={nonce},c=biws,p={proof}"),
            format!("c=biws,r={nonce},m=x,p={proof}"),
            format!("c=biws,r={nonce},,p={proof}"),
        ] {
            let (mut exchange, _) = method.start(CLIENT_FIRST.as_bytes(), SERVER_NONCE).unwrap();
            assert_eq!(exchange.step(Some(message.as_bytes())), Step::Failure, "{message}");
        }
        let (mut exchange, _) = method.start(CLIENT_FIRST.as_bytes(), SERVER_NONCE).unwrap();
        assert_eq!(exchange.step(None), Step::Failure);
    }

    #[test]
    fn y_flag_is_taken_as_n_and_its_header_must_be_repeated() {
        let method = rfc_method();
        let client_first = "y,,n=user,r=rOprNGfwEbeRWgbNEkqO";
        let (mut exchange, server_first) = method.start(client_first.as_bytes(), SERVER_NONCE).unwrap();
        assert_eq!(server_first, SERVER_FIRST);
        // The proof of RFC 7677 signs "c=biws"; with "c=eSws" ("y,,") it must be recomputed,
        // so the test only checks that "c=biws" is refused after "y,,".
        assert_eq!(exchange.step(Some(CLIENT_FINAL.as_bytes())), Step::Failure);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(first in proptest::collection::vec(any::<u8>(), 0..64),
                                       last in proptest::collection::vec(any::<u8>(), 0..96)) {
            let method = rfc_method();
            let _ = method.begin("c", Some(&first));
            let (mut exchange, _) = method.start(CLIENT_FIRST.as_bytes(), SERVER_NONCE).unwrap();
            prop_assert_eq!(exchange.step(Some(&last)), Step::Failure);
        }

        #[test]
        fn arbitrary_text_never_panics(first in "[nyp=,a-z0-9\\x00-\\x7f]{0,40}", last in "[cpr=,a-zA-Z0-9+/]{0,80}") {
            let method = rfc_method();
            let _ = method.begin("c", Some(first.as_bytes()));
            let (mut exchange, _) = method.start(CLIENT_FIRST.as_bytes(), SERVER_NONCE).unwrap();
            let _ = exchange.step(Some(last.as_bytes()));
        }
    }
}
