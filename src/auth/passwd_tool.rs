//! `iothub passwd`: manages a password file as `mosquitto_passwd` does, and writes the same
//! format (new entries `$7$`, PBKDF2-SHA512 with `mosquitto_passwd`'s 101 iterations), so that
//! IoTHub and Mosquitto read each other's files.
//!
//! - `iothub passwd [-c] FILE USER` asks for the password twice, without echo;
//! - `iothub passwd [-c] -b FILE USER PASSWORD` takes it from the command line;
//! - `iothub passwd -D FILE USER` deletes a user;
//! - `iothub passwd -U FILE` hashes every plaintext `user:password` line of a file in place.
//!
//! `-c` creates (or overwrites) the file. The file is rewritten whole and renamed into place,
//! so a crash leaves the old file or the new one, never half of one.

use std::path::Path;

use super::password::{hash_password, is_hash};

/// What to do to the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswdAction {
    /// Add or replace `user` with this password.
    Set {
        /// The username.
        user: String,
        /// The password, any bytes.
        password: Vec<u8>,
        /// Start a new file instead of updating one.
        create: bool,
    },
    /// Remove `user`.
    Delete {
        /// The username.
        user: String,
    },
    /// Hash every plaintext password.
    Upgrade,
}

/// Applies `action` to the file at `path`; returns what to tell the person.
pub fn run(path: &Path, action: &PasswdAction) -> Result<String, String> {
    let shown = path.display();
    let existing = match action {
        PasswdAction::Set { create: true, .. } => String::new(),
        _ => std::fs::read_to_string(path).map_err(|e| format!("cannot read {shown}: {e}"))?,
    };
    let mut lines: Vec<String> = existing.lines().map(str::to_owned).collect();
    let user_of = |line: &str| line.split_once(':').map(|(u, _)| u.to_owned());
    let message = match action {
        PasswdAction::Set { user, password, .. } => {
            if user.contains(':') || user.is_empty() {
                return Err(format!("{user:?} is not a username: it may not be empty or contain ':'"));
            }
            let entry = format!("{user}:{}", hash_password(password)?);
            match lines.iter_mut().find(|l| user_of(l).as_deref() == Some(user.as_str())) {
                Some(line) => *line = entry,
                None => lines.push(entry),
            }
            format!("{user}: password set in {shown}")
        }
        PasswdAction::Delete { user } => {
            let before = lines.len();
            lines.retain(|l| user_of(l).as_deref() != Some(user.as_str()));
            if lines.len() == before {
                return Err(format!("{user} is not in {shown}"));
            }
            format!("{user}: deleted from {shown}")
        }
        PasswdAction::Upgrade => {
            let mut upgraded = 0;
            for line in &mut lines {
                let Some((user, rest)) = line.split_once(':') else { continue };
                if line.trim_start().starts_with('#') || is_hash(rest) {
                    continue;
                }
                *line = format!("{user}:{}", hash_password(rest.as_bytes())?);
                upgraded += 1;
            }
            format!("{upgraded} password(s) hashed in {shown}")
        }
    };
    let mut text = lines.join("\n");
    text.push('\n');
    let temporary = path.with_extension("tmp-iothub-passwd");
    std::fs::write(&temporary, text).map_err(|e| format!("cannot write {}: {e}", temporary.display()))?;
    std::fs::rename(&temporary, path).map_err(|e| format!("cannot replace {shown}: {e}"))?;
    Ok(message)
}
