"""Shared fixtures: real third-party models (fetched once into a cache, sha256-checked) and
tiny models the tests build themselves."""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import assets  # noqa: E402  (scripts/assets.py: the asset table and fetcher)

WAKE_WORDS = ("alexa", "hey_jarvis", "hey_mycroft", "okay_nabu")


def has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def require_system(present: bool, what: str) -> None:
    """Skip the calling test when a system part (a Debian package, a file it ships) is missing,
    naming it; but fail when the environment variable CI is set, since CI installs them all."""
    if present:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing, and CI (env CI is set) must have it")
    pytest.skip(f"{what} is missing")


@pytest.fixture(scope="session")
def asset():
    """``asset("silero_vad.onnx") -> Path``: a real model read out of a pinned wheel."""
    return assets.fetch


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """Tiny TFLite models built here with TensorFlow (skipped where TF is absent)."""
    if not has("tensorflow"):
        pytest.skip("building tiny models needs TensorFlow (not in this environment)")
    from tiny_models import build_all

    return build_all(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory):
    """Tiny ONNX models built with onnx.helper (no TensorFlow)."""
    if not has("onnx"):
        pytest.skip("building ONNX models needs the onnx package")
    from tiny_models import build_onnx

    return build_onnx(tmp_path_factory.mktemp("tiny_onnx"))


def free_port() -> int:
    """A TCP port free on loopback right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout_s: float = 10.0, host: str = "127.0.0.1") -> bool:
    import socket
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class Mosquitto:
    """A real Mosquitto broker on a free loopback port, stoppable and restartable by the test."""

    def __init__(self, folder: Path):
        self.port = free_port()
        self.config = folder / "mosquitto.conf"
        self.config.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self.process = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> "Mosquitto":
        import subprocess

        self.process = subprocess.Popen(["mosquitto", "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
        if not wait_for_port(self.port):
            self.stop()
            raise RuntimeError(f"mosquitto did not listen on 127.0.0.1:{self.port}")
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except Exception:
                self.process.kill()
                self.process.wait(5)
            self.process = None


@pytest.fixture
def mosquitto(tmp_path):
    """A running Mosquitto broker (``.url``, ``.port``, ``.stop()``, ``.start()``), stopped after the test."""
    import shutil

    require_system(shutil.which("mosquitto") is not None, "the MQTT broker 'mosquitto' (Debian package mosquitto)")
    broker = Mosquitto(tmp_path).start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def face_video(tmp_path_factory):
    """A real video file (MJPG .avi, 10 fps, 640x480) decoded by OpenCV: the astronaut's portrait
    (480x480) sliding right for 30 frames, then 15 frames of empty grey (the face leaves)."""
    cv2 = pytest.importorskip("cv2")
    data = pytest.importorskip("skimage.data")
    import numpy as np

    face = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (480, 480))
    path = tmp_path_factory.mktemp("video") / "face.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (640, 480))
    for i in range(45):
        frame = np.full((480, 640, 3), 128, np.uint8)
        if i < 30:
            x = 5 * i
            frame[:, x:x + 480] = face
        writer.write(frame)
    writer.release()
    return path


def _listening(port: int) -> bool:
    """True when a socket listens on TCP ``port`` (read from /proc/net/tcp, without connecting)."""
    try:
        rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(r.split()[1].endswith(f":{port:04X}") and r.split()[3] == "0A" for r in rows)


class FfmpegStream:
    """A live network camera stand-in: Debian's ffmpeg serving a video file as HTTP MJPEG in
    real time, looping, on a free loopback port; stop() kills it (the stream drops), start()
    brings it back on the same URL."""

    def __init__(self, video: Path):
        self.video, self.port, self.process = video, free_port(), None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> "FfmpegStream":
        import subprocess

        self.process = subprocess.Popen(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(self.video),
             "-c:v", "mjpeg", "-q:v", "5", "-f", "mpjpeg", "-listen", "1", self.url],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import time

        # not wait_for_port: ffmpeg -listen 1 serves exactly one client, and a probe would be it
        deadline = time.monotonic() + 10
        while not _listening(self.port):
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"ffmpeg did not listen on {self.url}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(5)
            self.process = None


@pytest.fixture
def mjpeg_stream():
    """``mjpeg_stream(video_path) -> FfmpegStream`` (not started), all stopped after the test."""
    import shutil

    require_system(shutil.which("ffmpeg") is not None, "ffmpeg (Debian package ffmpeg)")
    streams = []

    def make(video) -> FfmpegStream:
        streams.append(FfmpegStream(Path(video)))
        return streams[-1]

    yield make
    for stream in streams:
        stream.stop()


# ----- process exit ---------------------------------------------------------------------------
# With TensorFlow, LiteRT, ONNX Runtime and OpenCV all loaded in one process, glibc aborts in a
# library's static destructor after the last test ("free(): invalid pointer", exit 134), which
# turns a green run red. Once pytest has reported everything, leave without running those
# destructors, keeping pytest's own exit status.
_SESSION = {}


def pytest_sessionfinish(session, exitstatus):
    _SESSION["status"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    if "status" in _SESSION and not hasattr(config, "workerinput"):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_SESSION["status"])
