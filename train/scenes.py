"""The built-in offline detection set: Fashion-MNIST items pasted onto real photographs.

``make_scenes(out_dir)`` (CLI: ``edgepilot data make-scenes --out DIR``) writes a YOLO-format
data set in Ultralytics' layout, for tests, the demo and the detector benchmark::

    DIR/data.yaml                 train: images/train, val: ..., test: ..., names: {0: Trouser, ...}
    DIR/images/<split>/00000.jpg  JPEG, quality 95 (OpenCV's default)
    DIR/labels/<split>/00000.txt  one "class cx cy w h" line per object, normalized, 6 decimals
    DIR/scenes.json               seed, counts, classes, background sources per split, version

How a scene is made (:func:`render_scene`, in :mod:`train.scene_render`): a random crop of a
background photo (random scale and aspect, resized to ``image_size``, random horizontal flip, slight colour jitter); then
``objects_per_image`` (1-6) Fashion-MNIST items of uniformly drawn classes, each recoloured (a
random hue times the item's own texture, a third of them with inverted brightness), scaled so
its longest side is uniform in ``object_size_px``, rotated by up to +-20 degrees and pasted
with a soft alpha mask at a random place fully inside the image. Later items may cover earlier
ones, but never so much that an earlier item keeps less than 60% of its area (the new item is
moved elsewhere, and after 20 tries left out): every labelled object is mostly visible and
nothing visible is unlabelled.

Exact boxes: a pixel belongs to object i when i contributes more than half of its final colour
(its alpha times the transparency of everything pasted above it is > ``VISIBLE_ALPHA`` = 0.5;
at most one object can own a pixel). A box is the tight box of the object's owned pixels, in
pixel edges (``x1 = last column + 1``), divided by the image size.

Splits never share a photo or an item: each background source belongs to one split
(:data:`SPLIT_BACKGROUNDS`; a video is one source), train scenes take items from Fashion-MNIST
train images 0-49999, val scenes from train images 50000-59999, test scenes from its test split.
Files are written by :mod:`train.detection_data` (``write_yolo_split``, ``write_data_yaml``:
no ``path`` key, so Ultralytics and edgepilot both take the yaml's folder as the root) and
read back by its ``load_detection_set``.
Deterministic: each image has its own ``numpy`` Generator seeded by (seed, split, index), so the
same arguments give byte-identical files, and changing one split's count leaves the others alone.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Callable, Mapping, Sequence

import numpy as np

from convert.files import usual_permissions
from train.datasets import FASHION_MNIST_LABELS, load_fashion_mnist
from train.scene_backgrounds import (  # noqa: F401  (re-exported: the scene maker's public names)
    DARKNET,
    OPENCV_DOC,
    SPLIT_BACKGROUNDS,
    VIDEO_FRAME_STEP,
    ScenesError,
    background_view,
    load_background,
)
from train.scene_render import (  # noqa: F401  (re-exported)
    MAX_ROTATION_DEG,
    MIN_VISIBLE,
    VISIBLE_ALPHA,
    RenderedScene,
    render_scene,
)

GENERATOR_VERSION = 1  # bump when the same seed would give different images
SPLITS = ("train", "val", "test")
DEFAULT_COUNTS = MappingProxyType({"train": 2000, "val": 200, "test": 200})
# Five visually distinct classes. T-shirt/Shirt/Pullover/Coat and Sandal/Sneaker are confused
# 10-25% of the time even by good 28x28 classifiers; a detection benchmark should measure
# finding and boxing objects, not the source data's label ambiguity. Any subset or order of
# FASHION_MNIST_LABELS may be passed as ``classes``; ids are 0..n-1 in the order given.
DEFAULT_CLASSES = ("Trouser", "Pullover", "Sneaker", "Bag", "Ankle boot")
_ITEM_POOLS = {"train": ("train", 0, 50000), "val": ("train", 50000, 60000), "test": ("test", 0, 10000)}

@dataclass(frozen=True)
class SceneSummary:
    """What :func:`make_scenes` wrote. Mappings are read-only; ``seconds`` is wall time."""

    out_dir: Path
    data_yaml: Path
    images: Mapping[str, int]  # split -> images
    boxes: Mapping[str, int]  # split -> labelled objects
    class_counts: Mapping[str, Mapping[str, int]]  # split -> class name -> objects
    backgrounds: Mapping[str, tuple[str, ...]]  # split -> background sources
    seconds: float

    def to_dict(self) -> dict:
        return {"out_dir": str(self.out_dir), "data_yaml": str(self.data_yaml), "images": dict(self.images),
                "boxes": dict(self.boxes), "class_counts": {s: dict(c) for s, c in self.class_counts.items()},
                "backgrounds": {s: list(b) for s, b in self.backgrounds.items()}, "seconds": round(self.seconds, 3)}

    def render(self) -> str:
        lines = [f"{self.data_yaml}  ({self.seconds:.1f} s)"]
        for split, n in self.images.items():
            lines.append(f"  {split:<5} {n:5d} images {self.boxes[split]:6d} boxes  "
                         f"{len(self.backgrounds[split])} background sources")
        return "\n".join(lines)


def _item_pools(splits: Sequence[str], label_ids: Sequence[int]) -> dict[str, list[np.ndarray]]:
    """split -> one array of 28x28 Fashion-MNIST items per class id, from that split's pool."""
    loaded, pools = {}, {}
    for split in splits:
        source, first, stop = _ITEM_POOLS[split]
        if source not in loaded:
            loaded[source] = load_fashion_mnist(source)
        images, labels = loaded[source][0][first:stop], loaded[source][1][first:stop]
        pools[split] = [images[labels == label] for label in label_ids]
    return pools


def _random_scene(rng, backgrounds, pools, image_size, objects_per_image, object_size_px) -> RenderedScene:
    """One scene: a view of a random background source, then 1..n items of random classes."""
    background = background_view(rng, backgrounds[int(rng.integers(len(backgrounds)))], image_size)
    wanted = int(rng.integers(objects_per_image[0], objects_per_image[1] + 1))
    ids = rng.integers(len(pools), size=wanted)
    items = [(int(c), pools[c][int(rng.integers(len(pools[c])))]) for c in ids]
    return render_scene(rng, background, items, object_size_px=object_size_px)


def _check_arguments(counts, image_size, classes, objects_per_image, object_size_px) -> list[int]:
    """Fashion-MNIST label ids of ``classes``, after checking every argument."""
    unknown = [c for c in counts if c not in SPLITS]
    bad = {s: n for s, n in counts.items() if not isinstance(n, (int, np.integer)) or n < 0}
    if unknown or bad or sum(counts.values()) == 0:
        raise ScenesError(f"counts={dict(counts)}: expected image counts >= 0 for splits among {list(SPLITS)}, "
                          f"not all zero")
    if not classes or len(set(classes)) != len(classes):
        raise ScenesError(f"classes={list(classes)}: expected one or more distinct Fashion-MNIST labels")
    missing = [c for c in classes if c not in FASHION_MNIST_LABELS]
    if missing:
        raise ScenesError(f"classes: unknown {missing}; Fashion-MNIST labels are {list(FASHION_MNIST_LABELS)}")
    lo, hi = objects_per_image
    if not 1 <= lo <= hi:
        raise ScenesError(f"objects_per_image={tuple(objects_per_image)}: expected (min, max) with 1 <= min <= max")
    if len(image_size) != 2 or min(image_size) < 32:
        raise ScenesError(f"image_size={tuple(image_size)}: expected (height, width), each >= 32 px")
    small, large = object_size_px
    # A square item rotated by MAX_ROTATION_DEG needs (cos + sin) times its side, plus a margin.
    rotated = large * (math.cos(math.radians(MAX_ROTATION_DEG)) + math.sin(math.radians(MAX_ROTATION_DEG))) + 5
    if not 4 <= small <= large or rotated > min(image_size):
        raise ScenesError(f"object_size_px={tuple(object_size_px)}: expected 4 <= min <= max and max rotated by "
                          f"{MAX_ROTATION_DEG:g} degrees ({rotated:.0f} px) within image_size {tuple(image_size)}")
    return [FASHION_MNIST_LABELS.index(c) for c in classes]


def _claim_out_dir(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ScenesError(f"{out_dir}: exists and is not a folder; choose another --out")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise ScenesError(f"{out_dir}: exists and is not empty; pass force=True (--force) to replace it")


def _swap_in(tmp: Path, out_dir: Path) -> None:
    """Move the finished ``tmp`` folder to ``out_dir``; an old ``out_dir`` is removed after."""
    old = None
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        os.replace(out_dir, old / "set")
    os.replace(tmp, out_dir)
    if old is not None:
        shutil.rmtree(old)


def make_scenes(out_dir: str | Path, *, seed: int = 0, counts: Mapping[str, int] = DEFAULT_COUNTS,
                image_size: tuple[int, int] = (240, 320), classes: Sequence[str] = DEFAULT_CLASSES,
                objects_per_image: tuple[int, int] = (1, 6), object_size_px: tuple[float, float] = (28, 110),
                force: bool = False, progress: Callable[[int, int], None] | None = None) -> SceneSummary:
    """Write the scene data set to ``out_dir`` (see the module docstring) and say what it holds.

    ``counts``: images per split (splits with 0 are not written and not in data.yaml);
    ``image_size``: (height, width); ``classes``: Fashion-MNIST labels, ids 0.. in this order;
    ``progress(done, total)`` is called after each image. The set is built in a temporary
    folder next to ``out_dir`` and moved into place when complete; an existing non-empty
    ``out_dir`` is replaced only with ``force``."""
    import cv2

    from train.detection_data import write_data_yaml, write_yolo_split

    start = time.perf_counter()
    out_dir = Path(out_dir)
    counts = dict(counts)
    image_size = tuple(int(v) for v in image_size)
    label_ids = _check_arguments(counts, image_size, classes, objects_per_image, object_size_px)
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ScenesError(f"seed={seed!r}: expected an integer >= 0")
    _claim_out_dir(out_dir, force)
    splits = [s for s in SPLITS if counts.get(s, 0) > 0]
    # Everything is read before anything is written: a missing package fails in seconds.
    backgrounds = {s: [load_background(source) for source in SPLIT_BACKGROUNDS[s]] for s in splits}
    pools = _item_pools(splits, label_ids)
    total, done = sum(counts[s] for s in splits), 0
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    usual_permissions(tmp)
    stats = {s: {"images": 0, "boxes": 0, "classes": {c: 0 for c in classes}} for s in splits}
    try:
        for split in splits:
            split_no = SPLITS.index(split)
            for index in range(counts[split]):
                rng = np.random.default_rng([seed, split_no, index])
                scene = _random_scene(rng, backgrounds[split], pools[split], image_size, objects_per_image,
                                      object_size_px)
                rgb = cv2.cvtColor(scene.image, cv2.COLOR_BGR2RGB)
                write_yolo_split(tmp, split, [(f"{index:05d}.jpg", rgb, scene.boxes_px, scene.class_ids)], classes)
                stats[split]["images"] += 1
                stats[split]["boxes"] += len(scene.class_ids)
                for c in scene.class_ids:
                    stats[split]["classes"][classes[c]] += 1
                done += 1
                if progress is not None:
                    progress(done, total)
        write_data_yaml(tmp, classes, splits)
        manifest = {
            "generator": "edgepilot.train.scenes", "version": GENERATOR_VERSION, "seed": seed,
            "counts": {s: counts[s] for s in splits}, "image_size_hw": list(image_size), "classes": list(classes),
            "fashion_mnist_labels": label_ids, "objects_per_image": list(objects_per_image),
            "object_size_px": list(object_size_px), "min_visible_fraction": MIN_VISIBLE,
            "visible_alpha": VISIBLE_ALPHA, "backgrounds": {s: list(SPLIT_BACKGROUNDS[s]) for s in splits},
            "items": {s: dict(zip(("fashion_mnist_split", "first", "stop"), _ITEM_POOLS[s])) for s in splits},
            "stats": stats,
        }
        (tmp / "scenes.json").write_text(json.dumps(manifest, indent=2) + "\n")
        _swap_in(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    ro = MappingProxyType
    return SceneSummary(
        out_dir=out_dir, data_yaml=out_dir / "data.yaml",
        images=ro({s: stats[s]["images"] for s in splits}), boxes=ro({s: stats[s]["boxes"] for s in splits}),
        class_counts=ro({s: ro(stats[s]["classes"]) for s in splits}),
        backgrounds=ro({s: tuple(SPLIT_BACKGROUNDS[s]) for s in splits}), seconds=time.perf_counter() - start,
    )


EXAMPLE = "edgepilot data make-scenes --out scenes --train 2000 --val 200 --test 200"


def add_parser(sub) -> None:
    """Register ``make-scenes`` on the ``data`` command's subparsers (argparse only)."""
    p = sub.add_parser("make-scenes", help="write the built-in YOLO-format detection set (offline)",
                       description=__doc__.split("\n\n")[0], epilog=f"example: {EXAMPLE}")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (must not exist or be empty)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0); same seed, same bytes")
    for split in SPLITS:
        p.add_argument(f"--{split}", type=int, default=DEFAULT_COUNTS[split], metavar="N",
                       help=f"{split} images (default {DEFAULT_COUNTS[split]})")
    p.add_argument("--classes", nargs="+", default=list(DEFAULT_CLASSES), metavar="LABEL",
                   help=f"Fashion-MNIST labels to paste (default: {' '.join(repr(c) for c in DEFAULT_CLASSES)})")
    p.add_argument("--force", action="store_true", help="replace an existing non-empty DIR")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    """``edgepilot data make-scenes``: progress on stderr, the summary on stdout."""
    import sys

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty() and (done % 50 == 0 or done == total):
            sys.stderr.write(f"\rmake-scenes {done}/{total}" + ("\n" if done == total else ""))
            sys.stderr.flush()

    summary = make_scenes(args.out, seed=args.seed, counts={s: getattr(args, s) for s in SPLITS},
                          classes=tuple(args.classes), force=args.force, progress=progress)
    print(json.dumps({"summary": summary.to_dict()}) if args.json else summary.render())
    return 0
