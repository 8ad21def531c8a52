//! Fuzz target: topic name and topic filter validation (section 4.7).
//!
//! `validate_topic_name` and `validate_topic_filter` must never panic, must accept exactly what an
//! oracle accepts that states the wildcard rules per character where the code states them per
//! level, and must report a rule the input really breaks. Arbitrary bytes become a string the
//! lossy way, so that no input is wasted; UTF-8 itself is the decoder's concern, not theirs.

#![no_main]

use iothub_protocol::{validate_topic_filter, validate_topic_name, DecodeError, Rule};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    check_name(&text);
    check_filter(&text);
    // A topic name is a topic filter without wildcards.
    if validate_topic_name(&text).is_ok() {
        assert_eq!(validate_topic_filter(&text), Ok(()), "{text:?} is a name but not a filter");
    }
});

/// A topic name is not empty [MQTT-4.7.3-1] and has no wildcard [MQTT-3.3.2-2].
fn check_name(topic: &str) {
    let expected = if topic.is_empty() {
        Err(DecodeError::Violation(Rule::EmptyTopicName))
    } else if topic.contains(['+', '#']) {
        Err(DecodeError::Violation(Rule::Mqtt3_3_2_2))
    } else {
        Ok(())
    };
    assert_eq!(validate_topic_name(topic), expected, "topic name {topic:?}");
}

/// A topic filter is not empty [MQTT-4.7.3-1], every `#` follows the start or a `/` and ends the
/// filter [MQTT-4.7.1-2], and every `+` has the start or a `/` before it and the end or a `/`
/// after it [MQTT-4.7.1-3].
fn check_filter(filter: &str) {
    let bytes = filter.as_bytes();
    // `+`, `#` and `/` are ASCII, so no byte of a multi-byte character is mistaken for one.
    let separated = |i: usize| i == 0 || bytes[i - 1] == b'/';
    let last = |i: usize| i + 1 == bytes.len();
    let misplaced_hash = (0..bytes.len()).any(|i| bytes[i] == b'#' && !(separated(i) && last(i)));
    let misplaced_plus =
        (0..bytes.len()).any(|i| bytes[i] == b'+' && !(separated(i) && (last(i) || bytes[i + 1] == b'/')));
    let result = validate_topic_filter(filter);
    let valid = !filter.is_empty() && !misplaced_hash && !misplaced_plus;
    assert_eq!(result.is_ok(), valid, "topic filter {filter:?}: {result:?}");
    match result {
        Ok(()) => {}
        Err(DecodeError::Violation(Rule::EmptyTopicFilter)) => assert!(filter.is_empty()),
        Err(DecodeError::Violation(Rule::Mqtt4_7_1_2)) => assert!(misplaced_hash, "{filter:?}"),
        Err(DecodeError::Violation(Rule::Mqtt4_7_1_3)) => assert!(misplaced_plus, "{filter:?}"),
        Err(other) => panic!("topic filter {filter:?} refused for {other:?}"),
    }
}
