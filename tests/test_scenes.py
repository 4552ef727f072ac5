"""train.scenes: the built-in detection set. Boxes are re-derived here from each object's own
alpha (not from the scene maker's bookkeeping), files are read back with the YOLO reader,
and determinism is checked byte for byte. Real Fashion-MNIST items, real photos and videos
from Debian packages (skipped, or failed under CI, when those packages are missing)."""
from __future__ import annotations

import argparse
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import require_system

from train.datasets import FASHION_MNIST_DIR, FASHION_MNIST_FILES, load_fashion_mnist
from train.detection_data import load_detection_set
from train.scenes import (
    DARKNET,
    DEFAULT_CLASSES,
    MIN_VISIBLE,
    OPENCV_DOC,
    SPLIT_BACKGROUNDS,
    VISIBLE_ALPHA,
    ScenesError,
    add_parser,
    make_scenes,
    render_scene,
)

SMALL = {"train": 4, "val": 3, "test": 3}


@pytest.fixture(autouse=True)
def system_parts():
    fashion = all((FASHION_MNIST_DIR / n).is_file() for names in FASHION_MNIST_FILES.values() for n in names)
    require_system(fashion, f"Fashion-MNIST in {FASHION_MNIST_DIR} (apt-get install dataset-fashion-mnist)")
    require_system((DARKNET / "dog.jpg").is_file(), f"{DARKNET}/dog.jpg (apt-get install darknet)")
    require_system((OPENCV_DOC / "vtest.avi").is_file(), f"{OPENCV_DOC}/vtest.avi (apt-get install opencv-doc)")


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """A small set made once: (summary, folder, progress calls)."""
    calls = []
    out = tmp_path_factory.mktemp("scenes") / "set"
    summary = make_scenes(out, counts=SMALL, progress=lambda done, total: calls.append((done, total)))
    return summary, out, calls


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_each_box_is_the_tight_box_of_what_is_visible():
    """Crowded scenes (16 items of 80-110 px in 240x320) so that occlusion and refused places
    happen; ownership recomputed from the alphas: weight_i = alpha_i * prod_{j>i} (1 - alpha_j)."""
    items, labels = load_fashion_mnist("test", limit=300)
    fractions, kept = [], []
    for seed in range(6):
        rng = np.random.default_rng(seed)
        background = rng.integers(0, 256, size=(240, 320, 3), dtype=np.uint8)
        picks = rng.integers(len(items), size=16)
        scene = render_scene(rng, background, [(int(labels[i]), items[i]) for i in picks], object_size_px=(80, 110))
        n = len(scene.class_ids)
        assert 1 <= n <= 16 and scene.image.shape == background.shape and scene.image.dtype == np.uint8
        assert scene.alphas.shape == scene.visible_masks.shape == (n, 240, 320)
        assert set(scene.class_ids.tolist()) <= set(labels[picks].tolist())
        weights = scene.alphas.copy()
        for i in range(n):
            for j in range(i + 1, n):
                weights[i] *= 1.0 - scene.alphas[j]
        visible = weights > VISIBLE_ALPHA
        np.testing.assert_array_equal(visible, scene.visible_masks)
        assert visible.sum(axis=0).max() <= 1  # a pixel has at most one owner
        for i in range(n):
            ys, xs = np.nonzero(visible[i])
            assert tuple(scene.boxes_px[i]) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            fractions.append(visible[i].sum() / (scene.alphas[i] > VISIBLE_ALPHA).sum())
        untouched = scene.alphas.sum(axis=0) == 0
        np.testing.assert_array_equal(scene.image[untouched], background[untouched])
        assert not np.array_equal(scene.image[~untouched], background[~untouched])
        kept.append(n)
    assert min(fractions) >= MIN_VISIBLE
    assert min(fractions) < 0.9  # some object was partly covered: the check above was exercised
    assert min(kept) < 16  # some item found no place and was left out


def test_progress_files_and_read_back(scenes):
    summary, out, calls = scenes
    assert calls == [(k, sum(SMALL.values())) for k in range(1, sum(SMALL.values()) + 1)]
    assert summary.data_yaml == out / "data.yaml" and dict(summary.images) == SMALL
    manifest = json.loads((out / "scenes.json").read_text())
    assert manifest["seed"] == 0 and manifest["classes"] == list(DEFAULT_CLASSES)
    assert manifest["backgrounds"] == {s: list(SPLIT_BACKGROUNDS[s]) for s in SMALL}
    for split, count in SMALL.items():
        images = sorted((out / "images" / split).iterdir())
        assert [p.name for p in images] == [f"{i:05d}.jpg" for i in range(count)]
        for label_file in (out / "labels" / split).iterdir():
            for line in label_file.read_text().splitlines():
                c, *xywh = line.split()
                assert 0 <= int(c) < len(DEFAULT_CLASSES)
                assert all(len(v.split(".")[1]) == 6 and 0 < float(v) <= 1 for v in xywh), line
        data = load_detection_set(out / "data.yaml", split=split)
        assert data.names == DEFAULT_CLASSES and len(data) == count
        assert data.num_boxes == summary.boxes[split] == manifest["stats"][split]["boxes"] >= count
        assert data.class_counts() == dict(summary.class_counts[split])
        assert all(size == (240, 320) for size in data.sizes)
        assert data.read_image(0).shape == (240, 320, 3)


def test_splits_share_no_background_and_no_item():
    sources = {s: set(SPLIT_BACKGROUNDS[s]) for s in SPLIT_BACKGROUNDS}
    assert not sources["train"] & sources["val"] and not sources["train"] & sources["test"]
    assert not sources["val"] & sources["test"]
    # the same photo under two names (e.g. a file in two packages) would also be a leak
    from train.scenes import load_background

    digests = {s: {hashlib.sha256(load_background(src)[0].tobytes()).hexdigest() for src in sources[s]}
               for s in sources}
    assert sum(map(len, digests.values())) == len(set.union(*digests.values()))
    from train.scenes import _ITEM_POOLS

    (train, a0, a1), (val, b0, b1) = _ITEM_POOLS["train"], _ITEM_POOLS["val"]
    assert train == val and a0 < a1 <= b0 < b1 and _ITEM_POOLS["test"][0] == "test"  # disjoint item ranges


def test_same_seed_same_bytes_and_splits_independent(scenes, tmp_path):
    summary, out, _ = scenes
    again = make_scenes(tmp_path / "again", counts=SMALL)
    assert files(again.out_dir) == files(out)
    # val made alone is the val of the full set: each image has its own seeded generator
    alone = make_scenes(tmp_path / "val-only", counts={"val": SMALL["val"]})
    assert {k: v for k, v in files(alone.out_dir).items() if "/val/" in k} == \
        {k: v for k, v in files(out).items() if "/val/" in k}
    other = make_scenes(tmp_path / "seed1", seed=1, counts={"val": SMALL["val"]})
    assert all(files(other.out_dir)[f"images/val/{i:05d}.jpg"] != files(out)[f"images/val/{i:05d}.jpg"]
               for i in range(SMALL["val"]))


def test_classes_map_to_their_items(tmp_path):
    """Trousers stand tall and sneakers lie flat even rotated by 20 degrees: ids follow ``classes``."""
    summary = make_scenes(tmp_path / "ts", counts={"val": 4}, classes=("Trouser", "Sneaker"))
    data = load_detection_set(summary.data_yaml, split="val")
    assert data.names == ("Trouser", "Sneaker")
    boxes, classes = np.concatenate(data.boxes), np.concatenate(data.classes)
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert set(classes.tolist()) == {0, 1}
    assert (h[classes == 0] > w[classes == 0]).all() and (w[classes == 1] > h[classes == 1]).all()


def test_refuses_an_existing_folder_without_force(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ScenesError, match=re.escape(f"{out}: exists and is not empty")):
        make_scenes(out, counts={"val": 1})
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    make_scenes(out, counts={"val": 1}, force=True)
    assert sorted(p.name for p in out.iterdir()) == ["data.yaml", "images", "labels", "scenes.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folders left behind


@pytest.mark.parametrize("kwargs, message", [
    ({"classes": ("Trouser", "Hat")}, r"unknown \['Hat'\]"),  # not a Fashion-MNIST label
    ({"classes": ("Bag", "Bag")}, "distinct"),
    ({"classes": ()}, "one or more"),
    ({"counts": {"train": 1, "holdout": 1}}, "splits among"),
    ({"counts": {"train": -1}}, "counts="),
    ({"counts": {"train": 0, "val": 0}}, "not all zero"),
    ({"objects_per_image": (0, 3)}, "objects_per_image"),
    ({"object_size_px": (28, 200)}, "within image_size"),  # 200 px rotated 20 degrees > 240 px
    ({"seed": -1}, "seed=-1"),  # numpy's seed sequences take non-negative integers
])
def test_bad_arguments_are_refused_before_anything_is_written(tmp_path, kwargs, message):
    with pytest.raises(ScenesError, match=message):
        make_scenes(tmp_path / "out", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_cli_parser_and_run(tmp_path, capsys, scenes):
    parser = argparse.ArgumentParser(prog="edgepilot data")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["make-scenes", "--out", str(tmp_path / "cli"), "--train", "0", "--val", "3",
                              "--test", "0", "--json"])
    assert args.func(args) == 0
    summary = json.loads(capsys.readouterr().out)["summary"]
    assert summary["images"] == {"val": 3} and summary["backgrounds"]["val"] == list(SPLIT_BACKGROUNDS["val"])
    assert files(tmp_path / "cli" / "images") == {k: v for k, v in files(scenes[1] / "images").items() if "val" in k}


def test_a_missing_system_photo_names_the_package(tmp_path, monkeypatch):
    import train.scene_backgrounds as backgrounds_module

    monkeypatch.setattr(backgrounds_module, "DARKNET", tmp_path)  # an empty folder: darknet not installed
    with pytest.raises(ScenesError, match=re.escape(f"{tmp_path / 'dog.jpg'}: background darknet:dog.jpg is missing")
                       + ".*apt-get install darknet"):
        backgrounds_module.load_background("darknet:dog.jpg")
    with pytest.raises(ScenesError, match="apt-get install darknet"):
        make_scenes(tmp_path / "out", counts={"test": 1})
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []
