"""convert.data: calibration / evaluation data from arrays, callables and image folders (real
files from tests/media_files.py). WAV folders, detection sets and Fashion-MNIST by name are in
test_convert_data_sources.py."""
from __future__ import annotations

import importlib.util

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
from media_files import bmp_bytes, gif_bytes, jpeg_bytes, png_bytes, write

needs_tf = pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None,
                              reason="decoding image files needs TensorFlow (not installed here)")


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
