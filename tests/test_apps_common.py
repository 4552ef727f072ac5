"""apps.common: JSON-lines events, loop timing, and the MQTT publisher against a real Mosquitto."""
from __future__ import annotations

import io
import json
import math
import time

import numpy as np
import pytest
from mqtt_helpers import subscribe, wait_until

from apps.common.events import EventWriter, Progress, jsonable
from apps.common.mqtt import MqttPublisher, MqttUrl
from apps.common.timing import LoopTimer, Samples


# ----- events ------------------------------------------------------------------------------
def test_event_lines_and_the_final_summary():
    out = io.StringIO()
    events = EventWriter(out)
    events.emit({"frame": 0, "t": np.float32(0.5), "boxes": np.arange(3), "ok": np.bool_(True)})
    events.summary({"frames": 1, "fps": float("nan")})
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines == [{"frame": 0, "t": 0.5, "boxes": [0, 1, 2], "ok": True}, {"summary": {"frames": 1, "fps": None}}]
    assert events.count == 2


def test_disabled_writer_writes_nothing():
    out = io.StringIO()
    EventWriter(out, enabled=False).emit({"a": 1})
    assert out.getvalue() == ""


def test_jsonable_dataclasses_and_tuples():
    from apps.common.timing import TimingSummary

    summary = LoopTimer().summary()
    assert isinstance(summary, TimingSummary)
    data = jsonable({"timing": summary, "size": (2, 3)})
    assert data["size"] == [2, 3] and data["timing"]["count"] == 0 and data["timing"]["latency_ms_p50"] is None
    json.dumps(data, allow_nan=False)


def test_progress_lines_are_rate_limited_and_on_their_stream():
    err = io.StringIO()
    progress = Progress("detect", interval_s=60, stream=err)
    progress.update("1 frame")
    progress.update("2 frames")  # within the interval: not shown
    progress.note("reconnecting")
    progress.done("3 frames")
    assert err.getvalue().splitlines() == ["detect: 1 frame", "detect: reconnecting", "detect: 3 frames"]


# ----- timing ------------------------------------------------------------------------------
def test_timer_figures_from_known_timestamps():
    timer = LoopTimer()
    # 101 results 10 ms apart, latency 1..101 ms; results 50 and 90 are past their deadline
    for i in range(101):
        t = 1.0 + 0.01 * i
        timer.record(t, latency_s=(i + 1) / 1000, deadline=t - 1e-6 if i in (50, 90) else t + 0.001)
    timer.drop(7)
    s = timer.summary()
    assert (s.count, s.dropped, s.missed) == (101, 7, 2)
    assert s.duration_s == pytest.approx(1.0)
    assert s.rate_hz == pytest.approx(100.0)
    assert s.latency_ms_p50 == pytest.approx(51.0)
    assert s.latency_ms_p99 == pytest.approx(np.percentile(np.arange(1, 102), 99))
    assert s.latency_ms_max == pytest.approx(101.0)
    assert s.interval_ms_mean == pytest.approx(10.0)
    assert s.jitter_ms == pytest.approx(0.0, abs=1e-6)


def test_timer_jitter_and_bounded_memory():
    timer = LoopTimer(window=100)
    t = 0.0
    for i in range(10_000):
        t += 0.009 if i % 2 else 0.011  # intervals alternate 9 and 11 ms: jitter 1 ms
        timer.record(t, latency_s=0.002 if i < 9_900 else 0.005)
    s = timer.summary()
    assert s.jitter_ms == pytest.approx(1.0, rel=1e-3)
    assert s.latency_ms_p50 == pytest.approx(5.0)  # percentiles cover the latest 100 only...
    assert s.latency_ms_mean == pytest.approx((9900 * 2 + 100 * 5) / 10_000)  # ...the mean all of them
    assert s.window == 100 and timer._latency.values.size == 100


def _rss_mib() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    pytest.skip("no /proc/self/status (not Linux): RSS cannot be read")


def test_timer_memory_is_resident_from_the_start():
    """A long run's RSS must not creep as the rings fill: their pages are taken when the timer
    is made (np.zeros would map them lazily, adding 8 bytes a sample: 16 MiB here)."""
    timer = LoopTimer(window=1 << 20)  # two rings of 8 MiB
    before = _rss_mib()
    for i in range(1 << 20):
        timer.record(i * 0.01, latency_s=0.002)
    assert _rss_mib() - before < 4  # was 16 MiB with lazily mapped rings


def test_samples_keep_exact_totals_and_windowed_percentiles():
    """What the control loop and the timers keep per tick: count, mean and max of every value,
    percentiles of the latest window only, in memory that does not grow."""
    samples = Samples(window=4)
    for value in (10.0, 1.0, 2.0, 3.0, 4.0):
        samples.add(value)
    assert len(samples) == 5 and samples.max == 10.0 and samples.mean == 4.0
    assert samples.percentile(50) == 2.5 and samples.values.size == 4  # 1, 2, 3, 4: the 10 left the window
    empty = Samples()
    assert math.isnan(empty.max) and math.isnan(empty.mean) and math.isnan(empty.percentile(99))
    with pytest.raises(ValueError, match="window must be >= 1"):
        Samples(window=0)


def test_empty_timer_is_all_nan_not_an_error():
    s = LoopTimer().summary()
    assert s.count == 0 and s.rate_hz == 0.0 and math.isnan(s.latency_ms_p50)


# ----- MQTT --------------------------------------------------------------------------------
@pytest.mark.parametrize("url, problem", [
    ("http://h/t", "scheme 'http'"),
    ("mqtt://h", "no topic"),
    ("mqtt:///t", "no host"),
    ("mqtt://h:x/t", "port"),
    ("mqtt://h/a/#", "wildcards"),
])
def test_bad_mqtt_urls_say_what_is_wrong(url, problem):
    with pytest.raises(ValueError, match=problem) as info:
        MqttUrl.parse(url)
    assert "mqtt://HOST[:PORT]/TOPIC" in str(info.value)


def test_mqtt_url_parts():
    assert MqttUrl.parse("mqtt://10.0.0.2/site/cam1") == MqttUrl("10.0.0.2", 1883, "site/cam1")


def test_publisher_delivers_to_a_real_broker(mosquitto):
    sub, received = subscribe(mosquitto.port, "cams/door/#")
    with MqttPublisher(f"{mosquitto.url}/cams/door") as pub:
        assert pub.wait_connected(10)
        assert pub.publish("event", {"event": "appear", "track_id": np.int64(3)})
        assert pub.publish("summary", {"frames": 10})
        assert wait_until(lambda: len(received) == 2)
    sub.loop_stop()
    sub.disconnect()
    assert received == [("cams/door/event", {"event": "appear", "track_id": 3}), ("cams/door/summary", {"frames": 10})]
    assert (pub.published, pub.failed) == (2, 0)


def test_publisher_without_broker_never_blocks_and_counts_failures(mosquitto):
    mosquitto.stop()
    pub = MqttPublisher(f"{mosquitto.url}/cams").start()
    try:
        start = time.monotonic()
        results = [pub.publish("event", {"i": i}) for i in range(200)]
        assert time.monotonic() - start < 0.5  # returns at once while the broker is away
        assert not any(results) and (pub.published, pub.failed) == (0, 200)
        mosquitto.start()  # the broker comes (back): paho's thread reconnects with back-off
        assert pub.wait_connected(15)
        sub, received = subscribe(mosquitto.port, "cams/#")
        assert pub.publish("event", {"i": "after"})
        assert wait_until(lambda: received == [("cams/event", {"i": "after"})])
        sub.loop_stop()
        sub.disconnect()
    finally:
        pub.close()
    assert pub.stats()["published"] == 1 and pub.stats()["failed"] == 200
