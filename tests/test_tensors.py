import numpy as np
import pytest

from edge_runtime import Quantization, TensorSpec


@pytest.mark.legacy
def test_quantize_dequantize_round_trip_within_half_a_step():
    q = Quantization((0.1019607856869697,), (-128,))  # the wake-word models' input quantization
    values = np.linspace(0, 26, 1000, dtype=np.float32)
    back = q.dequantize(q.quantize(values, np.int8))
    assert np.max(np.abs(back - values)) <= q.scale / 2 + 1e-6


@pytest.mark.legacy
def test_quantize_clips_to_the_dtype_range():
    q = Quantization((1.0,), (0,))
    assert q.quantize(np.array([-1000.0, 1000.0]), np.int8).tolist() == [-128, 127]
    assert q.quantize(np.array([-5.0, 300.0]), np.uint8).tolist() == [0, 255]


@pytest.mark.legacy
def test_per_axis_quantization_uses_one_scale_per_slice():
    q = Quantization((0.5, 2.0), (0, 1), axis=1)
    raw = np.array([[2, 3], [4, 5]], dtype=np.int8)
    assert q.dequantize(raw).tolist() == [[1.0, 4.0], [2.0, 8.0]]
    assert q.per_axis and "per-axis" in str(q)


@pytest.mark.legacy
@pytest.mark.parametrize(
    "spec_shape, shape, ok",
    [
        ((1, 3, 40), (1, 3, 40), True),
        ((1, 3, 40), (2, 3, 40), False),  # fixed batch
        ((-1, 3), (7, 3), True),  # open batch
        ((-1, 3), (7, 4), False),
        ((-1, 3), (3,), False),  # rank differs
    ],
)
def test_accepts_shape(spec_shape, shape, ok):
    spec = TensorSpec("x", spec_shape, np.dtype(np.float32))
    assert spec.accepts_shape(shape) is ok


@pytest.mark.legacy
@pytest.mark.parametrize("shape, mean, std", [
    ((1, 6, 5, 3), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # per channel (ImageNet's)
    ((6, 5, 3), (127.5,), (127.5,)),  # one value for all
    ((6, 5, 3), (1.0, 2.0, 3.0), (2.0,)),  # per-channel mean, one std
    ((6, 5, 1), (0.5,), (0.25,)),  # gray
    ((16,), (3.0,), (2.0,)),  # not an image
])
def test_normalize_equals_the_plain_expression_bit_for_bit(shape, mean, std):
    """Preprocess.normalize works in place for speed; its values are exactly
    ``(x * scale - mean) / std`` in float32, and the caller's array is left as it was."""
    from edge_runtime.metadata import Preprocess

    pre = Preprocess(scale=1 / 255, mean=mean, std=std)
    values = np.random.default_rng(1).uniform(0, 255, shape).astype(np.float32)
    before = values.copy()
    expected = (values * np.float32(pre.scale) - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    out = pre.normalize(values)
    assert out.dtype == np.float32 and out.shape == shape and np.array_equal(out, expected)
    assert np.array_equal(values, before)
    assert np.array_equal(pre.normalize(values.astype(np.uint8)),
                          (values.astype(np.uint8) * np.float32(pre.scale) - np.asarray(mean, np.float32))
                          / np.asarray(std, np.float32))


@pytest.mark.legacy
def test_normalize_of_a_transposed_or_fortran_array_is_normalized_too():
    """Arrays not in C order (a CHW image transposed to HWC, Fortran order) get the same values."""
    from edge_runtime.metadata import Preprocess

    pre = Preprocess(scale=1 / 255, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    hwc = np.random.default_rng(2).uniform(0, 255, (5, 6, 3)).astype(np.float32)
    expected = pre.normalize(hwc)
    assert np.array_equal(pre.normalize(np.ascontiguousarray(hwc.transpose(2, 0, 1)).transpose(1, 2, 0)), expected)
    assert np.array_equal(pre.normalize(np.asfortranarray(hwc)), expected)
    assert pre.normalize(np.zeros((0, 4, 3), np.float32)).shape == (0, 4, 3)
