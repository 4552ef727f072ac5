"""Outputs for fleets and headless devices: MQTT to a real Mosquitto, and the MJPEG page in a
real headless Chromium."""
from __future__ import annotations

import json
import shutil
import threading
import time
import urllib.request

import numpy as np
import pytest

from conftest import free_port, require_system

cv2 = pytest.importorskip("cv2")


@pytest.fixture(scope="module")
def model(asset):
    return str(asset("blazeface_short_range.tflite"))


def test_mqtt_appear_leave_and_summaries_reach_a_real_broker(model, face_video, mosquitto):
    import paho.mqtt.client as mqtt

    from apps.camera import DetectOptions, run

    received, ready = [], threading.Event()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    sub.on_connect = lambda c, u, f, rc, p: c.subscribe("site/cam1/#")
    sub.on_subscribe = lambda c, u, mid, rc, p: ready.set()
    sub.on_message = lambda c, u, m: received.append((m.topic, json.loads(m.payload)))
    sub.connect("127.0.0.1", mosquitto.port)
    sub.loop_start()
    try:
        assert ready.wait(10)
        # summary_every_s=0: a summary after every frame as well as the final one
        summary = run(model, str(face_video), DetectOptions(mqtt=f"{mosquitto.url}/site/cam1", summary_every_s=0.0,
                                                           progress=False))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(p["stopped"] for t, p in received if t.endswith("summary")):
            time.sleep(0.05)
    finally:
        sub.loop_stop()
        sub.disconnect()
    events = [(p["event"], p["track_id"], p["frame"], p["label"]) for t, p in received if t == "site/cam1/event"]
    assert events == [("appear", 1, 2, "face"), ("leave", 1, 40, "face")]
    summaries = [p for t, p in received if t == "site/cam1/summary"]
    assert len(summaries) >= 40 and summaries[-1]["frames"] == 45 and summaries[-1]["stopped"] == "end"
    assert all(p["stopped"] is None for p in summaries[:-1])  # periodic ones: still running
    assert summary.mqtt["failed"] == 0 and summary.mqtt["published"] == len(received)


def test_mqtt_broker_away_does_not_stop_detection(model, face_video, mosquitto):
    from apps.camera import DetectOptions, run

    mosquitto.stop()
    summary = run(model, str(face_video), DetectOptions(mqtt=f"{mosquitto.url}/site/cam1", progress=False))
    assert summary.frames == 45 and summary.mqtt["published"] == 0 and summary.mqtt["failed"] >= 3


@pytest.fixture
def chrome():
    require_system(shutil.which("chromium") is not None and shutil.which("chromedriver") is not None,
                   "headless Chromium and its driver (Debian packages chromium, chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1000,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def test_served_page_in_a_real_browser(model, face_video, chrome, mjpeg_stream, tmp_path):
    """Chromium loads the page, MJPEG frames arrive in the <img>, the detections table fills,
    and a screenshot shows the video (not a blank page). The source is live (ffmpeg streaming
    the face video in real time, looping), as on a headless device with a camera."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from apps.camera import DetectOptions, run

    stream = mjpeg_stream(face_video).start()
    port = free_port()
    stop, result = threading.Event(), {}
    options = DetectOptions(serve=f"127.0.0.1:{port}", progress=False)

    def serve():
        result["summary"] = run(model, stream.url, options, stop=stop)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/status.json", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        chrome.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(chrome, 20)
        wait.until(lambda d: d.execute_script(
            "const i = document.getElementById('video'); return i.complete && i.naturalWidth > 0;"))
        assert chrome.execute_script("return document.getElementById('video').naturalWidth") == 640
        wait.until(lambda d: "FPS" in d.find_element(By.ID, "status").text)
        status = chrome.find_element(By.ID, "status").text
        assert status.startswith("frame ") and "objects" in status
        # the table lists the face while it is in view (30 of every 45 frames)
        wait.until(lambda d: "face" in d.find_element(By.ID, "dets").text)
        path = tmp_path / "page.png"
        chrome.save_screenshot(str(path))
        shot = cv2.imread(str(path))
        video = chrome.find_element(By.ID, "video")
        r = video.rect
        ratio = shot.shape[1] / chrome.execute_script("return window.innerWidth")
        crop = shot[int(r["y"] * ratio):int((r["y"] + r["height"]) * ratio), int(r["x"] * ratio):int((r["x"] + r["width"]) * ratio)]
        assert crop.size > 0 and crop.std() > 20  # a photo and grey, not an empty box
        assert np.abs(shot.astype(int) - shot[0, 0].astype(int)).sum(axis=2).mean() > 5
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive() and result["summary"].served.startswith("http://127.0.0.1:")
