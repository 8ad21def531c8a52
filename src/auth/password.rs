//! The password file, in the format `mosquitto_passwd` writes: one `username:hash` per line,
//! where the hash is
//! - `$7$ITERATIONS$SALT$HASH`: PBKDF2-HMAC-SHA512 over the password with that salt and that
//!   many iterations (Mosquitto 2.0's default, 101 iterations, 12-byte salt, 64-byte hash);
//! - `$6$SALT$HASH`: SHA-512 over the password followed by the salt (Mosquitto 1.6 and earlier);
//! - `SCRAM-SHA-256$ITERATIONS:SALT$STOREDKEY:SERVERKEY`: the SCRAM credentials of RFC 5802
//!   and RFC 7677 in RFC 5803's layout, which serve both the SCRAM-SHA-256 exchange (`scram.rs`)
//!   and a plain CONNECT password (SaltedPassword by PBKDF2-HMAC-SHA256, then ClientKey and
//!   StoredKey, compared with the stored one);
//!
//! salt, hash and keys in standard Base64. Blank lines and lines starting with `#` are skipped.
//! A password is binary data (3.1.3.5): it is hashed whole, NUL bytes included, and compared in
//! constant time. A SCRAM password is used as its bytes, without SASLprep (RFC 4013): a client
//! that normalises a non-ASCII password must have had it written normalised the same way.
//!
//! Only SCRAM-SHA-256 entries can serve the SCRAM exchange: `$7$` and `$6$` entries keep no
//! StoredKey or ServerKey, so the exchange fails for their users (`iothub passwd --scram`
//! writes entries that serve both).

use std::collections::HashMap;
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// Most PBKDF2 iterations an entry may ask for: a hostile or mistaken file must not make each
/// login cost seconds.
const MAX_ITERATIONS: u32 = 1_000_000;

/// One user's stored hash.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Hash {
    /// `$7$`: PBKDF2-HMAC-SHA512.
    Pbkdf2 { iterations: u32, salt: Vec<u8>, hash: Vec<u8> },
    /// `$6$`: SHA-512 of password and salt.
    Sha512 { salt: Vec<u8>, hash: Vec<u8> },
    /// `SCRAM-SHA-256$`: RFC 5803's stored SCRAM credentials.
    Scram(ScramKeys),
}

impl Hash {
    fn parse(text: &str) -> Result<Hash, String> {
        let decode =
            |part: &str, what: &str| STANDARD.decode(part).map_err(|e| format!("{what} is not Base64: {e}"));
        if let Some(rest) = text.strip_prefix("$7$") {
            let mut parts = rest.split('$');
            let (Some(iterations), Some(salt), Some(hash), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err("a $7$ entry is $7$iterations$salt$hash".to_owned());
            };
            let iterations = parse_iterations(iterations)?;
            let hash = decode(hash, "the hash")?;
            if hash.is_empty() || hash.len() > 64 {
                return Err("the hash must be 1 to 64 bytes".to_owned());
            }
            return Ok(Hash::Pbkdf2 { iterations, salt: decode(salt, "the salt")?, hash });
        }
        if let Some(rest) = text.strip_prefix("$6$") {
            let mut parts = rest.split('$');
            let (Some(salt), Some(hash), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err("a $6$ entry is $6$salt$hash".to_owned());
            };
            let hash = decode(hash, "the hash")?;
            if hash.len() != 64 {
                return Err("a $6$ hash is 64 bytes".to_owned());
            }
            return Ok(Hash::Sha512 { salt: decode(salt, "the salt")?, hash });
        }
        if let Some(rest) = text.strip_prefix(SCRAM_PREFIX) {
            return parse_scram(rest).map(Hash::Scram);
        }
        Err("not a $7$ (PBKDF2-SHA512), $6$ (SHA-512) or SCRAM-SHA-256$ entry; plaintext files must be converted (iothub passwd -U)".to_owned())
    }

    /// Whether `password` matches, in time independent of where it differs.
    fn verify(&self, password: &[u8]) -> bool {
        match self {
            Hash::Pbkdf2 { iterations, salt, hash } => {
                let mut derived = vec![0u8; hash.len()];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, *iterations, &mut derived);
                derived.ct_eq(hash).into()
            }
            Hash::Sha512 { salt, hash } => {
                let mut digest = Sha512::new();
                digest.update(password);
                digest.update(salt);
                digest.finalize().as_slice().ct_eq(hash).into()
            }
            Hash::Scram(keys) => keys.verify(password),
        }
    }
}

/// The prefix of an RFC 5803 SCRAM-SHA-256 entry.
const SCRAM_PREFIX: &str = "SCRAM-SHA-256$";

/// Iterations of a new SCRAM-SHA-256 entry: RFC 7677's minimum (section 4).
pub const SCRAM_ITERATIONS: u32 = 4096;

/// Salt bytes of a new SCRAM-SHA-256 entry.
const SCRAM_SALT_BYTES: usize = 16;

/// What the server keeps of a SCRAM-SHA-256 password (RFC 5802 section 3): enough to check a
/// ClientProof and to sign for the server, not enough to log in as the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScramKeys {
    /// The PBKDF2 iteration count that salted the password.
    pub(crate) iterations: u32,
    /// The salt.
    pub(crate) salt: Vec<u8>,
    /// H(ClientKey).
    pub(crate) stored_key: [u8; 32],
    /// HMAC(SaltedPassword, "Server Key").
    pub(crate) server_key: [u8; 32],
}

impl ScramKeys {
    /// The keys of `password` with this salt and iteration count: SaltedPassword is
    /// Hi(password, salt, iterations), PBKDF2-HMAC-SHA256 (RFC 5802 section 2.2).
    pub(crate) fn derive(password: &[u8], salt: Vec<u8>, iterations: u32) -> ScramKeys {
        let (stored_key, server_key) = scram_keys(password, &salt, iterations);
        ScramKeys { iterations, salt, stored_key, server_key }
    }

    /// Whether `password` derives this StoredKey, in time independent of where it differs.
    fn verify(&self, password: &[u8]) -> bool {
        let (stored_key, _) = scram_keys(password, &self.salt, self.iterations);
        stored_key.ct_eq(&self.stored_key).into()
    }

    /// The entry's text after `user:`.
    fn entry(&self) -> String {
        format!(
            "{SCRAM_PREFIX}{}:{}${}:{}",
            self.iterations,
            STANDARD.encode(&self.salt),
            STANDARD.encode(self.stored_key),
            STANDARD.encode(self.server_key)
        )
    }
}

/// StoredKey and ServerKey of `password` (RFC 5802 section 3).
fn scram_keys(password: &[u8], salt: &[u8], iterations: u32) -> ([u8; 32], [u8; 32]) {
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut salted);
    let client_key = hmac_sha256(&salted, &[b"Client Key"]);
    (Sha256::digest(client_key).into(), hmac_sha256(&salted, &[b"Server Key"]))
}

/// HMAC-SHA-256 with a 32-byte key over the concatenation of `parts`. The key is shorter than
/// SHA-256's 64-byte block, so HMAC pads it with zeros (RFC 2104 section 2); handing it over
/// padded makes the keying infallible.
pub(crate) fn hmac_sha256(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&block.into());
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// A Base64 field of exactly 32 bytes.
fn decode_key(text: &str, what: &str) -> Result<[u8; 32], String> {
    let bytes = STANDARD.decode(text).map_err(|e| format!("{what} is not Base64: {e}"))?;
    bytes.try_into().map_err(|_| format!("{what} must be 32 bytes"))
}

/// Parses the text after `SCRAM-SHA-256$`: `ITERATIONS:SALT$STOREDKEY:SERVERKEY`.
fn parse_scram(rest: &str) -> Result<ScramKeys, String> {
    let shape = || "a SCRAM-SHA-256 entry is SCRAM-SHA-256$iterations:salt$storedkey:serverkey".to_owned();
    let (parameters, keys) = rest.split_once('$').ok_or_else(shape)?;
    let (iterations, salt) = parameters.split_once(':').ok_or_else(shape)?;
    let (stored_key, server_key) = keys.split_once(':').ok_or_else(shape)?;
    let iterations = parse_iterations(iterations)?;
    let salt = STANDARD.decode(salt).map_err(|e| format!("the salt is not Base64: {e}"))?;
    if salt.is_empty() {
        return Err("the salt may not be empty".to_owned());
    }
    Ok(ScramKeys {
        iterations,
        salt,
        stored_key: decode_key(stored_key, "the StoredKey")?,
        server_key: decode_key(server_key, "the ServerKey")?,
    })
}

/// An iteration count from 1 to `MAX_ITERATIONS`.
fn parse_iterations(text: &str) -> Result<u32, String> {
    let iterations: u32 = text.parse().map_err(|_| format!("{text:?} is not an iteration count"))?;
    if iterations == 0 || iterations > MAX_ITERATIONS {
        return Err(format!("{iterations} iterations; 1 to {MAX_ITERATIONS} are accepted"));
    }
    Ok(iterations)
}

/// Iterations of a new `$7$` entry: `mosquitto_passwd`'s own, so that a file written by either
/// tool is read by both and costs a login the same.
pub const NEW_ITERATIONS: u32 = 101;

/// A new `$7$` hash of `password` (PBKDF2-HMAC-SHA512, a random 12-byte salt, 64 bytes), as
/// `mosquitto_passwd` writes one.
pub fn hash_password(password: &[u8]) -> Result<String, String> {
    let mut salt = [0u8; 12];
    getrandom::fill(&mut salt).map_err(|e| format!("no random salt: {e}"))?;
    let mut derived = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<Sha512>(password, &salt, NEW_ITERATIONS, &mut derived);
    Ok(format!("$7${NEW_ITERATIONS}${}${}", STANDARD.encode(salt), STANDARD.encode(derived)))
}

/// A new SCRAM-SHA-256 entry for `password` (RFC 5803's layout, `SCRAM_ITERATIONS`
/// iterations, a random 16-byte salt), which serves the SCRAM exchange and plain CONNECT alike.
pub fn scram_entry(password: &[u8]) -> Result<String, String> {
    let mut salt = vec![0u8; SCRAM_SALT_BYTES];
    getrandom::fill(&mut salt).map_err(|e| format!("no random salt: {e}"))?;
    Ok(ScramKeys::derive(password, salt, SCRAM_ITERATIONS).entry())
}

/// Whether the text after `user:` is already a hash this module reads.
pub fn is_hash(text: &str) -> bool {
    Hash::parse(text).is_ok()
}

/// The users of a password file.
#[derive(Debug, Clone, Default)]
pub struct PasswordFile {
    users: HashMap<String, Hash>,
}

/// A password file that cannot be used, with the line at fault.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct PasswordFileError {
    /// The file.
    pub path: String,
    /// What is wrong, with its line number.
    pub problem: String,
}

impl PasswordFile {
    /// Reads and checks the whole file. An unreadable file, a malformed line and a file with no
    /// user at all are errors: a file that lets nobody in is a mistake, not a configuration.
    pub fn load(path: &Path) -> Result<PasswordFile, PasswordFileError> {
        let fail = |problem: String| PasswordFileError { path: path.display().to_string(), problem };
        let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
        let file = PasswordFile::parse(&text).map_err(fail)?;
        if file.users.is_empty() {
            return Err(fail("it has no user".to_owned()));
        }
        Ok(file)
    }

    /// Parses the text of a password file.
    pub fn parse(text: &str) -> Result<PasswordFile, String> {
        let mut users = HashMap::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(format!("line {}: not username:hash", number + 1));
            };
            let hash = Hash::parse(hash).map_err(|e| format!("line {}, user {user:?}: {e}", number + 1))?;
            users.insert(user.to_owned(), hash);
        }
        Ok(PasswordFile { users })
    }

    /// Whether `username` exists and `password` is its password.
    pub fn verify(&self, username: &str, password: &[u8]) -> bool {
        self.users.get(username).is_some_and(|hash| hash.verify(password))
    }

    /// Whether the file has an entry for `username`.
    pub fn contains(&self, username: &str) -> bool {
        self.users.contains_key(username)
    }

    /// The SCRAM-SHA-256 credentials of `username`; `None` for a user the file lacks and for a
    /// `$7$` or `$6$` entry, which cannot serve a SCRAM exchange.
    pub(crate) fn scram_keys(&self, username: &str) -> Option<&ScramKeys> {
        match self.users.get(username) {
            Some(Hash::Scram(keys)) => Some(keys),
            _ => None,
        }
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when no user is defined.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by `mosquitto_passwd -b` (Mosquitto 2.0.11) for alice / secret.
    const PBKDF2: &str = "alice:$7$101$5duBLFV+Id+u99M9$F5b8rr06h80+doCG3w3/FSw5j8QJ4QxVnC2jhVE9DGk7Qa1ZvrKaDRvX000BkKAqNabW0W+M+r8hr4Ac0uy0QA==";

    #[test]
    fn a_mosquitto_passwd_entry_verifies_its_password_only() {
        let file = PasswordFile::parse(PBKDF2).unwrap();
        assert!(file.verify("alice", b"secret"));
        assert!(!file.verify("alice", b"\0secret"));
        assert!(!file.verify("alice", b"Secret"));
        assert!(!file.verify("bob", b"secret"));
    }

    #[test]
    fn a_new_hash_verifies_and_has_mosquitto_passwd_s_shape() {
        let hash = hash_password(b"pw").unwrap();
        assert!(hash.starts_with("$7$101$"), "{hash}");
        let file = PasswordFile::parse(&format!("u:{hash}")).unwrap();
        assert!(file.verify("u", b"pw"));
        assert!(!file.verify("u", b"pw2"));
        assert_ne!(hash, hash_password(b"pw").unwrap(), "salted");
    }

    #[test]
    fn a_new_scram_entry_verifies_and_has_rfc_5803_s_shape() {
        let entry = scram_entry(b"pw").unwrap();
        let rest = entry.strip_prefix("SCRAM-SHA-256$4096:").unwrap();
        let (salt, keys) = rest.split_once('$').unwrap();
        assert_eq!(STANDARD.decode(salt).unwrap().len(), 16);
        let (stored, server) = keys.split_once(':').unwrap();
        assert_eq!(
            (STANDARD.decode(stored).unwrap().len(), STANDARD.decode(server).unwrap().len()),
            (32, 32)
        );
        let file = PasswordFile::parse(&format!("u:{entry}")).unwrap();
        assert!(file.verify("u", b"pw") && !file.verify("u", b"pw2"));
        assert!(is_hash(&entry));
        assert_ne!(entry, scram_entry(b"pw").unwrap(), "salted");
    }

    #[test]
    fn malformed_scram_entries_are_named() {
        let key = STANDARD.encode([1u8; 32]);
        for text in [
            "a:SCRAM-SHA-256$".to_owned(),
            format!("a:SCRAM-SHA-256$4096$c2FsdA==${key}:{key}"),
            format!("a:SCRAM-SHA-256$4096:c2FsdA==${key}"),
            format!("a:SCRAM-SHA-256$0:c2FsdA==${key}:{key}"),
            format!("a:SCRAM-SHA-256$1000001:c2FsdA==${key}:{key}"),
            format!("a:SCRAM-SHA-256$4096:${key}:{key}"),
            format!("a:SCRAM-SHA-256$4096:!!${key}:{key}"),
            format!("a:SCRAM-SHA-256$4096:c2FsdA==$AAAA:{key}"),
            format!("a:SCRAM-SHA-256$4096:c2FsdA==${key}:AAAA"),
            format!("a:SCRAM-SHA-1$4096:c2FsdA==${key}:{key}"),
        ] {
            let error = PasswordFile::parse(&text).unwrap_err();
            assert!(error.contains("line 1"), "{text}: {error}");
        }
        let file = PasswordFile::parse(&format!("a:SCRAM-SHA-256$1:c2FsdA==${key}:{key}")).unwrap();
        assert!(file.scram_keys("a").is_some(), "fewer iterations than written are still read");
    }

    #[test]
    fn malformed_lines_are_named() {
        for text in [
            "alice",
            "alice:plain",
            "alice:$7$x$aa$bb",
            "alice:$7$0$aa$bb",
            "alice:$6$a$bb",
            "a:$7$101$!!$bb",
        ] {
            let error = PasswordFile::parse(text).unwrap_err();
            assert!(error.contains("line 1"), "{text}: {error}");
        }
        assert!(PasswordFile::parse("# comment\n\n").unwrap().is_empty());
    }
}
