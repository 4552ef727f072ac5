"""Publish an app's events to an MQTT broker with paho-mqtt, without ever stalling the app.

    >>> with MqttPublisher("mqtt://broker.local:1883/cameras/door") as mqtt:
    ...     mqtt.publish("event", {"event": "appear", "label": "person"})

The connection is made in paho's own network thread (``connect_async`` + ``loop_start``), and a
lost broker is retried there with back-off; meanwhile :meth:`publish` returns at once and counts
the message as failed. A fleet of devices therefore keeps running whatever the broker does, and
the summary says how many messages did not get out.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from edge_runtime import deps

from apps.common.events import jsonable


@dataclass(frozen=True)
class MqttUrl:
    """``mqtt://HOST[:PORT]/TOPIC`` (port 1883 by default; the topic may hold slashes)."""

    host: str
    port: int
    topic: str

    @classmethod
    def parse(cls, url: str) -> "MqttUrl":
        parts = urlsplit(url)
        topic = parts.path.lstrip("/")
        problem = None
        if parts.scheme != "mqtt":
            problem = f"scheme {parts.scheme or '(none)'!r}"
        elif not parts.hostname:
            problem = "no host"
        elif not topic or "#" in url or "+" in topic:  # urlsplit takes '#' for a fragment
            problem = "no topic" if not topic else "wildcards in the topic"
        if problem is None:
            try:
                port = parts.port or 1883
            except ValueError:
                problem = "a port that is not a number"
        if problem:
            raise ValueError(f"--mqtt {url!r}: expected mqtt://HOST[:PORT]/TOPIC, got {problem}")
        return cls(parts.hostname, port, topic)

    def __str__(self) -> str:
        return f"mqtt://{self.host}:{self.port}/{self.topic}"


class MqttPublisher:
    """Publishes JSON payloads under ``TOPIC/<subtopic>``.

    Args:
        url: ``mqtt://HOST[:PORT]/TOPIC``.
        qos: 0 (at most once, the default: events are frequent and a summary follows) or 1.
        max_queued: messages paho may hold while sending (bounded so memory stays flat).
    """

    def __init__(self, url: str | MqttUrl, qos: int = 0, client_id: str | None = None, max_queued: int = 1000):
        self.url = url if isinstance(url, MqttUrl) else MqttUrl.parse(url)
        if qos not in (0, 1):
            raise ValueError(f"MQTT qos must be 0 or 1, got {qos}")
        self.qos = qos
        self.client_id = client_id or f"edgepilot-{uuid.uuid4().hex[:8]}"
        self.max_queued = max_queued
        self.published = 0
        self.failed = 0
        self.connects = 0
        self._connected = threading.Event()
        self._client = None
        self._lock = threading.Lock()

    # ----- lifecycle ---------------------------------------------------------------------
    def start(self) -> "MqttPublisher":
        deps.require("paho", "publishing to MQTT (--mqtt)")
        import paho.mqtt.client as mqtt

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id)
        client.max_queued_messages_set(self.max_queued)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.connect_async(self.url.host, self.url.port, keepalive=30)
        client.loop_start()
        self._client = client
        return self

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def close(self, flush_s: float = 2.0) -> None:
        """Give queued messages up to ``flush_s`` to go out, then disconnect."""
        client, self._client = self._client, None
        if client is None:
            return
        deadline = time.monotonic() + flush_s
        while self._connected.is_set() and client.want_write() and time.monotonic() < deadline:
            time.sleep(0.01)
        client.disconnect()
        client.loop_stop()
        self._connected.clear()

    def __enter__(self) -> "MqttPublisher":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not reason_code.is_failure:
            self.connects += 1
            self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()

    # ----- publishing --------------------------------------------------------------------
    def topic(self, subtopic: str | None) -> str:
        return f"{self.url.topic}/{subtopic}" if subtopic else self.url.topic

    def publish(self, subtopic: str | None, payload: Any, retain: bool = False) -> bool:
        """Send ``payload`` (JSON-encoded) to ``TOPIC/subtopic``; never blocks, never raises for
        a missing broker. True when handed to the connection, False (and counted) otherwise."""
        client = self._client
        ok = False
        if client is not None and self._connected.is_set():
            data = json.dumps(jsonable(payload), separators=(",", ":"))
            try:
                info = client.publish(self.topic(subtopic), data, qos=self.qos, retain=retain)
                ok = info.rc == 0
            except (ValueError, OSError, RuntimeError):
                ok = False
        with self._lock:
            if ok:
                self.published += 1
            else:
                self.failed += 1
        return ok

    def stats(self) -> dict:
        return {"url": str(self.url), "published": self.published, "failed": self.failed,
                "connected": self.connected, "connects": self.connects}
