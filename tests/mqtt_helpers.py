"""A real paho subscriber for the tests that talk to the Mosquitto broker the ``mosquitto``
fixture starts, and a bounded wait for what it receives."""
from __future__ import annotations

import json
import threading
import time


def subscribe(port: int, topic: str):
    """A real paho subscriber on loopback; returns (client, received [(topic, payload), ...])."""
    import paho.mqtt.client as mqtt

    received, ready = [], threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic)
    client.on_subscribe = lambda c, u, mid, rc, p: ready.set()
    client.on_message = lambda c, u, m: received.append((m.topic, json.loads(m.payload)))
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert ready.wait(10), "the test subscriber did not subscribe"
    return client, received


def wait_until(condition, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False
