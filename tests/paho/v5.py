"""MQTT 5.0 between paho clients: CONNECT and CONNACK properties, subscription options (No
Local [MQTT-3.8.3-3], Retain As Published [MQTT-3.3.1-12] [MQTT-3.3.1-13], Retain Handling
[MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11]), PUBLISH properties forwarded with the
Subscription Identifier [MQTT-3.3.4-3], the reason codes of SUBACK, UNSUBACK and PUBACK, and a
shared subscription (4.8.2).

Usage: v5.py PORT
"""

import queue
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from mqtt_helpers import HOST, WAIT, check, fail, port_from_argv

MARKER = "paho5/marker"


class V5Client:
    """A paho MQTT 5.0 client run by its network thread: events for CONNACK, SUBACK, UNSUBACK and
    PUBACK (with their reason codes and properties) and a queue of received messages."""

    def __init__(self, client_id):
        self.client_id = client_id
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=False,
        )
        self.connected = threading.Event()
        self.connack = None
        self.lock = threading.Lock()
        self.acks = {}
        self.ack_events = {}
        self.messages = queue.Queue()
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_ack
        self.client.on_unsubscribe = self._on_ack
        self.client.on_publish = self._on_publish
        self.client.on_message = lambda _c, _u, message: self.messages.put(message)

    def _on_connect(self, _client, _userdata, _flags, reason_code, properties):
        self.connack = (reason_code, properties)
        self.connected.set()

    def _record(self, mid, value):
        with self.lock:
            self.acks[mid] = value
            event = self.ack_events.setdefault(mid, threading.Event())
        event.set()

    def _on_ack(self, _client, _userdata, mid, reason_codes, _properties):
        self._record(mid, [code.value for code in reason_codes])

    def _on_publish(self, _client, _userdata, mid, reason_code, _properties):
        self._record(mid, reason_code.value)

    def _wait(self, mid, what):
        with self.lock:
            event = self.ack_events.setdefault(mid, threading.Event())
        check(event.wait(WAIT), f"{self.client_id}: no {what} within {WAIT}s")
        with self.lock:
            return self.acks[mid]

    def connect(self, port, properties=None):
        """Connects with Clean Start and waits for an accepting CONNACK; returns its properties."""
        self.client.connect(HOST, port, keepalive=60, clean_start=True, properties=properties)
        self.client.loop_start()
        check(self.connected.wait(WAIT), f"{self.client_id}: no CONNACK within {WAIT}s")
        reason_code, connack_properties = self.connack
        check(not reason_code.is_failure, f"{self.client_id}: CONNACK refused: {reason_code}")
        return connack_properties

    def subscribe(self, subscriptions, subscription_id=None):
        """Subscribes to [(filter, SubscribeOptions)] in one SUBSCRIBE; returns the SUBACK codes."""
        properties = None
        if subscription_id is not None:
            properties = Properties(PacketTypes.SUBSCRIBE)
            properties.SubscriptionIdentifier = subscription_id
        with self.lock:
            result, mid = self.client.subscribe(subscriptions, properties=properties)
            check(result == mqtt.MQTT_ERR_SUCCESS, f"{self.client_id}: SUBSCRIBE not sent: {result}")
            self.ack_events.setdefault(mid, threading.Event())
        return self._wait(mid, f"SUBACK for {subscriptions}")

    def unsubscribe(self, topics):
        """Unsubscribes from `topics`; returns the UNSUBACK codes."""
        with self.lock:
            result, mid = self.client.unsubscribe(topics)
            check(result == mqtt.MQTT_ERR_SUCCESS, f"{self.client_id}: UNSUBSCRIBE not sent: {result}")
            self.ack_events.setdefault(mid, threading.Event())
        return self._wait(mid, f"UNSUBACK for {topics}")

    def publish(self, topic, payload, qos=1, retain=False, properties=None):
        """Publishes at QoS 1 or 2 and waits for the handshake; returns the PUBACK or PUBREC
        reason code."""
        with self.lock:
            info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
            check(info.rc == mqtt.MQTT_ERR_SUCCESS, f"{self.client_id}: PUBLISH not sent: {info.rc}")
            self.ack_events.setdefault(info.mid, threading.Event())
        return self._wait(info.mid, f"acknowledgement of the PUBLISH to {topic!r}")

    def receive(self, what):
        """The next received message; fails if none arrives in time."""
        try:
            return self.messages.get(timeout=WAIT)
        except queue.Empty:
            fail(f"{self.client_id}: no message within {WAIT}s; expected {what}")
        return None

    def until_marker(self):
        """The messages received before the next one on the marker topic."""
        received = []
        while True:
            message = self.receive("the marker")
            if message.topic == MARKER:
                return received
            received.append(message)

    def disconnect(self):
        self.client.disconnect()
        self.client.loop_stop()


def prop(message, name, default=None):
    """A property of a received message, or `default` if it has none."""
    properties = message.properties
    return getattr(properties, name, default) if properties is not None else default


def options(qos, no_local=False, retain_as_published=False, retain_handling=0):
    return SubscribeOptions(
        qos=qos,
        noLocal=no_local,
        retainAsPublished=retain_as_published,
        retainHandling=retain_handling,
    )


def check_connect(port):
    """CONNECT properties are honoured and CONNACK tells the server's side (3.2.2.3)."""
    client = V5Client("paho5-connect")
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 3600
    properties.RequestResponseInformation = 1
    properties.ReceiveMaximum = 20
    properties.UserProperty = [("app", "paho")]
    connack = client.connect(port, properties)
    check(connack is not None, "CONNACK without properties")
    # The server caps the Session Expiry Interval at its session_timeout_secs (300).
    check(
        getattr(connack, "SessionExpiryInterval", None) == 300,
        f"CONNACK Session Expiry Interval {getattr(connack, 'SessionExpiryInterval', None)}",
    )
    check(
        getattr(connack, "ResponseInformation", None) == "response/paho5-connect",
        f"CONNACK Response Information {getattr(connack, 'ResponseInformation', None)!r}",
    )
    for name, value in [
        ("SharedSubscriptionAvailable", 1),
        ("SubscriptionIdentifierAvailable", 1),
        ("WildcardSubscriptionAvailable", 1),
        ("RetainAvailable", 1),
        ("TopicAliasMaximum", 10),
    ]:
        check(getattr(connack, name, None) == value, f"CONNACK {name} {getattr(connack, name, None)!r}")
    client.disconnect()


def check_options_and_properties(port):
    """No Local, Retain As Published and Retain Handling; properties forwarded with the
    Subscription Identifier."""
    me = V5Client("paho5-me")
    me.connect(port)
    codes = me.subscribe(
        [
            ("paho5/t", options(1, no_local=True, retain_as_published=True)),
            (MARKER, options(1)),
        ],
        subscription_id=11,
    )
    check(codes == [1, 1], f"SUBACK codes {codes}; expected [1, 1]")
    other = V5Client("paho5-other")
    other.connect(port)

    # [MQTT-3.8.3-3]: my own publication is not sent back to me; the other client's is.
    me.publish("paho5/t", b"own", qos=1)
    publish = Properties(PacketTypes.PUBLISH)
    publish.ResponseTopic = "paho5/reply"
    publish.CorrelationData = b"\x00\x01corr"
    publish.UserProperty = [("k", "v1"), ("k", "v2"), ("a", "b")]
    publish.ContentType = "text/plain"
    publish.MessageExpiryInterval = 60
    code = other.publish("paho5/t", b"theirs", qos=1, retain=True, properties=publish)
    check(code == 0, f"PUBACK reason code {code:#x}; expected 0x00")
    other.publish(MARKER, b"", qos=1)
    received = me.until_marker()
    check(
        [m.payload for m in received] == [b"theirs"],
        f"No Local: received {[m.payload for m in received]}; expected only b'theirs'",
    )
    message = received[0]
    # [MQTT-3.3.1-13]: Retain As Published keeps RETAIN=1 on the live retained publication.
    check(message.retain, "Retain As Published 1: a live retained message arrived with RETAIN=0")
    # [MQTT-3.3.4-3] and the publisher's properties, unchanged (3.3.2.3).
    check(prop(message, "SubscriptionIdentifier") == [11], f"identifiers {prop(message, 'SubscriptionIdentifier')}")
    check(prop(message, "ResponseTopic") == "paho5/reply", f"Response Topic {prop(message, 'ResponseTopic')!r}")
    check(prop(message, "CorrelationData") == b"\x00\x01corr", f"Correlation Data {prop(message, 'CorrelationData')!r}")
    check(
        prop(message, "UserProperty") == [("k", "v1"), ("k", "v2"), ("a", "b")],
        f"User Properties {prop(message, 'UserProperty')}",
    )
    check(prop(message, "ContentType") == "text/plain", f"Content Type {prop(message, 'ContentType')!r}")
    expiry = prop(message, "MessageExpiryInterval")
    check(expiry is not None and 0 < expiry <= 60, f"Message Expiry Interval {expiry}")

    # Retain Handling 2 [MQTT-3.3.1-11]: no retained message; Retain As Published 0
    # [MQTT-3.3.1-12]: a live retained publication arrives with RETAIN=0.
    late = V5Client("paho5-late")
    late.connect(port)
    check(late.subscribe([("paho5/t", options(1, retain_handling=2)), (MARKER, options(1))]) == [1, 1], "SUBACK")
    other.publish("paho5/t", b"live", qos=1, retain=True)
    other.publish(MARKER, b"", qos=1)
    received = late.until_marker()
    check([m.payload for m in received] == [b"live"], f"Retain Handling 2: got {[m.payload for m in received]}")
    check(not received[0].retain, "Retain As Published 0: a live retained message arrived with RETAIN=1")
    check(prop(received[0], "SubscriptionIdentifier") is None, "an identifier on a subscription without one")

    # Retain Handling 1 [MQTT-3.3.1-10]: the subscription exists, so no retained message.
    check(late.subscribe([("paho5/t", options(1, retain_handling=1))]) == [1], "SUBACK")
    other.publish(MARKER, b"", qos=1)
    received = late.until_marker()
    check(received == [], f"Retain Handling 1 on an existing subscription sent {[m.payload for m in received]}")
    # Retain Handling 0 [MQTT-3.3.1-9]: sent on every SUBSCRIBE, with RETAIN=1.
    check(late.subscribe([("paho5/t", options(1, retain_handling=0))], subscription_id=5) == [1], "SUBACK")
    message = late.receive("the retained message")
    check(message.payload == b"live" and message.retain, f"retained {message.payload!r} retain={message.retain}")
    check(prop(message, "SubscriptionIdentifier") == [5], f"identifiers {prop(message, 'SubscriptionIdentifier')}")

    for client in (me, other, late):
        client.disconnect()


def check_reason_codes(port):
    """SUBACK, UNSUBACK and PUBACK reason codes."""
    client = V5Client("paho5-codes")
    client.connect(port)
    codes = client.subscribe(
        [
            ("paho5/codes/a", options(2)),
            ("paho5/codes/b", options(0)),
            ("$share//x", options(1)),
            ("$share/g", options(1)),
        ]
    )
    check(codes == [2, 0, 0x8F, 0x8F], f"SUBACK codes {[hex(c) for c in codes]}")
    codes = client.unsubscribe(["paho5/codes/a", "paho5/codes/none"])
    check(codes == [0x00, 0x11], f"UNSUBACK codes {[hex(c) for c in codes]}; expected [0x0, 0x11]")
    code = client.publish("paho5/nobody/listens", b"x", qos=1)
    check(code == 0x10, f"PUBACK to a topic nobody subscribes to: {code:#x}; expected 0x10")
    code = client.publish("paho5/codes/b", b"x", qos=2)
    check(code == 0x00, f"PUBREC to a subscribed topic: {code:#x}; expected 0x00")
    client.disconnect()


def check_shared_subscription(port):
    """Two members of one shared subscription: each message goes to one of them (4.8.2)."""
    members = [V5Client(f"paho5-member-{n}") for n in range(2)]
    for member in members:
        member.connect(port)
        codes = member.subscribe([("$share/workers/paho5/jobs", options(1)), (MARKER, options(1))])
        check(codes == [1, 1], f"SUBACK codes {codes}")
    publisher = V5Client("paho5-jobs")
    publisher.connect(port)
    for n in range(6):
        publisher.publish("paho5/jobs", f"job {n}".encode(), qos=1)
    publisher.publish(MARKER, b"", qos=1)
    got = [sorted(m.payload for m in member.until_marker()) for member in members]
    every = sorted(got[0] + got[1])
    check(every == sorted(f"job {n}".encode() for n in range(6)), f"shared deliveries {got}")
    check(len(got[0]) == 3 and len(got[1]) == 3, f"round robin gave {got}")
    for client in members + [publisher]:
        client.disconnect()


def main():
    port = port_from_argv()
    check_connect(port)
    check_options_and_properties(port)
    check_reason_codes(port)
    check_shared_subscription(port)
    print("v5: ok")


main()
