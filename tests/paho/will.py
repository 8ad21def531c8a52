"""Will messages between paho clients: a client whose socket closes without DISCONNECT has its
will published to a paho subscriber [MQTT-3.1.2-8], with the will's topic, payload and QoS.

Usage: will.py PORT
"""

from mqtt_helpers import TestClient, check, port_from_argv


def main():
    port = port_from_argv()
    watcher = TestClient("paho-will-watcher")
    watcher.connect(port)
    watcher.subscribe("paho/will/#", 2)

    doomed = TestClient("paho-will-doomed")
    doomed.will_set("paho/will/doomed", b"doomed went away", qos=1)
    doomed.connect(port)
    doomed.drop_connection()

    message = watcher.receive("the will message of the dropped client")
    check(message.topic == "paho/will/doomed", f"will published on {message.topic!r}")
    check(message.payload == b"doomed went away", f"will payload {message.payload!r}")
    check(message.qos == 1, f"QoS 1 will delivered at QoS {message.qos}")
    check(not message.retain, "a will without the retain flag arrived with RETAIN=1")

    watcher.disconnect()
    print("will: ok")


main()
