//! Topic aliases (5.0 section 3.3.2.3.4): numbers that stand for topic names on one network
//! connection, in each direction. They never outlive the connection [MQTT-3.3.2-7]: the
//! session makes new tables at every `attach`.

use std::collections::HashMap;
use std::num::NonZeroU16;

use bytestring::ByteString;
use iothub_protocol::Rule;

/// Most aliases IoTHub keeps for one client, whatever larger Topic Alias Maximum the client
/// allows: each holds a copy of its topic.
pub(crate) const MAX_OUTBOUND_ALIASES: u16 = 64;

/// The aliases a client has set for its PUBLISHes to the server.
#[derive(Debug, Default)]
pub(crate) struct InboundAliases {
    /// The server's Topic Alias Maximum; 0 means the client may send none.
    max: u16,
    /// Topic of each alias, by alias - 1; grown as aliases are set.
    topics: Vec<Option<ByteString>>,
}

impl InboundAliases {
    /// A table for a connection whose CONNACK allowed aliases up to `max`.
    pub(crate) fn new(max: u16) -> InboundAliases {
        InboundAliases { max, topics: Vec::new() }
    }

    /// The topic name of a PUBLISH that carries `topic` and `alias`: a non-empty topic with an
    /// alias sets (or replaces) the alias, an empty one uses it. An alias above the maximum is a
    /// Topic Alias invalid error [MQTT-3.3.2-9]; an empty topic with an alias that was never set
    /// is a Protocol Error (3.3.2.3.4).
    /// The topic a PUBLISH with `topic` and `alias` would resolve to, without changing the
    /// table; `None` when it would be an error.
    pub(crate) fn peek(&self, topic: &ByteString, alias: Option<NonZeroU16>) -> Option<ByteString> {
        match alias {
            Some(alias) if topic.is_empty() => {
                self.topics.get(usize::from(alias.get()).checked_sub(1)?).and_then(Clone::clone)
            }
            _ => Some(topic.clone()),
        }
    }

    pub(crate) fn resolve(
        &mut self,
        topic: ByteString,
        alias: Option<NonZeroU16>,
    ) -> Result<ByteString, Rule> {
        let Some(alias) = alias else {
            return Ok(topic);
        };
        if alias.get() > self.max {
            return Err(Rule::V5_3_3_2_9);
        }
        let index = usize::from(alias.get() - 1);
        if topic.is_empty() {
            return self.topics.get(index).and_then(Clone::clone).ok_or(Rule::TopicAliasUnknown);
        }
        if self.topics.len() <= index {
            self.topics.resize(index + 1, None);
        }
        // A copy of its own, so the table does not pin the packet the topic came in.
        self.topics[index] = Some(ByteString::from(&*topic));
        Ok(topic)
    }
}

/// The aliases IoTHub has set for its PUBLISHes to a client: topics get aliases as they are
/// sent, and once every alias is taken, a topic not sent since the clock hand last passed
/// gives its alias up (second-chance replacement), so the topics sent most keep theirs.
#[derive(Debug, Default)]
pub(crate) struct OutboundAliases {
    /// Aliases in use: at most the client's Topic Alias Maximum and `MAX_OUTBOUND_ALIASES`.
    max: u16,
    /// Alias of each topic.
    by_topic: HashMap<ByteString, u16>,
    /// Topic of each alias, by alias - 1, with its "sent since the hand passed" bit.
    slots: Vec<(ByteString, bool)>,
    /// The clock hand: the next slot to consider for replacement.
    hand: usize,
}

impl OutboundAliases {
    /// A table for a client whose CONNECT allowed aliases up to `client_max`.
    pub(crate) fn new(client_max: u16) -> OutboundAliases {
        OutboundAliases { max: client_max.min(MAX_OUTBOUND_ALIASES), ..OutboundAliases::default() }
    }

    /// The alias to send `topic` with, and whether the topic name itself must be sent too (the
    /// alias is new or now stands for this topic). `None` when the client takes no aliases.
    pub(crate) fn assign(&mut self, topic: &str) -> Option<(NonZeroU16, bool)> {
        if self.max == 0 || topic.is_empty() {
            return None;
        }
        if let Some(&alias) = self.by_topic.get(topic) {
            self.slots[usize::from(alias - 1)].1 = true;
            return NonZeroU16::new(alias).map(|alias| (alias, false));
        }
        let topic = ByteString::from(topic);
        if self.slots.len() < usize::from(self.max) {
            self.slots.push((topic.clone(), true));
            let alias = u16::try_from(self.slots.len()).ok()?;
            self.by_topic.insert(topic, alias);
            return NonZeroU16::new(alias).map(|alias| (alias, true));
        }
        // Every slot is visited at most twice: the hand clears the bits it passes.
        loop {
            let at = self.hand;
            self.hand = (self.hand + 1) % self.slots.len();
            let (old, recent) = &mut self.slots[at];
            if *recent {
                *recent = false;
                continue;
            }
            self.by_topic.remove(old);
            *old = topic.clone();
            self.slots[at].1 = true;
            let alias = u16::try_from(at + 1).ok()?;
            self.by_topic.insert(topic, alias);
            return NonZeroU16::new(alias).map(|alias| (alias, true));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alias(n: u16) -> Option<NonZeroU16> {
        NonZeroU16::new(n)
    }

    #[test]
    fn mqtt_3_3_2_9_inbound_aliases_are_bounded_and_must_be_set_before_use() {
        let mut table = InboundAliases::new(2);
        assert_eq!(table.resolve("a/b".into(), alias(1)), Ok("a/b".into()));
        assert_eq!(table.resolve("".into(), alias(1)), Ok("a/b".into()));
        assert_eq!(table.resolve("".into(), alias(2)), Err(Rule::TopicAliasUnknown));
        assert_eq!(table.resolve("x".into(), alias(3)), Err(Rule::V5_3_3_2_9));
        // A new topic replaces the alias's mapping.
        assert_eq!(table.resolve("c".into(), alias(1)), Ok("c".into()));
        assert_eq!(table.resolve("".into(), alias(1)), Ok("c".into()));
        assert_eq!(InboundAliases::new(0).resolve("t".into(), alias(1)), Err(Rule::V5_3_3_2_9));
    }

    #[test]
    fn mqtt_3_3_2_11_outbound_aliases_stay_within_the_clients_maximum() {
        let mut table = OutboundAliases::new(2);
        assert_eq!(table.assign("a"), Some((NonZeroU16::MIN, true)));
        assert_eq!(table.assign("a"), Some((NonZeroU16::MIN, false)));
        assert_eq!(table.assign("b").map(|(a, s)| (a.get(), s)), Some((2, true)));
        // Full: the hand clears both bits, then replaces alias 1.
        assert_eq!(table.assign("c").map(|(a, s)| (a.get(), s)), Some((1, true)));
        assert_eq!(table.assign("c").map(|(a, s)| (a.get(), s)), Some((1, false)));
        assert_eq!(table.assign("a").map(|(a, s)| (a.get(), s)), Some((2, true)));
        assert!(OutboundAliases::new(0).assign("a").is_none());
        let mut big = OutboundAliases::new(u16::MAX);
        for n in 0..1000 {
            let (alias, _) = big.assign(&format!("t/{n}")).unwrap_or((NonZeroU16::MIN, false));
            assert!(alias.get() <= MAX_OUTBOUND_ALIASES);
        }
    }
}
