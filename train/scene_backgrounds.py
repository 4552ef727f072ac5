"""Where the built-in detection scenes (:mod:`train.scenes`) get their backgrounds: which photo or
video belongs to which split, how a source is read (scikit-image, scikit-learn, Debian's darknet
and opencv-doc packages) and how a random view of it is cut."""
from __future__ import annotations

import math
from pathlib import Path
from types import MappingProxyType
from typing import Sequence

import numpy as np

OPENCV_DOC = Path("/usr/share/doc/opencv-doc/examples/data")
DARKNET = Path("/usr/share/darknet/data")
# Each source is "library:name". Photos, not drawings; a video is one source (its frames are
# near-duplicates). Test and val each get a video, people/animals, a street, a grey photo.
SPLIT_BACKGROUNDS = MappingProxyType({
    "train": (
        "opencv-doc:Megamind.avi", "darknet:person.jpg", "darknet:horses.jpg", "darknet:kite.jpg",
        "darknet:scream.jpg", "skimage:astronaut", "skimage:rocket", "skimage:immunohistochemistry",
        "skimage:retina", "skimage:moon", "skimage:clock", "skimage:brick", "skimage:grass", "skimage:gravel",
        "skimage:text", "opencv-doc:aero1.jpg", "opencv-doc:apple.jpg", "opencv-doc:baboon.jpg",
        "opencv-doc:butterfly.jpg", "opencv-doc:leuvenA.jpg", "opencv-doc:orange.jpg",
        "opencv-doc:squirrel_cls.jpg", "opencv-doc:stuff.jpg", "opencv-doc:graf1.png",
        "opencv-doc:rubberwhale1.png", "opencv-doc:aloeL.jpg", "opencv-doc:board.jpg",
        "opencv-doc:licenseplate_motion.jpg", "opencv-doc:starry_night.jpg", "opencv-doc:basketball1.png",
        "opencv-doc:box_in_scene.png", "opencv-doc:ela_original.jpg",
    ),
    "val": (
        "opencv-doc:tree.avi", "darknet:giraffe.jpg", "sklearn:flower.jpg", "skimage:chelsea", "skimage:coins",
        "opencv-doc:messi5.jpg", "opencv-doc:home.jpg",
    ),
    "test": (
        "opencv-doc:vtest.avi", "darknet:dog.jpg", "darknet:eagle.jpg", "sklearn:china.jpg", "skimage:coffee",
        "skimage:camera", "skimage:hubble_deep_field", "opencv-doc:fruits.jpg", "opencv-doc:building.jpg",
    ),
})
VIDEO_FRAME_STEP = {"vtest.avi": 30, "Megamind.avi": 10, "tree.avi": 3}  # about 23-27 frames each


class ScenesError(ValueError):
    """Bad arguments, an existing output folder, or a background source that is not installed."""


def background_view(rng: np.random.Generator, frames: Sequence[np.ndarray], image_size: tuple[int, int]) -> np.ndarray:
    """A random crop of one of ``frames`` (area 30-100% of the largest crop of about the target
    aspect, aspect +-15%), resized to ``image_size`` (h, w), maybe flipped, slightly jittered."""
    import cv2

    frame = frames[int(rng.integers(len(frames)))]
    fh, fw = frame.shape[:2]
    aspect = image_size[1] / image_size[0] * math.exp(rng.uniform(-0.15, 0.15))
    ch, cw = (fh, fh * aspect) if fw / fh > aspect else (fw / aspect, fw)
    shrink = math.sqrt(rng.uniform(0.3, 1.0))
    ch, cw = max(8, int(ch * shrink)), max(8, int(cw * shrink))
    y0, x0 = int(rng.integers(0, fh - ch + 1)), int(rng.integers(0, fw - cw + 1))
    crop = frame[y0:y0 + ch, x0:x0 + cw]
    interp = cv2.INTER_AREA if ch > image_size[0] else cv2.INTER_LINEAR
    view = cv2.resize(crop, (image_size[1], image_size[0]), interpolation=interp).astype(np.float32)
    if rng.random() < 0.5:
        view = view[:, ::-1]
    contrast, brightness = rng.uniform(0.8, 1.2), rng.uniform(-20, 20)
    gains = rng.uniform(0.93, 1.07, size=3).astype(np.float32)
    view = (view - view.mean()) * contrast + view.mean() + brightness
    return np.clip(np.rint(view * gains), 0, 255).astype(np.uint8)


def load_background(source: str) -> list[np.ndarray]:
    """The BGR uint8 frames of one background source ("skimage:astronaut", "darknet:dog.jpg",
    "opencv-doc:vtest.avi" (every VIDEO_FRAME_STEP-th frame), "sklearn:china.jpg")."""
    import cv2

    from edge_runtime.deps import require

    library, _, name = source.partition(":")
    if library == "skimage":
        data = require("skimage", "the built-in detection scenes").data
        image = np.asarray(getattr(data, name)())
        return [cv2.cvtColor(image, cv2.COLOR_GRAY2BGR if image.ndim == 2 else cv2.COLOR_RGB2BGR)]
    if library == "sklearn":
        datasets = require("sklearn", "the built-in detection scenes").datasets
        path, package = Path(datasets.__file__).parent / "images" / name, "scikit-learn"
    elif library in ("darknet", "opencv-doc"):
        path, package = (DARKNET if library == "darknet" else OPENCV_DOC) / name, library
    else:
        raise ScenesError(f"background source {source!r}: unknown library {library!r}")
    if not path.is_file():
        hint = f"apt-get install {package}" if package != "scikit-learn" else "pip install scikit-learn"
        raise ScenesError(f"{path}: background {source} is missing; install the package that ships it ({hint})")
    if path.suffix == ".avi":
        capture, frames, index = cv2.VideoCapture(str(path)), [], 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if index % VIDEO_FRAME_STEP[name] == 0:
                frames.append(frame)
            index += 1
        capture.release()
    else:
        frames = [image] if (image := cv2.imread(str(path), cv2.IMREAD_COLOR)) is not None else []
    if not frames:
        raise ScenesError(f"{path}: OpenCV decoded no image from background {source}; is the file complete?")
    return frames
