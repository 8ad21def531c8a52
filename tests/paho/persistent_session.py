"""Persistent sessions with paho: a clean_session=False subscriber that goes offline receives on
reconnection the QoS 1 messages published meanwhile, in order [MQTT-3.1.2-5], without
subscribing again, and CONNACK says the session is present [MQTT-3.2.2-2]. QoS 0 messages are
not queued for an offline client (as Mosquitto). A clean session afterwards finds no session
[MQTT-3.2.2-1].

Usage: persistent_session.py PORT
"""

from mqtt_helpers import TestClient, check, port_from_argv

CLIENT_ID = "paho-persistent"
TOPIC = "paho/persistent/t"


def main():
    port = port_from_argv()
    first = TestClient(CLIENT_ID, clean_session=False)
    present = first.connect(port)
    check(not present, "the first connection of a new client id reported session present")
    first.subscribe(TOPIC, 1)
    first.disconnect()

    publisher = TestClient("paho-persistent-pub")
    publisher.connect(port)
    publisher.publish(TOPIC, b"offline 1", 1)
    publisher.publish(TOPIC, b"offline 2", 1)
    publisher.publish(TOPIC, b"offline qos0", 0)
    publisher.publish(TOPIC, b"offline 3", 1)
    publisher.disconnect()

    second = TestClient(CLIENT_ID, clean_session=False)
    present = second.connect(port)
    check(present, "reconnecting with clean_session=False: CONNACK session present flag is 0")
    for expected in (b"offline 1", b"offline 2", b"offline 3"):
        message = second.receive(f"the queued message {expected!r}")
        check(
            message.payload == expected,
            f"queued messages out of order or a QoS 0 message queued: got {message.payload!r}, "
            f"expected {expected!r}",
        )
        check(message.qos == 1, f"queued QoS 1 message delivered at QoS {message.qos}")
        check(message.topic == TOPIC, f"queued message on {message.topic!r}")
    second.disconnect()

    third = TestClient(CLIENT_ID, clean_session=True)
    present = third.connect(port)
    check(not present, "a clean_session=True connection reported session present")
    third.disconnect()
    print("persistent_session: ok")


main()
