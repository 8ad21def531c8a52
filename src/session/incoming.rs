//! Inbound QoS 2 packet identifiers: received, acknowledged with PUBREC, and not yet released by
//! the client's PUBREL.
//!
//! They are part of the session [MQTT-4.3.3-2], but the server's Receive Maximum counts only
//! those of the current network connection: the client's send quota starts again at Receive
//! Maximum on every connection (4.9), while the PUBRELs it owes for the earlier ones are not
//! PUBLISH packets and count against nothing.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

/// The identifiers awaiting PUBREL, each marked with whether an earlier connection received it.
#[derive(Debug, Default)]
pub(super) struct AwaitingPubrel {
    /// Identifier, and true when it came on an earlier network connection.
    ids: HashMap<u16, bool>,
    /// How many of `ids` came on an earlier network connection.
    inherited: usize,
}

impl AwaitingPubrel {
    /// Whether `id` awaits PUBREL.
    pub(super) fn contains(&self, id: u16) -> bool {
        self.ids.contains_key(&id)
    }

    /// Records `id`, received on the current connection; returns true if it was not awaiting
    /// PUBREL already.
    pub(super) fn insert(&mut self, id: u16) -> bool {
        match self.ids.entry(id) {
            Entry::Occupied(_) => false,
            Entry::Vacant(slot) => {
                slot.insert(false);
                true
            }
        }
    }

    /// Releases `id`; returns true if it awaited PUBREL.
    pub(super) fn remove(&mut self, id: u16) -> bool {
        match self.ids.remove(&id) {
            Some(inherited) => {
                self.inherited -= usize::from(inherited);
                true
            }
            None => false,
        }
    }

    /// Identifiers received on the current connection and not yet released: what the server's
    /// Receive Maximum bounds [MQTT-3.3.4-7].
    pub(super) fn on_this_connection(&self) -> usize {
        self.ids.len() - self.inherited
    }

    /// A new network connection begins: every identifier still awaiting PUBREL came on an
    /// earlier one.
    pub(super) fn inherit_all(&mut self) {
        for inherited in self.ids.values_mut() {
            *inherited = true;
        }
        self.inherited = self.ids.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_identifiers_of_the_current_connection_count() {
        let mut awaiting = AwaitingPubrel::default();
        assert!(awaiting.insert(1));
        assert!(awaiting.insert(2));
        assert!(!awaiting.insert(2), "a re-sent PUBLISH is no new identifier");
        assert_eq!(awaiting.on_this_connection(), 2);
        awaiting.inherit_all();
        assert_eq!(awaiting.on_this_connection(), 0);
        assert!(awaiting.contains(1) && awaiting.contains(2));
        assert!(awaiting.insert(3));
        assert_eq!(awaiting.on_this_connection(), 1);
        assert!(awaiting.remove(1), "an inherited identifier is released by PUBREL");
        assert_eq!(awaiting.on_this_connection(), 1);
        assert!(awaiting.remove(3));
        assert!(!awaiting.remove(3), "released once");
        assert_eq!(awaiting.on_this_connection(), 0);
        assert!(awaiting.remove(2));
        assert_eq!(awaiting.on_this_connection(), 0);
    }
}
