//! Topic name and topic filter rules (section 4.7).
//!
//! These check syntax only. Matching filters against topics, and the `$` rule of
//! [MQTT-4.7.2-1], belong to the broker's router.

use crate::error::DecodeError;
use crate::rule::Rule;

/// Checks a topic name as carried by PUBLISH or a will: at least one character
/// [MQTT-4.7.3-1] and no wildcard characters [MQTT-3.3.2-2].
pub fn validate_topic_name(topic: &str) -> Result<(), DecodeError> {
    if topic.is_empty() {
        return Err(DecodeError::Violation(Rule::EmptyTopicName));
    }
    if topic.bytes().any(|b| b == b'+' || b == b'#') {
        return Err(DecodeError::Violation(Rule::Mqtt3_3_2_2));
    }
    Ok(())
}

/// Checks a topic filter as carried by SUBSCRIBE or UNSUBSCRIBE: at least one character
/// [MQTT-4.7.3-1], `#` only as the whole last level [MQTT-4.7.1-2], `+` only as a whole level
/// [MQTT-4.7.1-3].
pub fn validate_topic_filter(filter: &str) -> Result<(), DecodeError> {
    if filter.is_empty() {
        return Err(DecodeError::Violation(Rule::EmptyTopicFilter));
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let is_last = levels.peek().is_none();
        if level.contains('#') && (level != "#" || !is_last) {
            return Err(DecodeError::Violation(Rule::Mqtt4_7_1_2));
        }
        if level.contains('+') && level != "+" {
            return Err(DecodeError::Violation(Rule::Mqtt4_7_1_3));
        }
    }
    Ok(())
}

/// Checks a topic filter of a SUBSCRIBE or UNSUBSCRIBE as [`validate_topic_filter`] does, except
/// that of a shared subscription filter `$share/{ShareName}/{filter}` (5.0 section 4.8.2) only
/// `{filter}` is held to the rules of section 4.7. A ShareName that breaks [MQTT-4.8.2-1] or
/// [MQTT-4.8.2-2] (empty, holding "+" or "#", or not followed by "/" and a filter) leaves the
/// packet well formed: the server refuses that one filter in its SUBACK (0x8F Topic Filter
/// invalid, as for every other malformed shared filter) and keeps the connection.
pub fn validate_subscription_filter(filter: &str) -> Result<(), DecodeError> {
    let Some(rest) = filter.strip_prefix("$share/") else {
        return validate_topic_filter(filter);
    };
    match rest.split_once('/') {
        Some((_, inner)) if !inner.is_empty() => validate_topic_filter(inner),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broken(rule: Rule) -> Result<(), DecodeError> {
        Err(DecodeError::Violation(rule))
    }

    #[test]
    fn topic_names() {
        for ok in ["sport/tennis/player1", "/", "$SYS/x", "a//b"] {
            assert_eq!(validate_topic_name(ok), Ok(()), "{ok}");
        }
        assert_eq!(validate_topic_name(""), broken(Rule::EmptyTopicName));
        for bad in ["a/+", "a/#", "a+b", "#"] {
            assert_eq!(validate_topic_name(bad), broken(Rule::Mqtt3_3_2_2), "{bad}");
        }
    }

    #[test]
    fn topic_filters() {
        for ok in ["#", "+", "sport/#", "sport/+/player1", "+/+", "/+", "+/tennis/#", "a//b", "$SYS/#"] {
            assert_eq!(validate_topic_filter(ok), Ok(()), "{ok}");
        }
        assert_eq!(validate_topic_filter(""), broken(Rule::EmptyTopicFilter));
        for bad in ["sport/tennis#", "sport/#/ranking", "#/a", "a/b#", "##"] {
            assert_eq!(validate_topic_filter(bad), broken(Rule::Mqtt4_7_1_2), "{bad}");
        }
        for bad in ["sport+", "sp+rt/x", "a/+b"] {
            assert_eq!(validate_topic_filter(bad), broken(Rule::Mqtt4_7_1_3), "{bad}");
        }
    }

    #[test]
    fn shared_subscription_filters() {
        // The ShareName is the server's to refuse (0x8F); the filter after it follows 4.7.
        for ok in
            ["$share/g/a/+", "$share/g/#", "$share/g+/x", "$share/#/x", "$share//x", "$share/g", "$share/g/"]
        {
            assert_eq!(validate_subscription_filter(ok), Ok(()), "{ok}");
        }
        assert_eq!(validate_subscription_filter("$share/g/a+"), broken(Rule::Mqtt4_7_1_3));
        assert_eq!(validate_subscription_filter("$share/g/#/a"), broken(Rule::Mqtt4_7_1_2));
        // Anything else is an ordinary filter.
        assert_eq!(validate_subscription_filter("a+/x"), broken(Rule::Mqtt4_7_1_3));
        assert_eq!(validate_subscription_filter("$shared/g+/x"), broken(Rule::Mqtt4_7_1_3));
        assert_eq!(validate_subscription_filter(""), broken(Rule::EmptyTopicFilter));
    }
}
