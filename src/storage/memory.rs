//! A backend that keeps its tables in memory: the reference the durable backend is tested
//! against, and a way to run the writer and the recovery path without a disk. Clones share the
//! tables, so a test can drop a broker and load a new one from what the first one committed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use bytestring::ByteString;

use super::{Backend, StorageError, StoredState, Write};

/// The tables.
#[derive(Debug, Default)]
struct Tables {
    sessions: BTreeMap<Arc<str>, Vec<u8>>,
    subscriptions: BTreeMap<(Arc<str>, ByteString), Vec<u8>>,
    entries: BTreeMap<(Arc<str>, u64), Vec<u8>>,
    incoming: BTreeSet<(Arc<str>, u16)>,
    messages: BTreeMap<u64, Vec<u8>>,
    retained: BTreeMap<ByteString, u64>,
    commits: u64,
}

/// A backend in memory; clones share their tables.
#[derive(Debug, Default, Clone)]
pub struct MemoryBackend {
    tables: Arc<Mutex<Tables>>,
}

impl MemoryBackend {
    /// Commits so far.
    pub fn commits(&self) -> u64 {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner).commits
    }

    /// Stored messages, entries and sessions: what a test checks to see that nothing leaks.
    pub fn counts(&self) -> (usize, usize, usize) {
        let tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        (tables.messages.len(), tables.entries.len(), tables.sessions.len())
    }
}

impl Backend for MemoryBackend {
    fn load(&mut self) -> Result<StoredState, StorageError> {
        let tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(StoredState {
            sessions: tables.sessions.iter().map(|(k, v)| (Arc::clone(k), v.clone())).collect(),
            subscriptions: tables
                .subscriptions
                .iter()
                .map(|((c, f), v)| (Arc::clone(c), f.clone(), v.clone()))
                .collect(),
            entries: tables.entries.iter().map(|((c, s), v)| (Arc::clone(c), *s, v.clone())).collect(),
            incoming: tables.incoming.iter().map(|(c, p)| (Arc::clone(c), *p)).collect(),
            messages: tables.messages.iter().map(|(k, v)| (*k, v.clone())).collect(),
            retained: tables.retained.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        })
    }

    fn commit(&mut self, writes: &[Write]) -> Result<(), StorageError> {
        let mut tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        for write in writes {
            match write {
                Write::PutSession { client, record } => {
                    tables.sessions.insert(Arc::clone(client), record.clone());
                }
                Write::DeleteSession { client } => {
                    tables.sessions.remove(client);
                    tables.subscriptions.retain(|(c, _), _| c != client);
                    tables.entries.retain(|(c, _), _| c != client);
                    tables.incoming.retain(|(c, _)| c != client);
                }
                Write::PutSubscription { client, filter, record } => {
                    tables.subscriptions.insert((Arc::clone(client), filter.clone()), record.clone());
                }
                Write::DeleteSubscription { client, filter } => {
                    tables.subscriptions.remove(&(Arc::clone(client), filter.clone()));
                }
                Write::PutEntry { client, seq, record } => {
                    tables.entries.insert((Arc::clone(client), *seq), record.clone());
                }
                Write::DeleteEntry { client, seq } => {
                    tables.entries.remove(&(Arc::clone(client), *seq));
                }
                Write::PutIncoming { client, packet_id } => {
                    tables.incoming.insert((Arc::clone(client), *packet_id));
                }
                Write::DeleteIncoming { client, packet_id } => {
                    tables.incoming.remove(&(Arc::clone(client), *packet_id));
                }
                Write::PutMessage { id, record } => {
                    tables.messages.insert(*id, record.clone());
                }
                Write::DeleteMessage { id } => {
                    tables.messages.remove(id);
                }
                Write::PutRetained { topic, message } => {
                    tables.retained.insert(topic.clone(), *message);
                }
                Write::DeleteRetained { topic } => {
                    tables.retained.remove(topic);
                }
            }
        }
        tables.commits += 1;
        Ok(())
    }
}
