"""Where annotated frames go besides JSON: a video file (``--save``) and a window (``--show``)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from convert.files import usual_permissions

FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


class VideoRecorder:
    """Writes frames to ``path`` atomically: into a temporary file beside it, renamed into place
    by :meth:`close`, so a crash never leaves a half-written video under the asked name. Frames
    of another size (image folders) are resized to the first frame's size."""

    def __init__(self, path: str | os.PathLike, fps: float, force: bool = False):
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in FOURCC:
            raise ValueError(f"--save {self.path}: expected a video file ending in {', '.join(FOURCC)}")
        if self.path.exists() and not force:
            raise ValueError(f"--save {self.path}: the file exists; pass --force to overwrite it")
        if not self.path.parent.is_dir():
            raise ValueError(f"--save {self.path}: the folder {self.path.parent} does not exist")
        self.fps = float(fps)
        self.frames = 0
        self._writer = None
        self._size = None
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=suffix, dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(tmp)

    def write(self, image: np.ndarray) -> None:
        import cv2

        if self._writer is None:
            h, w = image.shape[:2]
            self._size = (w, h)
            self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*FOURCC[self.path.suffix.lower()]),
                                           self.fps, self._size)
            if not self._writer.isOpened():
                raise ValueError(f"--save {self.path}: OpenCV cannot write this kind of video here")
        if (image.shape[1], image.shape[0]) != self._size:
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(image)
        self.frames += 1

    def close(self) -> Path | None:
        """Finish the file and move it into place; None when no frame was written."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self.frames == 0:
            self._tmp.unlink(missing_ok=True)
            return None
        usual_permissions(self._tmp)
        os.replace(self._tmp, self.path)
        return self.path

    def discard(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        self._tmp.unlink(missing_ok=True)


class Window:
    """``--show``: an OpenCV window, only where there is a display and a GUI build of OpenCV."""

    NAME = "edgepilot detect"

    def __init__(self):
        import cv2

        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise ValueError("--show needs a display (DISPLAY is not set); on a headless device use "
                             "--serve 0.0.0.0:8080 and open the page in a browser")
        try:
            cv2.namedWindow(self.NAME, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise ValueError("--show: this OpenCV has no GUI (opencv-python-headless); install opencv-python, or "
                             "use --serve HOST:PORT") from None
        self.closed = False

    def show(self, image: np.ndarray) -> bool:
        """False once the user pressed q or Esc."""
        import cv2

        cv2.imshow(self.NAME, image)
        key = cv2.waitKey(1) & 0xFF
        self.closed = key in (ord("q"), 27)
        return not self.closed

    def close(self) -> None:
        import cv2

        cv2.destroyWindow(self.NAME)
