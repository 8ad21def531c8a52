//! Interoperability with Python paho-mqtt 2.x: each test starts a broker and runs one script of
//! `tests/paho/` against it, which exits 0 when every check passed and prints what failed
//! otherwise. Covered: publish and subscribe at QoS 0, 1 and 2 with payload integrity, retained
//! messages, will messages after an abrupt close, persistent sessions, MQTT 3.1 clients, and
//! MQTT 5.0 clients (properties, subscription options, reason codes, shared subscriptions).

use std::process::Command;

use iothub_test_util::{require_tool, OrFail, TestBroker};

/// Longest a script may run; each script also bounds every wait of its own.
const SCRIPT_TIMEOUT_SECS: u32 = 60;

/// Fails with a clear message unless python3 can import paho-mqtt.
fn require_paho() {
    require_tool("python3");
    let found = Command::new("python3")
        .args(["-c", "import paho.mqtt"])
        .status()
        .or_fail("running python3")
        .success();
    assert!(found, "python3 paho-mqtt is not installed; run scripts/install-test-deps");
}

/// Runs `tests/paho/<script>.py <port>` against a fresh broker and asserts that it exits 0.
fn run_script(script: &str) {
    require_paho();
    require_tool("timeout");
    let broker = TestBroker::start();
    let path = format!("tests/paho/{script}.py");
    let output = Command::new("timeout")
        .args(["-k", "5", &SCRIPT_TIMEOUT_SECS.to_string(), "python3", &path, &broker.port()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        // Keep the source tree free of __pycache__ directories.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .or_fail("running the script under timeout");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let status = output.status;
    let timed_out = if status.code() == Some(124) { " (timed out)" } else { "" };
    assert!(status.success(), "{path} failed with {status}{timed_out}\nstdout:\n{stdout}\nstderr:\n{stderr}");
}

// [MQTT-3.8.4-6]: deliveries at the minimum of the published and the granted QoS, with payloads
// of every remaining-length size class arriving intact and in order.
#[test]
fn mqtt_3_8_4_6_paho_pubsub_at_qos_0_1_2_keeps_payloads_intact() {
    run_script("pubsub_qos");
}

// [MQTT-3.3.1-5], [MQTT-3.3.1-6], [MQTT-3.3.1-8], [MQTT-3.3.1-9], [MQTT-3.3.1-10].
#[test]
fn mqtt_3_3_1_8_paho_retained_message_arrives_with_retain_flag() {
    run_script("retained");
}

// [MQTT-3.1.2-8]: the will of a paho client whose socket closes without DISCONNECT.
#[test]
fn mqtt_3_1_2_8_paho_will_published_on_abrupt_close() {
    run_script("will");
}

// [MQTT-3.1.2-5], [MQTT-3.2.2-1], [MQTT-3.2.2-2]: QoS 1 messages published while a
// clean_session=False paho client is offline are delivered when it comes back.
#[test]
fn mqtt_3_1_2_5_paho_persistent_session_receives_offline_messages() {
    run_script("persistent_session");
}

// MQTT 3.1 (MQIsdp, level 3) clients connect and exchange messages.
#[test]
fn paho_mqttv31_client_connects_and_exchanges_messages() {
    run_script("mqttv31");
}

// MQTT 5.0: CONNECT/CONNACK properties; No Local [MQTT-3.8.3-3], Retain As Published
// [MQTT-3.3.1-12], [MQTT-3.3.1-13] and Retain Handling [MQTT-3.3.1-9], [MQTT-3.3.1-10],
// [MQTT-3.3.1-11]; PUBLISH properties forwarded with the Subscription Identifier
// [MQTT-3.3.4-3]; SUBACK, UNSUBACK and PUBACK reason codes; a shared subscription (4.8.2).
#[test]
fn mqtt_3_8_3_3_paho_mqttv5_options_properties_and_reason_codes() {
    run_script("v5");
}
