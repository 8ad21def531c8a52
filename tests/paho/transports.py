"""MQTT over every transport with paho-mqtt: plain TCP, TLS, WebSocket and WebSocket over TLS
(MQTT 5.0 section 6), 3.1.1 and 5.0 clients, each publishing at QoS 0, 1 and 2 to subscribers
on every other transport, payloads intact (some far larger than one WebSocket frame buffer).

Usage: transports.py TCP_PORT TLS_PORT WS_PORT WSS_PORT CA_FILE
"""

import os
import sys

import paho.mqtt.client as mqtt

from mqtt_helpers import TestClient, check, fail

SIZES = [0, 1, 200, 70_000, 300_000]


def main():
    if len(sys.argv) != 6:
        fail(f"usage: {sys.argv[0]} TCP_PORT TLS_PORT WS_PORT WSS_PORT CA_FILE")
    tcp, tls, ws, wss = (int(port) for port in sys.argv[1:5])
    ca_file = sys.argv[5]
    transports = {
        "tcp": (tcp, {}),
        "tls": (tls, {"ca_file": ca_file}),
        "ws": (ws, {"websocket_path": "/mqtt"}),
        "wss": (wss, {"websocket_path": "/mqtt", "ca_file": ca_file}),
    }
    subscribers = {}
    for name, (port, options) in transports.items():
        for protocol, version in ((mqtt.MQTTv311, "3"), (mqtt.MQTTv5, "5")):
            client = TestClient(f"sub-{name}-v{version}", protocol=protocol, **options)
            client.connect(port)
            granted = client.subscribe("paho/transports/#", 2)
            check(granted == 2, f"{client.client_id}: SUBACK granted {granted}")
            subscribers[client.client_id] = client
    for name, (port, options) in transports.items():
        publisher = TestClient(f"pub-{name}", protocol=mqtt.MQTTv5, **options)
        publisher.connect(port)
        for qos in (0, 1, 2):
            payloads = [os.urandom(size) for size in SIZES]
            topic = f"paho/transports/{name}/{qos}"
            for payload in payloads:
                publisher.publish(topic, payload, qos)
            for subscriber in subscribers.values():
                for index, payload in enumerate(payloads):
                    what = f"message {index} ({len(payload)} bytes) from {name} at QoS {qos}"
                    message = subscriber.receive(what)
                    check(message.topic == topic, f"{subscriber.client_id}: {what} came on {message.topic}")
                    check(message.payload == payload, f"{subscriber.client_id}: {what} arrived altered")
                    check(message.qos == qos, f"{subscriber.client_id}: {what} arrived at QoS {message.qos}")
        publisher.disconnect()
    for subscriber in subscribers.values():
        subscriber.disconnect()
    print("ok")


if __name__ == "__main__":
    main()
