"""Publish and subscribe at QoS 0, 1 and 2 between paho clients, checking every payload byte for
byte and the QoS of each delivery: the publication's QoS under a QoS 2 subscription, and at most
the granted QoS under a QoS 1 subscription [MQTT-3.8.4-6].

Usage: pubsub_qos.py PORT
"""

import os

from mqtt_helpers import TestClient, check, port_from_argv

# Sizes around the remaining-length boundaries of the fixed header, and a large one.
SIZES = [0, 1, 127, 128, 16_383, 16_384, 100_000, 500_000]


def main():
    port = port_from_argv()
    full = TestClient("paho-sub-qos2")
    full.connect(port)
    granted = full.subscribe("paho/qos/#", 2)
    check(granted == 2, f"SUBACK granted {granted} for a QoS 2 subscription; expected 2")

    capped = TestClient("paho-sub-qos1")
    capped.connect(port)
    granted = capped.subscribe("paho/qos/#", 1)
    check(granted == 1, f"SUBACK granted {granted} for a QoS 1 subscription; expected 1")

    publisher = TestClient("paho-pub")
    publisher.connect(port)

    for qos in (0, 1, 2):
        topic = f"paho/qos/{qos}"
        payloads = [os.urandom(size) for size in SIZES]
        for payload in payloads:
            publisher.publish(topic, payload, qos)
        for subscriber, cap in ((full, 2), (capped, 1)):
            name = subscriber.client_id
            for index, payload in enumerate(payloads):
                what = f"{name}: message {index} ({len(payload)} bytes) at QoS {qos}"
                message = subscriber.receive(what)
                check(
                    message.topic == topic,
                    f"{what}: topic {message.topic!r}; expected {topic!r}",
                )
                check(
                    message.payload == payload,
                    f"{what}: payload of {len(message.payload)} bytes differs from the "
                    f"{len(payload)} bytes published (messages must arrive intact and in order)",
                )
                expected_qos = min(qos, cap)
                check(
                    message.qos == expected_qos,
                    f"{what}: delivered at QoS {message.qos}; expected {expected_qos}",
                )
                check(not message.retain, f"{what}: a live delivery has RETAIN set")

    for client in (publisher, full, capped):
        client.disconnect()
    print("pubsub_qos: ok")


main()
