"""Every frame source behind one string, as jetson-inference and Ultralytics' ``source=`` do.

    0, 1, /dev/video0           a camera (V4L2 on Linux: USB, CSI through v4l2), live
    rtsp://..., http://...      a network stream, live (reopened with back-off when it drops)
    clip.mp4                    a video file: every frame, in order; its end ends the run
    photo.jpg                   one image
    photos/, "photos/*.png"     a folder or a glob of images (sorted by name)

:func:`parse_source` checks the string and says in one line what is wrong; :func:`open_source`
returns a :class:`FrameSource` whose :meth:`~FrameSource.read` gives :class:`Frame` objects and
``None`` at the end. Live sources never end by themselves: a dropped stream is reopened after
0.5, 1, 2 ... up to 5 s, and :attr:`FrameSource.reconnects` counts the reopenings.
"""
from __future__ import annotations

import glob
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm")
STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://", "srt://")
OPEN_TIMEOUT_MS = 5000  # network streams: give up opening / reading after this long, then retry
READ_TIMEOUT_MS = 5000
BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 5.0)


class SourceError(ValueError):
    """A source string that names nothing readable; the message names it and what was expected."""


@dataclass(frozen=True)
class SourceSpec:
    """What a source string names. ``kind``: ``camera``, ``stream``, ``video`` or ``images``."""

    text: str
    kind: str
    target: int | str | tuple[str, ...]

    @property
    def live(self) -> bool:
        """Cameras and streams: process the newest frame, drop stale ones, reconnect."""
        return self.kind in ("camera", "stream")


@dataclass(frozen=True)
class Frame:
    """One captured frame: ``index`` counts from 0 over the run, ``t`` is the monotonic time of
    capture (seconds), ``name`` the image file for image sources."""

    index: int
    t: float
    image: np.ndarray
    name: str | None = None


def parse_source(text: str | int) -> SourceSpec:
    text = str(text).strip()
    if not text:
        raise SourceError("--source is empty; expected a camera index, /dev/videoN, a video or image file, "
                          "a folder, a glob or an rtsp:// / http:// URL")
    if text.isdigit():
        return SourceSpec(text, "camera", int(text))
    if text.lower().startswith(STREAM_SCHEMES):
        return SourceSpec(text, "stream", text)
    if text.startswith("/dev/video"):
        if not os.path.exists(text):
            raise SourceError(f"--source {text}: no such camera device (is the camera plugged in? `ls /dev/video*`)")
        return SourceSpec(text, "camera", text)
    path = Path(text).expanduser()
    if any(c in text for c in "*?["):
        matches = tuple(sorted(p for p in glob.glob(str(path)) if p.lower().endswith(IMAGE_SUFFIXES)))
        if not matches:
            raise SourceError(f"--source {text}: the pattern matches no image files ({', '.join(IMAGE_SUFFIXES)})")
        return SourceSpec(text, "images", matches)
    if path.is_dir():
        images = tuple(sorted(str(p) for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()))
        if not images:
            raise SourceError(f"--source {text}: the folder holds no image files ({', '.join(IMAGE_SUFFIXES)})")
        return SourceSpec(text, "images", images)
    if path.is_file():
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return SourceSpec(text, "images", (str(path),))
        return SourceSpec(text, "video", str(path))
    if path.exists():
        raise SourceError(f"--source {text}: not a regular file or folder")
    raise SourceError(f"--source {text}: no such file, folder, camera index or URL "
                      "(expected e.g. 0, /dev/video0, clip.mp4, photos/, 'photos/*.jpg', rtsp://host/stream)")


class FrameSource:
    """Reads frames from a :class:`SourceSpec`. Not thread-safe: one reader thread.

    ``stop()`` (from any thread) ends a reconnect wait and makes :meth:`read` return None."""

    def __init__(self, spec: SourceSpec, loop: bool = False):
        if loop and spec.live:
            raise SourceError(f"--loop replays files and image folders; {spec.text} is live")
        self.spec, self.loop = spec, loop
        self.loops = 0  # times a looping file or folder started again
        self.reconnects = 0
        self._unreadable: set[str] = set()  # images of a folder or glob that OpenCV could not read
        self.read_failures = 0
        self.fps: float | None = None  # the source's own frame rate, when it says
        self.frame_size: tuple[int, int] | None = None  # (height, width) of the first frame
        self._index = 0
        self._capture = None
        self._stop = threading.Event()
        self._on_note = None

    # ----- opening -----------------------------------------------------------------------
    def open(self) -> "FrameSource":
        """Open now and fail with a one-line error if the source cannot be read at all."""
        if self.spec.kind == "images":
            return self
        self._capture = self._open_capture()
        if self._capture is None:
            what = {"camera": "a camera OpenCV can open (V4L2)", "stream": "a stream OpenCV's FFmpeg backend can open",
                    "video": "a video file OpenCV can decode"}[self.spec.kind]
            raise SourceError(f"--source {self.spec.text}: cannot be opened; expected {what}")
        fps = self._capture.get(_cv2().CAP_PROP_FPS)
        self.fps = float(fps) if fps and 0 < fps < 1000 else None
        return self

    def _open_capture(self):
        cv2 = _cv2()
        if self.spec.kind == "camera":
            capture = cv2.VideoCapture(self.spec.target)
        elif self.spec.kind == "stream":
            capture = cv2.VideoCapture(self.spec.target, cv2.CAP_FFMPEG,
                                       [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS,
                                        cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS])
        else:
            capture = cv2.VideoCapture(self.spec.target, cv2.CAP_FFMPEG)
        if not capture.isOpened():
            capture.release()
            return None
        return capture

    @property
    def skipped(self) -> int:
        """Images of a folder or glob that OpenCV could not read, each counted once."""
        return len(self._unreadable)

    @property
    def frames_read(self) -> int:
        """The next frame's index: frames delivered so far, and images skipped as unreadable."""
        return self._index

    def on_note(self, callback) -> None:
        """``callback(text)`` for reconnect notes (the CLI prints them on stderr)."""
        self._on_note = callback

    def _note(self, text: str) -> None:
        if self._on_note is not None:
            self._on_note(text)

    # ----- reading -----------------------------------------------------------------------
    def read(self) -> Frame | None:
        """The next frame, or None at the end (or after :meth:`stop`)."""
        if self._stop.is_set():
            return None
        if self.spec.kind == "images":
            return self._read_image()
        image = None
        if self._capture is not None:
            ok, image = self._capture.read()
            image = image if ok else None
        if image is None and self.spec.live:
            image = self._reconnect()
        elif image is None and self.loop and self._index > 0:  # start the file again
            self._capture.release()
            self._capture = self._open_capture()
            self.loops += 1
            ok, image = self._capture.read() if self._capture is not None else (False, None)
            image = image if ok else None
        if image is None:
            return None
        return self._frame(image)

    def _frame(self, image: np.ndarray, name: str | None = None) -> Frame:
        frame = Frame(self._index, time.monotonic(), image, name)
        if self.frame_size is None:
            self.frame_size = image.shape[:2]
        self._index += 1
        return frame

    def _read_image(self) -> Frame | None:
        """The next image of a file, folder or glob. One that OpenCV cannot read is skipped, counted
        once in ``skipped`` and named in a note (a looping source passes over it quietly after
        that), so one bad file does not end the run (nor lose its summary and saved video); when
        none of them can be read, that is an error."""
        paths = self.spec.target
        bad_in_a_row = 0
        while True:
            if self._index >= len(paths) and not self.loop:
                return None
            if self._index and self._index % len(paths) == 0:
                self.loops += 1
            path = paths[self._index % len(paths)]
            image = None if path in self._unreadable else _cv2().imread(path, _cv2().IMREAD_COLOR)
            if image is not None:
                return self._frame(image, path)
            if len(paths) == 1:
                raise SourceError(f"--source {self.spec.text}: {path} is not an image OpenCV can read")
            self._index += 1
            bad_in_a_row += 1
            if bad_in_a_row >= len(paths):
                raise SourceError(f"--source {self.spec.text}: none of its {len(paths)} images is one OpenCV "
                                  f"can read")
            if path not in self._unreadable:
                self._unreadable.add(path)
                self._note(f"skipped {path}: not an image OpenCV can read ({self.skipped} skipped so far)")

    def _reconnect(self) -> np.ndarray | None:
        """Reopen a dropped live source with back-off until a frame arrives or stop()."""
        self.read_failures += 1
        attempt = 0
        while not self._stop.is_set():
            if self._capture is not None:
                self._capture.release()
                self._capture = None
            delay = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
            self._note(f"{self.spec.text} dropped; reopening in {delay:g} s")
            if self._stop.wait(delay):
                return None
            attempt += 1
            capture = self._open_capture()
            if capture is None:
                continue
            ok, image = capture.read()
            if ok:
                self._capture = capture
                self.reconnects += 1
                self._note(f"{self.spec.text} reconnected ({self.reconnects} so far)")
                return image
            capture.release()
        return None

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def __enter__(self) -> "FrameSource":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()


def open_source(text: str | int, loop: bool = False) -> FrameSource:
    """Parse and open a source string (see the module docstring); ``loop`` replays a file or a
    folder endlessly (a kiosk, a demo, a soak test)."""
    return FrameSource(parse_source(text), loop).open()


def _cv2():
    from edge_runtime import deps

    return deps.require("cv2", "reading cameras, streams and videos")
