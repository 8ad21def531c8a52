"""MQTT 3.1 (protocol name MQIsdp, level 3) with paho: CONNECT is accepted and a QoS 1 message
round trip works between two 3.1 clients.

Usage: mqttv31.py PORT
"""

import paho.mqtt.client as mqtt

from mqtt_helpers import TestClient, check, port_from_argv


def main():
    port = port_from_argv()
    subscriber = TestClient("paho-v31-sub", protocol=mqtt.MQTTv31)
    subscriber.connect(port)
    granted = subscriber.subscribe("paho/v31", 1)
    check(granted == 1, f"SUBACK granted {granted}; expected 1")

    publisher = TestClient("paho-v31-pub", protocol=mqtt.MQTTv31)
    publisher.connect(port)
    publisher.publish("paho/v31", b"hello 3.1", 1)

    message = subscriber.receive("the QoS 1 message from a 3.1 publisher")
    check(message.payload == b"hello 3.1", f"payload {message.payload!r}")
    check(message.qos == 1, f"delivered at QoS {message.qos}; expected 1")

    publisher.disconnect()
    subscriber.disconnect()
    print("mqttv31: ok")


main()
