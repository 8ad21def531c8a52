"""Retained messages between paho clients: a retained publication is delivered to a later
subscriber [MQTT-3.3.1-6] with the retain flag set [MQTT-3.3.1-8], a live one to an existing
subscriber without it [MQTT-3.3.1-9], a newer retained message replaces the older
[MQTT-3.3.1-5], and an empty retained publication deletes it [MQTT-3.3.1-10].

Usage: retained.py PORT
"""

from mqtt_helpers import TestClient, check, port_from_argv


def main():
    port = port_from_argv()
    publisher = TestClient("paho-retain-pub")
    publisher.connect(port)
    publisher.publish("paho/retained/a", b"first", 1, retain=True)
    publisher.publish("paho/retained/a", b"second", 1, retain=True)

    late = TestClient("paho-retain-late")
    late.connect(port)
    late.subscribe("paho/retained/a", 1)
    message = late.receive("the retained message")
    check(message.topic == "paho/retained/a", f"retained message on {message.topic!r}")
    check(message.payload == b"second", f"retained payload {message.payload!r}; expected b'second'")
    check(message.retain, "a retained message sent on subscription arrived with RETAIN=0")
    check(message.qos == 1, f"retained QoS 1 message delivered at QoS {message.qos}")

    publisher.publish("paho/retained/a", b"live", 1, retain=True)
    message = late.receive("the live retained publication")
    check(message.payload == b"live", f"live payload {message.payload!r}; expected b'live'")
    check(not message.retain, "a live retained publication reached a subscriber with RETAIN=1")

    # An empty retained payload deletes the retained message; the subscriber still sees it live.
    publisher.publish("paho/retained/a", b"", 1, retain=True)
    message = late.receive("the empty retained publication")
    check(message.payload == b"", f"payload {message.payload!r}; expected the empty deletion")

    fresh = TestClient("paho-retain-fresh")
    fresh.connect(port)
    fresh.subscribe("paho/retained/a", 1)
    # Anything retained would be queued before this later publication on the same topic.
    publisher.publish("paho/retained/a", b"marker", 1)
    message = fresh.receive("the marker publication")
    check(
        message.payload == b"marker" and not message.retain,
        f"after deletion a new subscriber got {message.payload!r} (retain={message.retain}) "
        "before the marker; the retained message was not deleted",
    )

    for client in (publisher, late, fresh):
        client.disconnect()
    print("retained: ok")


main()
