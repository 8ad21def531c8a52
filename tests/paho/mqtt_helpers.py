"""Shared helpers for the paho-mqtt interoperability scripts.

Every wait is bounded: callbacks set threading.Event objects or fill queues, and the main thread
waits on them with a timeout. A failure prints a message naming what was expected and exits with
status 1.
"""

import queue
import sys
import threading

import paho.mqtt.client as mqtt

# How long any single expected event may take.
WAIT = 10.0
HOST = "127.0.0.1"


def port_from_argv():
    """Returns the broker port given as the only command-line argument."""
    if len(sys.argv) != 2:
        fail(f"usage: {sys.argv[0]} PORT")
    return int(sys.argv[1])


def fail(message):
    """Prints a failure message and exits non-zero."""
    print(f"FAIL: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def check(condition, message):
    """Fails with `message` unless `condition` holds."""
    if not condition:
        fail(message)


class TestClient:
    """A paho client run by its network thread, with events for CONNACK and SUBACK and a queue
    of received messages."""

    def __init__(self, client_id, clean_session=True, protocol=mqtt.MQTTv311, websocket_path=None, ca_file=None):
        """A client over TCP, or over WebSocket when `websocket_path` is given; over TLS
        trusting `ca_file` when it is given."""
        self.client_id = client_id
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            # MQTT 5.0 has Clean Start instead, given at connect.
            clean_session=clean_session if protocol != mqtt.MQTTv5 else None,
            protocol=protocol,
            transport="websockets" if websocket_path else "tcp",
            # A lost connection must fail the test, not be silently re-established.
            reconnect_on_failure=False,
        )
        if websocket_path:
            self.client.ws_set_options(path=websocket_path)
        if ca_file:
            self.client.tls_set(ca_certs=ca_file)
        self.connected = threading.Event()
        self.connack = None
        self.subacks = {}
        self.suback_events = {}
        self.lock = threading.Lock()
        self.messages = queue.Queue()
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def _on_connect(self, _client, _userdata, flags, reason_code, _properties):
        self.connack = (flags.session_present, reason_code)
        self.connected.set()

    def _on_subscribe(self, _client, _userdata, mid, reason_codes, _properties):
        with self.lock:
            self.subacks[mid] = [code.value for code in reason_codes]
            event = self.suback_events.setdefault(mid, threading.Event())
        event.set()

    def _on_message(self, _client, _userdata, message):
        self.messages.put(message)

    def will_set(self, topic, payload, qos=0, retain=False):
        """Sets the will message; call before connect."""
        self.client.will_set(topic, payload, qos=qos, retain=retain)

    def connect(self, port, keepalive=60):
        """Connects, starts the network thread and waits for an accepting CONNACK. Returns the
        session present flag."""
        self.client.connect(HOST, port, keepalive=keepalive)
        self.client.loop_start()
        check(self.connected.wait(WAIT), f"{self.client_id}: no CONNACK within {WAIT}s")
        session_present, reason_code = self.connack
        check(
            not reason_code.is_failure,
            f"{self.client_id}: CONNACK refused the connection: {reason_code}",
        )
        return session_present

    def subscribe(self, topic, qos):
        """Subscribes and waits for the SUBACK; returns the granted QoS."""
        with self.lock:
            result, mid = self.client.subscribe(topic, qos)
            check(result == mqtt.MQTT_ERR_SUCCESS, f"{self.client_id}: SUBSCRIBE failed: {result}")
            event = self.suback_events.setdefault(mid, threading.Event())
        check(event.wait(WAIT), f"{self.client_id}: no SUBACK for {topic!r} within {WAIT}s")
        with self.lock:
            codes = self.subacks[mid]
        check(len(codes) == 1, f"{self.client_id}: SUBACK for one filter carried {codes}")
        return codes[0]

    def publish(self, topic, payload, qos, retain=False):
        """Publishes and, for QoS 1 and 2, waits until the handshake with the broker completes."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        check(info.rc == mqtt.MQTT_ERR_SUCCESS, f"{self.client_id}: PUBLISH not sent: {info.rc}")
        info.wait_for_publish(WAIT)
        check(
            info.is_published(),
            f"{self.client_id}: QoS {qos} PUBLISH to {topic!r} not acknowledged within {WAIT}s",
        )

    def receive(self, what):
        """Returns the next received message, failing if none arrives in time."""
        try:
            return self.messages.get(timeout=WAIT)
        except queue.Empty:
            fail(f"{self.client_id}: no message within {WAIT}s; expected {what}")
        return None

    def disconnect(self):
        """Sends DISCONNECT and stops the network thread."""
        self.client.disconnect()
        self.client.loop_stop()

    def drop_connection(self):
        """Closes the socket without DISCONNECT, as a crashed client or a lost network would."""
        self.client.loop_stop()
        sock = self.client.socket()
        check(sock is not None, f"{self.client_id}: no socket to close")
        sock.close()
