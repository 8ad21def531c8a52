//! `iothub passwd`: manages a password file as `mosquitto_passwd` does, and writes the same
//! format (new entries `$7$`, PBKDF2-SHA512 with `mosquitto_passwd`'s 101 iterations), so that
//! IoTHub and Mosquitto read each other's files; with `--scram` it writes SCRAM-SHA-256 entries
//! instead (RFC 5803's layout, 4096 iterations, a 16-byte random salt), which serve the
//! SCRAM-SHA-256 enhanced authentication method as well as plain passwords, and which only
//! IoTHub reads.
//!
//! - `iothub passwd [-c] [--scram] FILE USER` asks for the password twice, without echo;
//! - `iothub passwd [-c] [--scram] -b FILE USER PASSWORD` takes it from the command line;
//! - `iothub passwd -D FILE USER` deletes a user;
//! - `iothub passwd [--scram] -U FILE` hashes every plaintext `user:password` line of a file in
//!   place (entries already hashed stay as they are: a `$7$` entry cannot become a SCRAM one
//!   without its password).
//!
//! `-c` creates (or overwrites) the file. The file is rewritten whole and renamed into place,
//! so a crash leaves the old file or the new one, never half of one.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::password::{hash_password, is_hash, scram_entry};

/// The kind of entry new passwords are written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EntryFormat {
    /// `$7$`: PBKDF2-HMAC-SHA512, as `mosquitto_passwd` writes.
    #[default]
    Mosquitto,
    /// `SCRAM-SHA-256$`: RFC 5803's SCRAM credentials (`--scram`).
    ScramSha256,
}

impl EntryFormat {
    /// The text after `user:` for `password`.
    fn entry(self, password: &[u8]) -> Result<String, String> {
        match self {
            EntryFormat::Mosquitto => hash_password(password),
            EntryFormat::ScramSha256 => scram_entry(password),
        }
    }
}

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
        /// The kind of entry to write.
        format: EntryFormat,
    },
    /// Remove `user`.
    Delete {
        /// The username.
        user: String,
    },
    /// Hash every plaintext password.
    Upgrade {
        /// The kind of entry to write.
        format: EntryFormat,
    },
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
        PasswdAction::Set { user, password, format, .. } => {
            if user.contains(':') || user.is_empty() || user.chars().any(char::is_control) {
                return Err(format!(
                    "{user:?} is not a username: it may not be empty or contain ':' or a control character"
                ));
            }
            let entry = format!("{user}:{}", format.entry(password)?);
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
        PasswdAction::Upgrade { format } => {
            let mut upgraded = 0;
            for line in &mut lines {
                let Some((user, rest)) = line.split_once(':') else { continue };
                if line.trim_start().starts_with('#') || is_hash(rest) {
                    continue;
                }
                *line = format!("{user}:{}", format.entry(rest.as_bytes())?);
                upgraded += 1;
            }
            format!("{upgraded} password(s) hashed in {shown}")
        }
    };
    let mut text = lines.join("\n");
    text.push('\n');
    let temporary = path.with_extension("tmp-iothub-passwd");
    // A file that exists keeps its permissions; a new one gets the umask's, as
    // mosquitto_passwd's does (a broker that runs as another user must be able to read it).
    let kept = std::fs::metadata(path)
        .ok()
        .map(|m| std::fs::Permissions::from_mode(m.permissions().mode() & 0o7777));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(|e| format!("cannot write {}: {e}", temporary.display()))?;
    let written = file.write_all(text.as_bytes()).and_then(|()| file.sync_all());
    let mode = match kept {
        Some(permissions) => std::fs::set_permissions(&temporary, permissions),
        None => std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o666 & !umask())),
    };
    written.and(mode).map_err(|e| format!("cannot write {}: {e}", temporary.display()))?;
    std::fs::rename(&temporary, path).map_err(|e| format!("cannot replace {shown}: {e}"))?;
    Ok(message)
}

/// The process's umask, read from /proc (setting it to learn it would race other threads);
/// 0o022 when it cannot be read.
fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Umask:"))?.to_owned();
            u32::from_str_radix(line.trim_start_matches("Umask:").trim(), 8).ok()
        })
        .unwrap_or(0o022)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;

    use super::*;
    use crate::auth::PasswordFile;

    /// A fresh directory for one test's file.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("iothub-passwd-tool-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("passwd")
    }

    fn set(user: &str, password: &[u8], create: bool, format: EntryFormat) -> PasswdAction {
        PasswdAction::Set { user: user.to_owned(), password: password.to_vec(), create, format }
    }

    #[test]
    fn scram_writes_scram_sha_256_entries_that_verify() {
        let path = scratch("scram-set");
        run(&path, &set("alice", b"secret", true, EntryFormat::ScramSha256)).unwrap();
        run(&path, &set("bob", b"hunter2", false, EntryFormat::Mosquitto)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let alice = text.lines().find_map(|l| l.strip_prefix("alice:")).unwrap();
        assert!(alice.starts_with("SCRAM-SHA-256$4096:"), "{alice}");
        let (salt, _) = alice["SCRAM-SHA-256$4096:".len()..].split_once('$').unwrap();
        assert_eq!(STANDARD.decode(salt).unwrap().len(), 16);
        assert!(text.lines().any(|l| l.starts_with("bob:$7$101$")), "{text}");
        let file = PasswordFile::load(&path).unwrap();
        assert!(file.verify("alice", b"secret") && !file.verify("alice", b"Secret"));
        assert!(file.verify("bob", b"hunter2"));
    }

    #[test]
    fn scram_replaces_an_existing_user_s_entry() {
        let path = scratch("scram-replace");
        run(&path, &set("alice", b"old", true, EntryFormat::Mosquitto)).unwrap();
        run(&path, &set("alice", b"new", false, EntryFormat::ScramSha256)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("alice:SCRAM-SHA-256$4096:"), "{text}");
        let file = PasswordFile::load(&path).unwrap();
        assert_eq!(file.len(), 1);
        assert!(file.verify("alice", b"new") && !file.verify("alice", b"old"));
    }

    #[test]
    fn scram_upgrade_hashes_plaintext_lines_and_keeps_hashed_ones() {
        let path = scratch("scram-upgrade");
        run(&path, &set("kept", b"pw", true, EntryFormat::Mosquitto)).unwrap();
        let kept = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("{kept}# a comment\nplain:text\n")).unwrap();
        let message = run(&path, &PasswdAction::Upgrade { format: EntryFormat::ScramSha256 }).unwrap();
        assert!(message.starts_with("1 password(s)"), "{message}");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(&kept), "the $7$ line stays: {text}");
        assert!(text.contains("# a comment\nplain:SCRAM-SHA-256$4096:"), "{text}");
        let again = run(&path, &PasswdAction::Upgrade { format: EntryFormat::ScramSha256 }).unwrap();
        assert!(again.starts_with("0 password(s)"), "a SCRAM entry is a hash already: {again}");
        let file = PasswordFile::load(&path).unwrap();
        assert!(file.verify("plain", b"text") && file.verify("kept", b"pw"));
    }

    #[test]
    fn delete_removes_a_scram_user() {
        let path = scratch("scram-delete");
        run(&path, &set("a", b"1", true, EntryFormat::ScramSha256)).unwrap();
        run(&path, &set("b", b"2", false, EntryFormat::ScramSha256)).unwrap();
        run(&path, &PasswdAction::Delete { user: "a".to_owned() }).unwrap();
        let file = PasswordFile::load(&path).unwrap();
        assert_eq!(file.len(), 1);
        assert!(!file.verify("a", b"1") && file.verify("b", b"2"));
    }
}
