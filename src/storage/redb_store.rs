//! The durable backend: one redb file, `iothub.redb`, in the configured directory. redb commits
//! are atomic and, with its default durability, synced to disk before `commit` returns; its
//! pages are checksummed, so a torn write is found, not read.
//!
//! Tables (keys are client identifiers, entry numbers, packet identifiers, message ids, topics):
//! `sessions`, `subscriptions` (client, filter), `entries` (client, entry number),
//! `incoming` (client, packet identifier), `messages` (message id), `retained` (topic to message
//! id) and `meta` (the layout version).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytestring::ByteString;
use redb::{Database, ReadableTable, TableDefinition};

use super::record::LAYOUT;
use super::{Backend, StorageError, StoredState, Write};

const SESSIONS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("sessions");
const SUBSCRIPTIONS: TableDefinition<'_, (&str, &str), &[u8]> = TableDefinition::new("subscriptions");
const ENTRIES: TableDefinition<'_, (&str, u64), &[u8]> = TableDefinition::new("entries");
const INCOMING: TableDefinition<'_, (&str, u16), ()> = TableDefinition::new("incoming");
const MESSAGES: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("messages");
const RETAINED: TableDefinition<'_, &str, u64> = TableDefinition::new("retained");
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");

/// The file name of the store in its directory.
pub(crate) const FILE_NAME: &str = "iothub.redb";

/// The redb backend.
#[derive(Debug)]
pub struct RedbBackend {
    path: PathBuf,
    /// `None` after an I/O failure: redb refuses every later operation on that handle, so the
    /// next commit reopens the file.
    db: Option<Database>,
}

fn io(error: impl std::fmt::Display) -> StorageError {
    StorageError::Io(error.to_string())
}

fn storage(error: redb::StorageError) -> StorageError {
    match error {
        redb::StorageError::Corrupted(why) => StorageError::Corrupt(why),
        redb::StorageError::Io(e) if is_damage(&e) => StorageError::Corrupt(e.to_string()),
        other => io(other),
    }
}

/// An I/O error that means the file's contents are wrong, not that the disk refused.
fn is_damage(error: &std::io::Error) -> bool {
    matches!(error.kind(), std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof)
}

/// Runs `f`, turning a panic inside redb (it asserts on some damaged files) into corruption:
/// a damaged store must be set aside, not crash the broker at every start.
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, StorageError>) -> Result<T, StorageError> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    result.unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(StorageError::Corrupt(format!("{what} failed on a damaged file: {why}")))
    })
}

fn database(error: redb::DatabaseError) -> StorageError {
    match error {
        redb::DatabaseError::Storage(error) => storage(error),
        redb::DatabaseError::UpgradeRequired(version) => {
            StorageError::Corrupt(format!("the file has redb format {version}, which this build cannot read"))
        }
        other => io(other),
    }
}

fn from_redb(error: impl Into<redb::Error>) -> StorageError {
    match error.into() {
        redb::Error::Corrupted(why) => StorageError::Corrupt(why),
        redb::Error::TableTypeMismatch { .. }
        | redb::Error::TableIsMultimap(_)
        | redb::Error::TableIsNotMultimap(_) => {
            StorageError::Corrupt("a table has the wrong type".to_owned())
        }
        other => io(other),
    }
}

impl RedbBackend {
    /// Opens (or creates) the store in `dir`, which is created if missing.
    pub fn open(dir: &Path) -> Result<RedbBackend, StorageError> {
        std::fs::create_dir_all(dir).map_err(|e| io(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join(FILE_NAME);
        // redb takes an empty file for a new store; the broker never leaves one, so it is a
        // store that lost its contents, and is set aside like any other damage.
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == 0) {
            return Err(StorageError::Corrupt("the store file is empty".to_owned()));
        }
        guarded("opening the store", || {
            let db = Database::create(&path).map_err(database)?;
            let backend = RedbBackend { path: path.clone(), db: Some(db) };
            backend.check_layout()?;
            Ok(backend)
        })
    }

    fn db(&mut self) -> Result<&Database, StorageError> {
        if self.db.is_none() {
            self.db = Some(Database::create(&self.path).map_err(database)?);
        }
        self.db.as_ref().ok_or_else(|| io("the store is not open"))
    }

    /// Writes the layout version into a new store, and refuses a store of another layout.
    fn check_layout(&self) -> Result<(), StorageError> {
        let db = self.db.as_ref().ok_or_else(|| io("the store is not open"))?;
        let txn = db.begin_write().map_err(from_redb)?;
        {
            let mut meta = txn.open_table(META).map_err(from_redb)?;
            let found = meta.get("layout").map_err(from_redb)?.map(|v| v.value());
            match found {
                None => {
                    meta.insert("layout", u64::from(LAYOUT)).map_err(from_redb)?;
                }
                Some(found) if found == u64::from(LAYOUT) => {}
                Some(found) => return Err(StorageError::Layout { found, expected: u64::from(LAYOUT) }),
            }
            // Every table exists from the start, so a reader never meets a missing one.
            txn.open_table(SESSIONS).map_err(from_redb)?;
            txn.open_table(SUBSCRIPTIONS).map_err(from_redb)?;
            txn.open_table(ENTRIES).map_err(from_redb)?;
            txn.open_table(INCOMING).map_err(from_redb)?;
            txn.open_table(MESSAGES).map_err(from_redb)?;
            txn.open_table(RETAINED).map_err(from_redb)?;
        }
        txn.commit().map_err(from_redb)
    }

    fn apply(db: &Database, writes: &[Write]) -> Result<(), StorageError> {
        let txn = db.begin_write().map_err(from_redb)?;
        {
            let mut sessions = txn.open_table(SESSIONS).map_err(from_redb)?;
            let mut subscriptions = txn.open_table(SUBSCRIPTIONS).map_err(from_redb)?;
            let mut entries = txn.open_table(ENTRIES).map_err(from_redb)?;
            let mut incoming = txn.open_table(INCOMING).map_err(from_redb)?;
            let mut messages = txn.open_table(MESSAGES).map_err(from_redb)?;
            let mut retained = txn.open_table(RETAINED).map_err(from_redb)?;
            for write in writes {
                match write {
                    Write::PutSession { client, record } => {
                        sessions.insert(&**client, record.as_slice()).map_err(from_redb)?;
                    }
                    Write::DeleteSession { client } => {
                        let client: &str = client;
                        sessions.remove(client).map_err(from_redb)?;
                        entries
                            .retain_in((client, 0)..=(client, u64::MAX), |_, _| false)
                            .map_err(from_redb)?;
                        incoming
                            .retain_in((client, 0)..=(client, u16::MAX), |_, _| false)
                            .map_err(from_redb)?;
                        let filters: Vec<String> = subscriptions
                            .range((client, "")..)
                            .map_err(from_redb)?
                            .map_while(|item| {
                                let (key, _) = item.ok()?;
                                let (c, f) = key.value();
                                (c == client).then(|| f.to_owned())
                            })
                            .collect();
                        for filter in &filters {
                            subscriptions.remove((client, filter.as_str())).map_err(from_redb)?;
                        }
                    }
                    Write::PutSubscription { client, filter, record } => {
                        subscriptions.insert((&**client, &**filter), record.as_slice()).map_err(from_redb)?;
                    }
                    Write::DeleteSubscription { client, filter } => {
                        subscriptions.remove((&**client, &**filter)).map_err(from_redb)?;
                    }
                    Write::PutEntry { client, seq, record } => {
                        entries.insert((&**client, *seq), record.as_slice()).map_err(from_redb)?;
                    }
                    Write::DeleteEntry { client, seq } => {
                        entries.remove((&**client, *seq)).map_err(from_redb)?;
                    }
                    Write::PutIncoming { client, packet_id } => {
                        incoming.insert((&**client, *packet_id), ()).map_err(from_redb)?;
                    }
                    Write::DeleteIncoming { client, packet_id } => {
                        incoming.remove((&**client, *packet_id)).map_err(from_redb)?;
                    }
                    Write::PutMessage { id, record } => {
                        messages.insert(*id, record.as_slice()).map_err(from_redb)?;
                    }
                    Write::DeleteMessage { id } => {
                        messages.remove(*id).map_err(from_redb)?;
                    }
                    Write::PutRetained { topic, message } => {
                        retained.insert(&**topic, *message).map_err(from_redb)?;
                    }
                    Write::DeleteRetained { topic } => {
                        retained.remove(&**topic).map_err(from_redb)?;
                    }
                }
            }
        }
        txn.commit().map_err(from_redb)
    }
}

impl Backend for RedbBackend {
    fn load(&mut self) -> Result<StoredState, StorageError> {
        guarded("reading the store", || self.load_unguarded())
    }

    fn commit(&mut self, writes: &[Write]) -> Result<(), StorageError> {
        let result = match self.db() {
            Ok(db) => {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| RedbBackend::apply(db, writes)))
                    .unwrap_or_else(|_| Err(io("the store's commit panicked")))
            }
            Err(error) => Err(error),
        };
        if result.is_err() {
            // redb refuses every operation on a handle after an I/O failure.
            self.db = None;
        }
        result
    }
}

impl RedbBackend {
    fn load_unguarded(&mut self) -> Result<StoredState, StorageError> {
        let db = self.db()?;
        let txn = db.begin_read().map_err(from_redb)?;
        let mut state = StoredState::default();
        for item in txn.open_table(SESSIONS).map_err(from_redb)?.iter().map_err(from_redb)? {
            let (key, value) = item.map_err(from_redb)?;
            state.sessions.push((Arc::from(key.value()), value.value().to_vec()));
        }
        for item in txn.open_table(SUBSCRIPTIONS).map_err(from_redb)?.iter().map_err(from_redb)? {
            let (key, value) = item.map_err(from_redb)?;
            let (client, filter) = key.value();
            state.subscriptions.push((Arc::from(client), ByteString::from(filter), value.value().to_vec()));
        }
        for item in txn.open_table(ENTRIES).map_err(from_redb)?.iter().map_err(from_redb)? {
            let (key, value) = item.map_err(from_redb)?;
            let (client, seq) = key.value();
            state.entries.push((Arc::from(client), seq, value.value().to_vec()));
        }
        for item in txn.open_table(INCOMING).map_err(from_redb)?.iter().map_err(from_redb)? {
            let (key, ()) = item.map(|(k, v)| (k, v.value())).map_err(from_redb)?;
            let (client, packet_id) = key.value();
            state.incoming.push((Arc::from(client), packet_id));
        }
        for item in txn.open_table(MESSAGES).map_err(from_redb)?.iter().map_err(from_redb)? {
            let (key, value) = item.map_err(from_redb)?;
            state.messages.push((key.value(), value.value().to_vec()));
        }
        for item in txn.open_table(RETAINED).map_err(from_redb)?.iter().map_err(from_redb)? {
            let (key, value) = item.map_err(from_redb)?;
            state.retained.push((ByteString::from(key.value()), value.value()));
        }
        Ok(state)
    }
}
