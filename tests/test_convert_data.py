"""convert.data: calibration / evaluation data from real files written here (PNG, BMP and GIF
encoded by hand, JPEG with TensorFlow, WAV with the stdlib) and from arrays and callables."""
from __future__ import annotations

import importlib.util
import struct
import wave
import zlib
from pathlib import Path

import numpy as np
import pytest

from convert.data import (
    DEFAULT_CALIBRATION_SAMPLES,
    DEFAULT_EVAL_SAMPLES,
    DataError,
    Dataset,
    load_dataset,
)
from edge_runtime.metadata import Preprocess

needs_tf = pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None,
                              reason="decoding image files needs TensorFlow (not installed here)")

# ---------------------------------------------------------------------------------------------
# file writers


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def png_bytes(pixels: np.ndarray) -> bytes:
    """8-bit grayscale ([H, W]) or RGB ([H, W, 3]) PNG."""
    height, width = pixels.shape[:2]
    color_type = 0 if pixels.ndim == 2 else 2
    raw = b"".join(b"\0" + pixels[r].tobytes() for r in range(height))  # filter type 0 per row
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(raw))
            + _png_chunk(b"IEND", b""))


def bmp_bytes(rgb: np.ndarray) -> bytes:
    """24-bit bottom-up BMP of an [H, W, 3] image."""
    height, width, _ = rgb.shape
    pad = b"\0" * ((-width * 3) % 4)
    rows = b"".join(rgb[r, :, ::-1].tobytes() + pad for r in range(height - 1, -1, -1))
    return (b"BM" + struct.pack("<IHHI", 54 + len(rows), 0, 0, 54)
            + struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(rows), 2835, 2835, 0, 0) + rows)


def gif_bytes(gray: np.ndarray) -> bytes:
    """GIF of an [H, W] uint8 image with a gray palette; LZW without compression: 9-bit literal
    codes and a clear code every 254 pixels, so the code width never grows."""
    height, width = gray.shape
    flat = gray.ravel().tolist()
    codes = [c for start in range(0, len(flat), 254) for c in [256] + flat[start:start + 254]] + [257]
    bits = nbits = 0
    out = bytearray()
    for code in codes:
        bits |= code << nbits
        nbits += 9
        while nbits >= 8:
            out.append(bits & 0xFF)
            bits, nbits = bits >> 8, nbits - 8
    if nbits:
        out.append(bits)
    blocks = b"".join(bytes([len(out[i:i + 255])]) + out[i:i + 255] for i in range(0, len(out), 255)) + b"\0"
    palette = bytes(v for i in range(256) for v in (i, i, i))
    return (b"GIF89a" + struct.pack("<HHBBB", width, height, 0xF7, 0, 0) + palette
            + b"," + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x08" + blocks + b";")


def jpeg_bytes(rgb: np.ndarray) -> bytes:
    import tensorflow as tf

    return tf.io.encode_jpeg(rgb, quality=100).numpy()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_wav(path: Path, samples: np.ndarray, rate_hz: int, width: int = 2) -> Path:
    """PCM WAV of float samples in [-1, 1], [frames] or [frames, channels], ``width`` bytes each."""
    frames = samples.reshape(len(samples), -1)
    full = 2.0 ** (8 * width - 1)
    ints = np.clip(np.round(frames * full), -full, full - 1).astype(np.int64)
    if width == 1:
        raw = (ints + 128).astype(np.uint8).tobytes()
    elif width == 3:
        raw = b"".join(int(v).to_bytes(3, "little", signed=True) for v in ints.ravel())
    else:
        raw = ints.astype(f"<i{width}").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(frames.shape[1])
        w.setsampwidth(width)
        w.setframerate(rate_hz)
        w.writeframes(raw)
    return path


def float_wav_bytes(samples: np.ndarray, rate_hz: int) -> bytes:
    """IEEE-float (format 3) WAV, which the loader does not read."""
    data = samples.astype("<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, rate_hz, rate_hz * 4, 4, 32)
    return (b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data)) + b"WAVE" + b"fmt "
            + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data)


GRAY = np.arange(4 * 6, dtype=np.uint8).reshape(4, 6) * 10  # 0..230, 4 x 6
RGB = np.random.default_rng(0).integers(0, 256, (4, 6, 3), dtype=np.uint8)

# ---------------------------------------------------------------------------------------------
# Dataset


def test_defaults_are_the_documented_sample_counts():
    assert (DEFAULT_CALIBRATION_SAMPLES, DEFAULT_EVAL_SAMPLES) == (200, 2000)


def make(n: int = 10, labeled: bool = True) -> Dataset:
    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    y = np.arange(n, dtype=np.int64) % 3 if labeled else None
    return Dataset(x, y, ("a", "b", "c") if labeled else (), "made")


@pytest.mark.parametrize(
    "n, size, lengths",
    [
        (10, 1, [1] * 10),  # one sample at a time, as a batch-1 model takes them
        (10, 4, [4, 4, 2]),  # the last batch is shorter
        (10, 5, [5, 5]),  # the size divides the length
        (10, 32, [10]),  # larger than the dataset: one batch
    ],
)
def test_batches_cover_every_sample_in_order(n, size, lengths):
    ds = make(n)
    batches = list(ds.batches(size))
    assert [len(b) for b in batches] == lengths
    assert np.array_equal(np.concatenate([b.x for b in batches]), ds.x)
    assert np.array_equal(np.concatenate([b.y for b in batches]), ds.y)
    assert all(b.labels == ds.labels and b.source == "made" for b in batches)


def test_batches_of_unlabeled_data_have_no_y():
    assert all(b.y is None for b in make(5, labeled=False).batches(2))


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError, match="batch size must be at least 1, got 0"):
        next(make().batches(0))


def test_take_is_a_deterministic_ordered_subset():
    ds = make(50)
    a, b, c = ds.take(10, seed=1), ds.take(10, seed=1), ds.take(10, seed=2)
    assert len(a) == 10 and np.array_equal(a.x, b.x)
    assert not np.array_equal(a.x, c.x)
    firsts = a.x[:, 0]
    assert np.all(np.diff(firsts) > 0)  # original order kept
    assert set(firsts // 2) <= set(range(50)) and np.array_equal(a.y, (firsts // 2).astype(np.int64) % 3)


@pytest.mark.parametrize("n", [10, 11, 1000])  # all of it, or more than there is
def test_take_everything_returns_the_dataset(n):
    ds = make(10)
    assert ds.take(n) is ds


def test_take_nothing_is_an_error():
    with pytest.raises(DataError, match="at least 1, got 0"):
        make().take(0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        # x of integers: load_dataset always makes float32
        (dict(x=np.zeros((2, 3), np.uint8)), "x must be a batch-first float32 numpy array"),
        # y of the wrong length
        (dict(x=np.zeros((2, 3), np.float32), y=np.zeros(3, np.int64)), "y has 3 labels but x has 2 samples"),
        # y as int32
        (dict(x=np.zeros((2, 3), np.float32), y=np.zeros(2, np.int32)), "y must be a 1-D int64 numpy array"),
        # a class index past the labels
        (dict(x=np.zeros((2, 3), np.float32), y=np.array([0, 2]), labels=("a", "b")),
         r"class index 2 is out of range for 2 labels \('a', 'b'\)"),
    ],
)
def test_dataset_is_validated_when_built(kwargs, message):
    with pytest.raises(DataError, match=message):
        Dataset(source="here", **kwargs)


# ---------------------------------------------------------------------------------------------
# arrays: .npy, .npz, callables


@pytest.mark.parametrize(
    "array_shape, input_shape, out_shape",
    [
        ((5, 8, 8, 3), (8, 8, 3), (5, 8, 8, 3)),  # exactly the model input
        ((5, 8, 8), (8, 8, 1), (5, 8, 8, 1)),  # a trailing channel of 1 is added
        ((5, 16), (-1,), (5, 16)),  # -1 matches any size
        ((5, 7, 4), (None, 4), (5, 7, 4)),  # and so does None
    ],
)
def test_npy_is_shaped_for_the_input(tmp_path, array_shape, input_shape, out_shape):
    values = np.random.default_rng(0).random(array_shape)  # float64 on disk
    np.save(tmp_path / "cal.npy", values)
    ds = load_dataset(tmp_path / "cal.npy", input_shape)
    assert ds.x.shape == out_shape and ds.x.dtype == np.float32
    assert np.allclose(ds.x.ravel(), values.ravel())
    assert ds.y is None and ds.labels == () and ds.source == str(tmp_path / "cal.npy")


def test_arrays_are_used_as_they_are_without_the_recipe(tmp_path):
    np.save(tmp_path / "x.npy", np.full((2, 3), 255, np.uint8))
    ds = load_dataset(tmp_path / "x.npy", (3,), Preprocess(kind="image", scale=1 / 255))
    assert np.all(ds.x == 255)


def test_npz_carries_labels(tmp_path):
    x = np.zeros((4, 3), np.float32)
    np.savez(tmp_path / "eval.npz", x=x, y=np.array([[0], [1], [2], [1]], np.uint8), labels=np.array(["a", "b", "c"]))
    ds = load_dataset(tmp_path / "eval.npz", (3,), what="evaluation")
    assert ds.y.tolist() == [0, 1, 2, 1] and ds.y.dtype == np.int64
    assert ds.labels == ("a", "b", "c")


def test_npz_without_y_is_unlabeled(tmp_path):
    np.savez(tmp_path / "cal.npz", x=np.ones((3, 2)))
    assert load_dataset(tmp_path / "cal.npz", (2,)).y is None


def samples_generator():
    for i in range(3):
        yield np.full((4, 4), i, np.float32)  # one sample, channel missing


@pytest.mark.parametrize(
    "fn, n, labeled",
    [
        (lambda: np.zeros((6, 4, 4, 1)), 6, False),  # one array, batch-first
        (lambda: (np.zeros((6, 4, 4)), np.arange(6) % 2), 6, True),  # an (x, y) tuple
        (samples_generator, 3, False),  # a generator of single samples
        (lambda: [np.zeros((2, 4, 4, 1)), np.zeros((3, 4, 4, 1))], 5, False),  # a list of batches
        (lambda: ([np.zeros((1, 4, 4, 1), np.float32)] for _ in range(4)), 4, False),  # representative-dataset style
    ],
)
def test_callable_sources(fn, n, labeled):
    ds = load_dataset(fn, (4, 4, 1))
    assert ds.x.shape == (n, 4, 4, 1) and ds.x.dtype == np.float32
    assert (ds.y is not None) is labeled
    assert ds.source.endswith("()")


def test_generator_values_are_kept_in_order():
    ds = load_dataset(samples_generator, (4, 4, 1))
    assert ds.x[:, 0, 0, 0].tolist() == [0, 1, 2] and ds.source == "samples_generator()"


@pytest.mark.parametrize("limit", [1, 7, 20])
def test_limit_on_arrays_equals_take(tmp_path, limit):
    np.save(tmp_path / "x.npy", np.arange(40, dtype=np.float32).reshape(20, 2))
    full = load_dataset(tmp_path / "x.npy", (2,))
    part = load_dataset(tmp_path / "x.npy", (2,), limit=limit, seed=3)
    assert np.array_equal(part.x, full.take(limit, seed=3).x) and len(part) == min(limit, 20)


# ---------------------------------------------------------------------------------------------
# errors: each names the source, what was expected and what arrived


def _npy(values):
    return lambda d: (np.save(d / "a.npy", values), d / "a.npy")[1]


def _npz(**arrays):
    return lambda d: (np.savez(d / "a.npz", **arrays), d / "a.npz")[1]


def _file(name, data=b"x"):
    return lambda d: write(d / name, data)


def _folder(*names):
    def build(d):
        (d / "data").mkdir()
        for name in names:
            write(d / "data" / name, b"x")
        return d / "data"

    return build


@pytest.mark.parametrize(
    "build, input_shape, messages",
    [
        # a path that is not there
        (lambda d: d / "nope", (3,), ["nope: no such file or folder", "expected a folder of images"]),
        # an empty folder
        (_folder(), (3,), ["the folder is empty", "in one sub-folder per class"]),
        # a folder with no supported files
        (_folder("notes.txt", "scores.csv"), (3,), ["has no supported files", ".png", "['.csv', '.txt']"]),
        # a file type we do not read
        (_file("data.csv"), (3,), ["unsupported file type '.csv'"]),
        # an empty array
        (_npy(np.zeros((0, 3))), (3,), ["holds no samples", "(0, 3)"]),
        # an array of another model's input
        (_npy(np.zeros((5, 28, 28))), (32, 32, 3),
         ["a.npy", "expected samples of shape (32, 32, 3)", "(N, 32, 32, 3)", "got an array of shape (5, 28, 28)"]),
        # an array of strings
        (_npy(np.array(["a", "b"])), (1,), ["expected a numeric array, got dtype <U1"]),
        # pickled objects are never loaded
        (_npy(np.array([{"a": 1}], dtype=object)), (1,), ["cannot read it as a NumPy .npy array", "allow_pickle"]),
        # not an .npy at all
        (_file("a.npy", b"not numpy"), (1,), ["a.npy: cannot read it as a NumPy .npy array"]),
        # an .npz without x
        (_npz(images=np.zeros((2, 3))), (3,), ["a.npz: the archive has no array 'x'", "['images']", "np.savez"]),
        # labels of the wrong length
        (_npz(x=np.zeros((4, 3)), y=np.zeros(3, int)), (3,), ["labels y has 3 entries but x has 4 samples"]),
        # one-hot labels
        (_npz(x=np.zeros((2, 3)), y=np.eye(2)), (3,), ["must be 1-D class indices", "y.argmax(axis=-1)"]),
        # regression targets instead of class indices
        (_npz(x=np.zeros((2, 3)), y=np.array([0.5, 1.0])), (3,), ["integer class indices, got dtype float64"]),
        # negative class indices
        (_npz(x=np.zeros((2, 3)), y=np.array([0, -1])), (3,), ["class indices >= 0, got -1"]),
        # y past the archive's labels
        (_npz(x=np.zeros((2, 3)), y=np.array([0, 5]), labels=np.array(["a", "b"])), (3,),
         ["class index 5 in y is out of range for the 2 labels"]),
        # NaN in the data
        (_npy(np.array([[0.0, np.nan], [np.inf, 1.0]])), (2,), ["2 values are NaN or infinite"]),
        # a .npy that is really an .npz
        (lambda d: (np.savez(d / "b.npz", x=np.zeros(1)), (d / "b.npz").rename(d / "b.npy"), d / "b.npy")[2], (1,),
         ["is an .npz archive, not a .npy array"]),
    ],
)
@pytest.mark.parametrize("what", ["calibration", "evaluation"])
def test_bad_sources_say_what_was_expected(tmp_path, build, input_shape, messages, what):
    path = build(tmp_path)
    with pytest.raises(DataError) as err:
        load_dataset(path, input_shape, what=what)
    text = str(err.value)
    assert text.startswith(f"{what} data {path}")
    for message in messages:
        assert message in text


@pytest.mark.parametrize(
    "fn, messages",
    [
        # a scalar
        (lambda: 3, ["returned a int", "expected an array, an (x, y) tuple or an iterable of arrays"]),
        # an empty iterable
        (lambda: iter(()), ["the iterable it returned was empty"]),
        # one item of the wrong shape
        (lambda: [np.zeros((4, 4)), np.zeros((5, 5))], ["item 1", "expected samples of shape (4, 4, 1)", "(5, 5)"]),
        # an (x, y) tuple with too few labels
        (lambda: (np.zeros((3, 4, 4)), np.array([0, 1])), ["labels y has 2 entries but x has 3 samples"]),
    ],
)
def test_bad_callables_say_what_was_expected(fn, messages):
    with pytest.raises(DataError) as err:
        load_dataset(fn, (4, 4, 1), what="evaluation")
    assert str(err.value).startswith("evaluation data ")
    for message in messages:
        assert message in str(err.value)


@pytest.mark.parametrize(
    "input_shape, message",
    [
        ((0, 3), "sizes must be positive"),  # a zero size
        (("a",), "must be a tuple of sizes"),  # not numbers
        (5, "must be a tuple of sizes"),  # not a tuple
    ],
)
def test_bad_input_shape(tmp_path, input_shape, message):
    np.save(tmp_path / "x.npy", np.zeros((1, 3)))
    with pytest.raises(DataError, match=message):
        load_dataset(tmp_path / "x.npy", input_shape)


def test_limit_must_be_positive(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 3)))
    with pytest.raises(DataError, match="at least 1, got 0"):
        load_dataset(tmp_path / "x.npy", (3,), limit=0)


# ---------------------------------------------------------------------------------------------
# image folders


@needs_tf
def test_labeled_image_folder_uses_sorted_subfolders_as_labels(tmp_path):
    write(tmp_path / "dog" / "1.png", png_bytes(GRAY))
    write(tmp_path / "cat" / "1.png", png_bytes(GRAY))
    write(tmp_path / "cat" / "nested" / "2.png", png_bytes(GRAY))  # searched recursively
    (tmp_path / "emu").mkdir()  # an empty class keeps its index
    (tmp_path / ".cache").mkdir()  # hidden folders are not classes
    write(tmp_path / "cat" / "notes.txt", b"ignored")
    ds = load_dataset(tmp_path, (4, 6, 1))
    assert ds.labels == ("cat", "dog", "emu")
    assert ds.y.tolist() == [0, 0, 1] and ds.x.shape == (3, 4, 6, 1)


@needs_tf
def test_pixels_are_normalized_with_the_recipe(tmp_path):
    write(tmp_path / "a.png", png_bytes(RGB))
    pre = Preprocess(kind="image", size=(4, 6), scale=1 / 255, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.5))
    ds = load_dataset(tmp_path, (4, 6, 3), pre)
    expected = (RGB / 255 - np.array([0.5, 0.4, 0.3])) / np.array([0.2, 0.25, 0.5])
    assert ds.y is None and ds.labels == ()
    assert np.allclose(ds.x[0], expected, atol=1e-5)


@needs_tf
def test_bgr_recipe_reverses_the_channels(tmp_path):
    write(tmp_path / "a.png", png_bytes(RGB))
    ds = load_dataset(tmp_path, (4, 6, 3), Preprocess(kind="image", color="bgr"))
    assert np.array_equal(ds.x[0], RGB[..., ::-1].astype(np.float32))


@needs_tf
@pytest.mark.parametrize(
    "name, encode, exact",
    [
        ("a.png", lambda: png_bytes(GRAY), True),  # grayscale PNG
        ("a.PNG", lambda: png_bytes(GRAY), True),  # suffixes are matched in any case
        ("a.gif", lambda: gif_bytes(GRAY), True),  # GIF: TensorFlow decodes it to RGB only
        ("a.bmp", lambda: bmp_bytes(np.repeat(GRAY[..., None], 3, -1)), True),  # BMP: likewise
        ("a.jpg", lambda: jpeg_bytes(np.repeat(GRAY[..., None], 3, -1)), False),  # JPEG is lossy
        ("a.jpeg", lambda: jpeg_bytes(np.repeat(GRAY[..., None], 3, -1)), False),  # the other JPEG suffix
    ],
)
@pytest.mark.parametrize("input_shape", [(4, 6, 1), (4, 6)])  # with and without a channel dimension
def test_every_image_format_reads_as_grayscale(tmp_path, name, encode, exact, input_shape):
    write(tmp_path / name, encode())
    ds = load_dataset(tmp_path, input_shape)
    assert ds.x.shape == (1, *input_shape)
    got = ds.x[0].reshape(4, 6)
    assert np.array_equal(got, GRAY) if exact else np.abs(got - GRAY).max() <= 8


@needs_tf
@pytest.mark.parametrize(
    "name, encode",
    [
        ("a.png", lambda: png_bytes(RGB)),  # RGB PNG
        ("a.bmp", lambda: bmp_bytes(RGB)),  # 24-bit BMP
        ("a.gif", lambda: gif_bytes(GRAY)),  # a gray GIF read as RGB
    ],
)
def test_every_image_format_reads_as_rgb(tmp_path, name, encode):
    write(tmp_path / name, encode())
    ds = load_dataset(tmp_path, (4, 6, 3))
    expected = np.repeat(GRAY[..., None], 3, -1) if name.endswith(".gif") else RGB
    assert np.array_equal(ds.x[0], expected)


@needs_tf
def test_images_are_resized_to_the_input(tmp_path):
    write(tmp_path / "big.png", png_bytes(np.full((40, 30, 3), 77, np.uint8)))
    write(tmp_path / "small.png", png_bytes(np.full((3, 5, 3), 77, np.uint8)))
    ds = load_dataset(tmp_path, (8, 8, 3))
    assert ds.x.shape == (2, 8, 8, 3) and np.allclose(ds.x, 77)


@needs_tf
def test_image_folder_reports_progress_and_limit_draws_files_like_take(tmp_path):
    for i in range(12):
        write(tmp_path / f"c{i % 3}" / f"{i:02d}.png", png_bytes(np.full((2, 2), i * 20, np.uint8)))
    calls = []
    part = load_dataset(tmp_path, (2, 2, 1), limit=5, seed=7, progress=lambda done, total: calls.append((done, total)))
    full = load_dataset(tmp_path, (2, 2, 1))
    assert calls == [(i, 5) for i in range(1, 6)]
    same = full.take(5, seed=7)
    assert np.array_equal(part.x, same.x) and np.array_equal(part.y, same.y)


@needs_tf
@pytest.mark.parametrize(
    "files, input_shape, pre, messages",
    [
        # a file that is not an image
        ({"bad.png": b"not a png"}, (4, 6, 1), None, ["cannot decode image", "bad.png"]),
        # images and WAV files together
        ({"a.png": png_bytes(GRAY), "b.wav": b""}, (4, 6, 1), None, ["both images (1) and WAV files (1)"]),
        # loose files beside class folders
        ({"a.png": png_bytes(GRAY), "cls/b.png": png_bytes(GRAY)}, (4, 6, 1), None,
         ["1 files at its top level and more in sub-folders"]),
        # RGBA models are not read from files
        ({"a.png": png_bytes(GRAY)}, (4, 6, 4), None, ["1 or 3 channels", "got (4, 6, 4)"]),
        # channels-first layout
        ({"a.png": png_bytes(GRAY)}, (3, 4, 6), None, ["(height, width, channels)", "got (3, 4, 6)"]),
        # sizes the model leaves open
        ({"a.png": png_bytes(GRAY)}, (-1, -1, 3), None, ["need a fixed model input shape", "(None, None, 3)"]),
        # a recipe made for another size
        ({"a.png": png_bytes(GRAY)}, (4, 6, 1), Preprocess(kind="image", size=(8, 8)),
         ["resizes to (8, 8) but the model input is (4, 6)"]),
        # per-channel mean on a grayscale input
        ({"a.png": png_bytes(GRAY)}, (4, 6, 1), Preprocess(kind="image", mean=(0.1, 0.2, 0.3)),
         ["mean has 3 values; expected 1 or 1"]),
        # a grayscale recipe on an RGB model
        ({"a.png": png_bytes(GRAY)}, (4, 6, 3), Preprocess(kind="image", color="gray"), ["recipe is grayscale"]),
        # an audio recipe on images
        ({"a.png": png_bytes(GRAY)}, (4, 6, 1), Preprocess(kind="audio", sample_rate_hz=16000),
         ["holds images but the preprocessing recipe is for audio"]),
    ],
)
def test_bad_image_folders(tmp_path, files, input_shape, pre, messages):
    for name, data in files.items():
        write(tmp_path / "imgs" / name, data)
    with pytest.raises(DataError) as err:
        load_dataset(tmp_path / "imgs", input_shape, pre, what="evaluation")
    assert str(err.value).startswith(f"evaluation data {tmp_path / 'imgs'}: ")
    for message in messages:
        assert message in str(err.value)


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
