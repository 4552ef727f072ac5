"""convert.data: calibration / evaluation data from WAV folders (real files from
tests/media_files.py), YOLO and COCO detection sets, and Fashion-MNIST by name."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from convert.data import DataError, Dataset, load_dataset
from edge_runtime.metadata import Preprocess
from media_files import float_wav_bytes, png_bytes, write, write_wav


# ---------------------------------------------------------------------------------------------
# WAV folders

AUDIO = Preprocess(kind="audio", sample_rate_hz=8000, num_samples=16)
RAMP = np.linspace(-0.5, 0.5, 16)


@pytest.mark.parametrize(
    "width, tolerance",
    [
        (1, 1 / 128),  # 8-bit unsigned
        (2, 1 / 32768),  # 16-bit
        (3, 1 / 8388608),  # 24-bit, packed
        (4, 1e-7),  # 32-bit
    ],
)
def test_pcm_widths_read_to_the_same_samples(tmp_path, width, tolerance):
    write_wav(tmp_path / "a.wav", RAMP, 8000, width)
    ds = load_dataset(tmp_path, (16,), AUDIO)
    assert ds.x.shape == (1, 16)
    assert np.abs(ds.x[0] - RAMP).max() <= tolerance


def test_stereo_is_mixed_to_mono(tmp_path):
    write_wav(tmp_path / "a.wav", np.stack([RAMP, -RAMP / 2], axis=1), 8000)
    ds = load_dataset(tmp_path, (16,), AUDIO)
    assert np.allclose(ds.x[0], RAMP / 4, atol=1e-4)


def test_other_rates_are_resampled_band_limited(tmp_path):
    """48 kHz -> 16 kHz keeps a 1 kHz tone and removes a 12 kHz one, which plain decimation or linear
    interpolation would fold onto 4 kHz at full strength (soxr, as the speech app resamples)."""
    t = np.arange(48000) / 48000
    write_wav(tmp_path / "a.wav", 0.5 * np.sin(2 * np.pi * 1000 * t) + 0.3 * np.sin(2 * np.pi * 12000 * t), 48000)
    ds = load_dataset(tmp_path, (16000,), Preprocess(kind="audio", sample_rate_hz=16000, num_samples=16000))
    spectrum = np.abs(np.fft.rfft(ds.x[0] * np.hanning(16000))) / (16000 / 4)  # 1 Hz bins; a sine of amplitude a -> a
    assert spectrum[1000] == pytest.approx(0.5, abs=0.02)
    assert spectrum[3990:4011].max() < 0.01  # where 12 kHz would alias


@pytest.mark.parametrize(
    "frames, expected",
    [
        (RAMP[:10], np.concatenate([RAMP[:10], np.zeros(6)])),  # short clips are zero-padded
        (np.concatenate([RAMP, RAMP]), RAMP),  # long clips are cut
    ],
)
def test_clips_are_fitted_and_reshaped(tmp_path, frames, expected):
    write_wav(tmp_path / "a.wav", frames, 8000)
    ds = load_dataset(tmp_path, (4, 4, 1), AUDIO)
    assert ds.x.shape == (1, 4, 4, 1)
    assert np.allclose(ds.x[0].ravel(), expected, atol=1e-4)


def test_wav_subfolders_are_labels(tmp_path):
    for word in ("yes", "no"):
        for i in range(2):
            write_wav(tmp_path / word / f"{i}.wav", RAMP, 8000)
    calls = []
    ds = load_dataset(tmp_path, (16,), AUDIO, progress=lambda *a: calls.append(a))
    assert ds.labels == ("no", "yes") and ds.y.tolist() == [0, 0, 1, 1]
    assert calls[-1] == (4, 4)


@pytest.mark.parametrize(
    "write_file, pre, messages",
    [
        # no sample rate to resample to
        (lambda p: write_wav(p, RAMP, 8000), None, ["WAV files need the model's sample rate"]),
        # clips longer than the input and no num_samples to cut them
        (lambda p: write_wav(p, RAMP, 8000), Preprocess(kind="audio", sample_rate_hz=8000),
         ["gives 16 samples at 8000 Hz but the model input (8,) holds 8", "num_samples=8"]),
        # an image recipe on audio
        (lambda p: write_wav(p, RAMP, 8000), Preprocess(kind="image"), ["recipe is for images"]),
        # IEEE-float WAV
        (lambda p: write(p, float_wav_bytes(RAMP, 8000)), AUDIO, ["cannot read WAV file", "expected uncompressed PCM"]),
        # not a WAV at all
        (lambda p: write(p, b"RIFF...."), AUDIO, ["cannot read WAV file"]),
    ],
)
def test_bad_wav_folders(tmp_path, write_file, pre, messages):
    write_file(tmp_path / "clips" / "a.wav")
    with pytest.raises(DataError) as err:
        load_dataset(tmp_path / "clips", (8,), pre)
    assert str(err.value).startswith(f"calibration data {tmp_path / 'clips'}: ")
    for message in messages:
        assert message in str(err.value)


def test_no_tensorflow_for_audio_and_arrays(tmp_path):
    """Run in a fresh interpreter: only the image branch may import TensorFlow."""
    import subprocess
    import sys

    write_wav(tmp_path / "wav" / "a.wav", RAMP, 8000)
    np.save(tmp_path / "x.npy", np.zeros((2, 3)))
    code = (
        "import sys; from convert.data import load_dataset; from edge_runtime.metadata import Preprocess\n"
        f"load_dataset({str(tmp_path / 'wav')!r}, (16,),\n"
        "             Preprocess(kind='audio', sample_rate_hz=8000, num_samples=16))\n"
        f"load_dataset({str(tmp_path / 'x.npy')!r}, (3,))\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
    )
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


# ---------------------------------------------------------------------------------------------
# detection sets (YOLO, COCO) and Fashion-MNIST by name

LETTERBOX = Preprocess(kind="image", size=(96, 128), scale=1 / 255, resize="letterbox")


def yolo_folder(root: Path, splits=("train", "test"), per_split: int = 3) -> Path:
    """A YOLO set of 40x60 PNGs (one box each, the last image of a split is background)."""
    from train.detection_data import write_data_yaml, write_yolo_split

    rng = np.random.default_rng(0)
    for split in splits:
        items = []
        for i in range(per_split):
            rgb = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
            boxes = np.array([[5 + i, 4, 30 + i, 36]]) if i < per_split - 1 else np.zeros((0, 4))
            items.append((f"{split}{i}.png", rgb, boxes, np.array([i % 2] * len(boxes))))
        write_yolo_split(root, split, items, ["cat", "dog"])
    return write_data_yaml(root, ["cat", "dog"], list(splits))


def test_yolo_set_as_calibration_data_for_a_letterboxed_input(tmp_path):
    from train.detection_data import fit_image, load_detection_set

    yaml_path = yolo_folder(tmp_path)
    calls = []
    ds = load_dataset(yaml_path, (96, 128, 3), LETTERBOX, progress=lambda *a: calls.append(a))
    truth = load_detection_set(yaml_path, split="train")  # calibration reads the training split
    assert ds.x.shape == (3, 96, 128, 3) and ds.y is None and ds.labels == ("cat", "dog")
    assert ds.source == str(yaml_path) and calls == [(1, 3), (2, 3), (3, 3)]
    assert ds.detections.split == "train" and ds.detections.images == truth.images
    assert all(np.array_equal(a, b) for a, b in zip(ds.detections.boxes, truth.boxes))
    for i, geometry in enumerate(ds.geometries):  # 40x60 -> 85x128 placed 5 rows down, grey above and below
        assert (geometry.pad_top, geometry.resized_h, geometry.resized_w) == (5, 85, 128)
        assert np.array_equal(ds.x[i], fit_image(truth.read_image(i), LETTERBOX)[0])
        assert np.allclose(ds.x[i, :5], 114 / 255) and np.allclose(ds.x[i, 90:], 114 / 255)
    # the folder holding data.yaml reads the same; evaluation takes the held-out split
    assert load_dataset(tmp_path, (96, 128, 3), LETTERBOX, what="evaluation").detections.split == "test"
    assert load_dataset(tmp_path, (96, 128, 3), LETTERBOX, what="evaluation", split="train").x.shape[0] == 3


def test_detection_set_limit_take_and_batches_keep_boxes_with_samples(tmp_path):
    yolo_folder(tmp_path, per_split=6)
    full = load_dataset(tmp_path, (24, 32, 1), Preprocess(kind="image", resize="letterbox"), what="evaluation")
    part = load_dataset(tmp_path, (24, 32, 1), Preprocess(kind="image", resize="letterbox"), limit=4, seed=5,
                        what="evaluation")
    same = full.take(4, seed=5)
    assert full.x.shape == (6, 24, 32, 1)  # one channel: read as grayscale
    assert np.array_equal(part.x, same.x) and part.detections.images == same.detections.images
    assert part.geometries == same.geometries and len(part.detections) == 4
    batches = list(full.batches(4))
    assert [len(b) for b in batches] == [4, 2] and batches[1].detections.images == full.detections.images[4:]
    assert batches[1].geometries == full.geometries[4:] and np.shares_memory(batches[1].x, full.x)
    with pytest.raises(DataError, match="6 samples but 5 detection entries and 6 geometries"):
        Dataset(full.x, None, full.labels, "s", full.detections.subset(range(5)), full.geometries)


def test_coco_folder_as_evaluation_data(tmp_path):
    import json

    import cv2

    (tmp_path / "val2017").mkdir()
    for i in (1, 2):
        cv2.imwrite(str(tmp_path / "val2017" / f"{i}.png"), np.full((20, 40, 3), 50 * i, np.uint8))
    (tmp_path / "annotations").mkdir()
    coco = {"images": [{"id": i, "file_name": f"{i}.png", "width": 40, "height": 20} for i in (1, 2)],
            "annotations": [{"id": 1, "image_id": 2, "category_id": 5, "bbox": [10, 2, 20, 10], "iscrowd": 0}],
            "categories": [{"id": 5, "name": "car"}]}
    (tmp_path / "annotations" / "instances_val2017.json").write_text(json.dumps(coco))
    ds = load_dataset(tmp_path, (10, 10, 3), Preprocess(kind="image", scale=0.5), what="evaluation")
    assert ds.x.shape == (2, 10, 10, 3) and np.allclose(ds.x[1], 50) and ds.labels == ("car",)
    assert ds.detections.split == "val2017" and ds.detections.boxes[1].tolist() == [[10, 2, 30, 12]]
    assert ds.geometries[0].to_input([[0, 0, 40, 20]]).tolist() == [[0, 0, 10, 10]]  # stretched
    with pytest.raises(DataError) as err:
        load_dataset(tmp_path, (10, 10, 3), split="val", what="evaluation")
    assert str(err.value) == (f"evaluation data {tmp_path}: {tmp_path}: has no split 'val'; its splits are "
                              f"['val2017']")
    with pytest.raises(DataError, match="for a COCO data set pass the folder that holds annotations/"):
        load_dataset(tmp_path / "annotations" / "instances_val2017.json", (10, 10, 3))


@pytest.mark.parametrize(
    "break_it, input_shape, pre, messages",
    [
        # a malformed label: the label file and line, after the data's own name
        (lambda d: (d / "labels" / "train" / "train0.txt").write_text("0 0.5 0.5 0.2\n"), (8, 8, 3), None,
         ["train0.txt line 1: expected 5 fields"]),
        # no data.yaml: images/ and labels/ are not two classes
        (lambda d: (d / "data.yaml").unlink(), (8, 8, 3), None, ["holds images/ and labels/ as a YOLO data set does"]),
        # an input that is not an image
        (lambda d: None, (8, 8, 4), None, ["1 or 3 channels", "got (8, 8, 4)"]),
        # a recipe made for another size
        (lambda d: None, (8, 8, 3), Preprocess(kind="image", size=(16, 16)), ["resizes to (16, 16)"]),
        # open sizes
        (lambda d: None, (None, None, 3), None, ["need a fixed model input shape"]),
    ],
)
def test_bad_detection_data(tmp_path, break_it, input_shape, pre, messages):
    yolo_folder(tmp_path)
    break_it(tmp_path)
    with pytest.raises(DataError) as err:
        load_dataset(tmp_path, input_shape, pre)
    assert str(err.value).startswith(f"calibration data {tmp_path}: ") and "\n" not in str(err.value)
    for message in messages:
        assert message in str(err.value)


def test_only_split_data_takes_a_split(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 3)))
    with pytest.raises(DataError, match=r"x.npy: has no splits, so split='test' cannot be chosen"):
        load_dataset(tmp_path / "x.npy", (3,), split="test")
    def samples():
        return np.zeros((2, 3))

    with pytest.raises(DataError, match=r"evaluation data .*samples\(\): has no splits, so split='train'"):
        load_dataset(samples, (3,), what="evaluation", split="train")


def _fashion_mnist_files():
    """Debian's dataset-fashion-mnist: skipped where it is missing, a failure in CI."""
    import os

    from train.datasets import FASHION_MNIST_DIR, FASHION_MNIST_FILES

    missing = [n for names in FASHION_MNIST_FILES.values() for n in names if not (FASHION_MNIST_DIR / n).is_file()]
    if missing:
        message = (f"Fashion-MNIST files {missing} are not in {FASHION_MNIST_DIR} "
                   f"(apt-get install dataset-fashion-mnist)")
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)


@pytest.mark.parametrize("what, split", [("evaluation", "test"), ("calibration", "train")])
def test_fashion_mnist_by_name(what, split):
    _fashion_mnist_files()
    from train.datasets import FASHION_MNIST_LABELS, load_fashion_mnist
    from train.recipes import FASHION_MNIST_METADATA

    ds = load_dataset("fashion-mnist", (28, 28, 1), FASHION_MNIST_METADATA.preprocess, limit=5, seed=3, what=what)
    images, labels = load_fashion_mnist(split)
    index = np.sort(np.random.default_rng(3).choice(len(images), size=5, replace=False))  # as take(5, seed=3)
    assert ds.x.shape == (5, 28, 28, 1) and ds.x.dtype == np.float32 and ds.source == "fashion-mnist"
    assert np.allclose(ds.x[..., 0], images[index] / 255) and ds.y.tolist() == labels[index].tolist()
    assert ds.labels == FASHION_MNIST_LABELS


def test_fashion_mnist_errors():
    _fashion_mnist_files()
    with pytest.raises(DataError, match=r"evaluation data fashion-mnist: has no split 'val'; its splits are"):
        load_dataset("fashion-mnist", (28, 28, 1), what="evaluation", split="val")
    with pytest.raises(DataError, match=r"shape \(32, 32, 3\).*got an array of shape \(2, 28, 28\)"):
        load_dataset("fashion-mnist", (32, 32, 3), limit=2)


def test_no_tensorflow_for_detection_sets_and_fashion_mnist(tmp_path):
    """Run in a fresh interpreter: detection sets are read with OpenCV, Fashion-MNIST with gzip."""
    import subprocess
    import sys

    yolo_folder(tmp_path)
    code = (
        "import sys; from convert.data import load_dataset; from edge_runtime.metadata import Preprocess\n"
        f"load_dataset({str(tmp_path)!r}, (16, 16, 3), Preprocess(kind='image', resize='letterbox'))\n"
        "from train.datasets import FASHION_MNIST_DIR\n"
        "if FASHION_MNIST_DIR.is_dir(): load_dataset('fashion-mnist', (28, 28), limit=3)\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
    )
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


# ---------------------------------------------------------------------------------------------
# image folders in splits (train/ val/ test/ of class folders), as `edgepilot train classifier` reads them

def split_image_folder(root: Path, layout: dict[str, dict[str, int]]) -> Path:
    """split -> class -> images; each image's gray level tells its split and class apart."""
    for s, (split, classes) in enumerate(layout.items()):
        for c, (name, n) in enumerate(classes.items()):
            for i in range(n):
                write(root / split / name / f"{i}.png", png_bytes(np.full((4, 6), 10 * s + 40 * c + i, np.uint8)))
    return root


def test_split_image_folders_pick_the_split_and_number_classes_across_splits(tmp_path):
    """Calibration reads train/, evaluation test/ (else the validation folder, whichever of val/,
    valid/ or validation/ is there); a split that lacks a class numbers the others as train/ does;
    and a folder of that layout is never read as classes named 'train' and 'test'."""
    pytest.importorskip("tensorflow", reason="decoding image files needs TensorFlow")
    root = split_image_folder(tmp_path / "set", {"train": {"cat": 2, "dog": 1, "emu": 1},
                                                 "valid": {"dog": 1}, "test": {"cat": 1, "emu": 2}})
    calib = load_dataset(root, (4, 6, 1))
    assert calib.labels == ("cat", "dog", "emu") and calib.y.tolist() == [0, 0, 1, 2]
    assert calib.source == str(root / "train")
    test = load_dataset(root, (4, 6, 1), what="evaluation")
    assert test.labels == ("cat", "dog", "emu") and test.y.tolist() == [0, 2, 2]  # emu stays 2 without a dog
    assert test.source == str(root / "test")
    val = load_dataset(root, (4, 6, 1), what="evaluation", split="val")  # finds valid/
    assert val.y.tolist() == [1] and val.source == str(root / "valid")
    with pytest.raises(DataError, match=r"set: has no split 'dev'; its splits are \['test', 'train', 'valid'\]"):
        load_dataset(root, (4, 6, 1), split="dev")
    only_train = split_image_folder(tmp_path / "t", {"train": {"cat": 1}})
    (only_train / "test" / "cat").mkdir(parents=True)  # an empty split is passed over
    with pytest.raises(DataError, match=r"has the splits \['test', 'train'\], none of them with files for evaluation"):
        load_dataset(only_train, (4, 6, 1), what="evaluation")
    (root / "__MACOSX").mkdir()  # anything else beside the splits would become a class: refused
    with pytest.raises(DataError, match=r"set: holds the splits test/, train/, valid/ and also \['__MACOSX'\]"):
        load_dataset(root, (4, 6, 1))
