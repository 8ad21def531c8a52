//! Topic name and topic filter rules (section 4.7).
//!
//! These check syntax only. Matching filters against topics, and the `$` rule of
//! [MQTT-4.7.2-1], belong to the broker's router.

use crate::error::DecodeError;

/// Checks a topic name as carried by PUBLISH or a will: at least one character
/// [MQTT-4.7.3-1] and no wildcard characters [MQTT-3.3.2-2].
pub fn validate_topic_name(topic: &str) -> Result<(), DecodeError> {
    if topic.is_empty() {
        return Err(DecodeError::Malformed("[MQTT-4.7.3-1] topic name is empty"));
    }
    if topic.bytes().any(|b| b == b'+' || b == b'#') {
        return Err(DecodeError::Malformed("[MQTT-3.3.2-2] topic name contains a wildcard character"));
    }
    Ok(())
}

/// Checks a topic filter as carried by SUBSCRIBE or UNSUBSCRIBE: at least one character
/// [MQTT-4.7.3-1], `#` only as the whole last level [MQTT-4.7.1-2], `+` only as a whole level
/// [MQTT-4.7.1-3].
pub fn validate_topic_filter(filter: &str) -> Result<(), DecodeError> {
    if filter.is_empty() {
        return Err(DecodeError::Malformed("[MQTT-4.7.3-1] topic filter is empty"));
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let is_last = levels.peek().is_none();
        if level.contains('#') && (level != "#" || !is_last) {
            return Err(DecodeError::Malformed(
                "[MQTT-4.7.1-2] '#' must be the last level of a topic filter and stand alone",
            ));
        }
        if level.contains('+') && level != "+" {
            return Err(DecodeError::Malformed("[MQTT-4.7.1-3] '+' must occupy a whole topic level"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        assert!(validate_topic_name("sport/tennis/player1").is_ok());
        assert!(validate_topic_name("/").is_ok());
        assert!(validate_topic_name("$SYS/x").is_ok());
        assert!(validate_topic_name("").is_err(), "[MQTT-4.7.3-1]");
        assert!(validate_topic_name("a/+").is_err(), "[MQTT-3.3.2-2]");
        assert!(validate_topic_name("a/#").is_err(), "[MQTT-3.3.2-2]");
        assert!(validate_topic_name("a+b").is_err(), "[MQTT-3.3.2-2]");
    }

    #[test]
    fn topic_filters() {
        for ok in ["#", "+", "sport/#", "sport/+/player1", "+/+", "/+", "+/tennis/#", "a//b", "$SYS/#"] {
            assert!(validate_topic_filter(ok).is_ok(), "{ok}");
        }
        for bad in ["", "sport/tennis#", "sport/#/ranking", "sport+", "sp+rt/x", "#/a", "a/b#", "##"] {
            assert!(validate_topic_filter(bad).is_err(), "{bad}");
        }
    }
}
