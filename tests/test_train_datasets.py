"""train.datasets: the IDX reader on small files written here, Fashion-MNIST from Debian's
dataset-fashion-mnist package when it is installed, and the Keras fallback's routing."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from train import datasets
from train.datasets import (
    FASHION_MNIST_DIR,
    FASHION_MNIST_FILES,
    FASHION_MNIST_LABELS,
    DatasetError,
    load_fashion_mnist,
    read_idx,
)

debian_files = pytest.mark.skipif(
    not all((FASHION_MNIST_DIR / name).is_file() for names in FASHION_MNIST_FILES.values() for name in names),
    reason=f"Debian's Fashion-MNIST files are not in {FASHION_MNIST_DIR} (apt-get install dataset-fashion-mnist)",
)


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    """An IDX file: 00 00, type code, dimension count, big-endian uint32 sizes, big-endian data."""
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    head = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return head + array.astype(dtype).tobytes()


def write_gz(path: Path, data: bytes) -> Path:
    path.write_bytes(gzip.compress(data))
    return path


IMAGES = np.arange(5 * 28 * 28, dtype=np.int64).reshape(5, 28, 28) % 256
LABELS = np.array([9, 0, 0, 3, 0])


def write_split(root: Path, split: str = "train", images: np.ndarray = IMAGES, labels: np.ndarray = LABELS) -> Path:
    image_name, label_name = FASHION_MNIST_FILES[split]
    write_gz(root / image_name, idx_bytes(images))
    write_gz(root / label_name, idx_bytes(labels))
    return root


def test_labels_are_the_ten_classes_in_order():
    assert len(FASHION_MNIST_LABELS) == 10
    assert (FASHION_MNIST_LABELS[0], FASHION_MNIST_LABELS[9]) == ("T-shirt/top", "Ankle boot")


@pytest.mark.parametrize(
    "code, values",
    [
        (0x08, np.array([[0, 255], [7, 128]])),  # unsigned bytes, as MNIST-style images use
        (0x09, np.array([-128, 127])),  # signed bytes
        (0x0B, np.array([-300, 300])),  # big-endian int16
        (0x0C, np.array([[-70000], [70000]])),  # big-endian int32
        (0x0D, np.array([1.5, -2.25])),  # big-endian float32
        (0x0E, np.array([1e-300, 3.0])),  # big-endian float64
    ],
)
def test_read_idx_types(tmp_path, code, values):
    arr = read_idx(write_gz(tmp_path / "a.gz", idx_bytes(values, code)))
    assert arr.shape == values.shape and np.array_equal(arr, values)
    assert arr.dtype.isnative


def test_read_idx_plain_file_and_limit(tmp_path):
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(idx_bytes(IMAGES))
    assert np.array_equal(read_idx(path, limit=2), IMAGES[:2])
    assert read_idx(path, limit=100).shape == (5, 28, 28)  # a limit past the end keeps all


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "not an IDX file (header empty)"),  # an empty file
        (b"\x1f\x8b\x08\x00junk", "not an IDX file"),  # a double-gzipped file
        (bytes([0, 0, 0x42, 1]) + b"\0\0\0\1x", "not an IDX file (header 00004201)"),  # unknown type code
        (bytes([0, 0, 8, 3]) + b"\0\0\0\1", "truncated IDX header; expected 3 dimension sizes"),  # short header
        (idx_bytes(IMAGES)[:-10], "only 3910 of 3920 data bytes"),  # data cut short
    ],
    ids=["empty", "double-gzip", "type-code", "short-header", "short-data"],
)
def test_read_idx_errors(tmp_path, data, message):
    path = write_gz(tmp_path / "bad.gz", data)
    with pytest.raises(DatasetError) as err:
        read_idx(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)


def test_read_idx_not_gzip(tmp_path):
    path = tmp_path / "raw.gz"
    path.write_bytes(idx_bytes(LABELS))  # named .gz but not compressed
    with pytest.raises(DatasetError, match="raw.gz: cannot read it as a gzipped IDX file"):
        read_idx(path)


@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("limit, n", [(None, 5), (2, 2), (50, 5)])  # all, the first two, more than there is
def test_load_from_a_folder(tmp_path, split, limit, n):
    images, labels = load_fashion_mnist(split, limit, root=write_split(tmp_path, split))
    assert images.dtype == np.uint8 and images.shape == (n, 28, 28)
    assert labels.dtype == np.int64 and labels.tolist() == LABELS[:n].tolist()
    assert np.array_equal(images, IMAGES[:n])


@pytest.mark.parametrize(
    "setup, kwargs, error, message",
    [
        # a split that does not exist
        (None, dict(split="val"), ValueError, r"split must be one of \['test', 'train'\], got 'val'"),
        # a limit of zero
        (None, dict(limit=0), ValueError, "limit must be at least 1"),
        # an explicit folder without the files: never downloads
        (lambda d: d, dict(), DatasetError,
         r"train files \['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'\] are missing"),
        # only the images
        (lambda d: write_gz(d / "t10k-images-idx3-ubyte.gz", idx_bytes(IMAGES)).parent, dict(split="test"),
         DatasetError, r"\['t10k-labels-idx1-ubyte.gz'\] are missing"),
        # fewer labels than images
        (lambda d: write_split(d, labels=LABELS[:4]), dict(), DatasetError, "5 images but labels of shape \\(4,\\)"),
        # images of another size
        (lambda d: write_split(d, images=np.zeros((5, 32, 32))), dict(), DatasetError,
         r"uint8 of shape \[N, 28, 28\], got uint8 of shape \(5, 32, 32\)"),
        # a label past the ten classes
        (lambda d: write_split(d, labels=np.array([0, 1, 2, 3, 10])), dict(), DatasetError, "label 10 is out of range"),
    ],
)
def test_load_errors(tmp_path, setup, kwargs, error, message):
    root = setup(tmp_path) if setup else tmp_path
    with pytest.raises(error, match=message):
        load_fashion_mnist(root=root, **kwargs)


def test_falls_back_to_keras_only_without_the_debian_files(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "FASHION_MNIST_DIR", tmp_path / "absent")
    calls = []

    def fake_keras(split):
        calls.append(split)
        return IMAGES.astype(np.uint8), LABELS.astype(np.uint8)

    monkeypatch.setattr(datasets, "_download_with_keras", fake_keras)
    images, labels = load_fashion_mnist("test", limit=3)
    assert calls == ["test"] and images.shape == (3, 28, 28) and labels.dtype == np.int64
    with pytest.raises(DatasetError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist("test", download=False)
    assert calls == ["test"]


def test_no_download_when_the_debian_files_are_there(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "FASHION_MNIST_DIR", write_split(tmp_path))
    monkeypatch.setattr(datasets, "_download_with_keras", lambda split: pytest.fail("downloaded"))
    assert len(load_fashion_mnist("train")[0]) == 5


@debian_files
@pytest.mark.parametrize(
    "split, n, first_labels",
    [
        ("train", 60000, [9, 0, 0, 3, 0]),  # Ankle boot, T-shirt/top, T-shirt/top, Dress, T-shirt/top
        ("test", 10000, [9, 2, 1, 1, 6]),  # Ankle boot, Pullover, Trouser, Trouser, Shirt
    ],
)
def test_debian_fashion_mnist(split, n, first_labels):
    images, labels = load_fashion_mnist(split, limit=None if split == "test" else 1000)
    assert images.dtype == np.uint8 and images.shape[1:] == (28, 28)
    assert labels.dtype == np.int64 and labels[:5].tolist() == first_labels
    if split == "test":
        assert len(images) == n and np.bincount(labels).tolist() == [1000] * 10  # balanced classes
    assert 0 < images.mean() < 255


@debian_files
def test_debian_limit_reads_the_first_images():
    few, _ = load_fashion_mnist("train", limit=3)
    more, _ = load_fashion_mnist("train", limit=10)
    assert np.array_equal(few, more[:3])


@pytest.mark.parametrize("val_name", ["val", "valid", "validation"])
def test_classifier_folder_splits_under_each_validation_name(tmp_path, val_name):
    """An image-folder set with train/, a validation folder (Roboflow's folder export calls it
    valid/) and test/: each split is read from its own folder, none held out of train."""
    pytest.importorskip("tensorflow", reason="decoding image files needs TensorFlow")
    import cv2

    from train.classifier import load_classification_data
    from train.options import TrainOptions

    counts = {"train": 4, val_name: 2, "test": 3}
    for split, n in counts.items():
        for label in ("cat", "dog"):
            for i in range(n):
                path = tmp_path / "set" / split / label / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                assert cv2.imwrite(str(path), np.full((8, 8, 3), 40 * i, np.uint8))
    data = load_classification_data(TrainOptions(data=str(tmp_path / "set"), out=tmp_path / "run", input_size=(8, 8)))
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (8, 4, 6)
    assert list(data.labels) == ["cat", "dog"] and data.y_val.tolist() == [0, 0, 1, 1]


def test_classifier_folder_splits_number_classes_across_splits_and_need_training_images(tmp_path):
    """A test/ split without 'dog' keeps 'emu' at index 2, as the model trained on train/ numbers
    it; a class whose folder is only in test/ has no training images and is refused."""
    pytest.importorskip("tensorflow", reason="decoding image files needs TensorFlow")
    import cv2

    from train.classifier import load_classification_data
    from train.options import TrainOptions

    def write_set(root, layout):
        for split, classes in layout.items():
            for label, n in classes.items():
                for i in range(n):
                    path = root / split / label / f"{i}.png"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    assert cv2.imwrite(str(path), np.full((8, 8, 3), 30 * i, np.uint8))
        return TrainOptions(data=str(root), out=tmp_path / "run", input_size=(8, 8))

    data = load_classification_data(write_set(tmp_path / "a", {"train": {"cat": 2, "dog": 2, "emu": 2},
                                                                "test": {"cat": 1, "emu": 1}}))
    assert list(data.labels) == ["cat", "dog", "emu"] and data.y_test.tolist() == [0, 2]
    with pytest.raises(ValueError, match="class 'emu' has no training images; every class needs some"):
        load_classification_data(write_set(tmp_path / "b", {"train": {"cat": 2, "dog": 2}, "test": {"emu": 1}}))
    with pytest.raises(ValueError, match=r"has the splits \['test', 'val'\] but no train/"):
        load_classification_data(write_set(tmp_path / "c", {"val": {"cat": 1}, "test": {"cat": 1}}))
