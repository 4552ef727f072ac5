"""Frames -> model inputs with OpenCV, following the model's Preprocess recipe exactly."""
from __future__ import annotations

import numpy as np
import pytest

from apps.camera.preprocess import image_layout, pixel_codes, prepare, quantized_pixels
from edge_runtime.metadata import Preprocess
from edge_runtime.tensors import Quantization, TensorSpec

pytest.importorskip("cv2")

NHWC = TensorSpec("image", (1, 64, 96, 3), np.dtype(np.float32))
NCHW = TensorSpec("image", (1, 3, 64, 96), np.dtype(np.float32))


def frame_with_block(h=150, w=400, box=(100, 30, 300, 120)):
    frame = np.zeros((h, w, 3), np.uint8)
    frame[:] = (255, 0, 0)  # blue in BGR
    x1, y1, x2, y2 = box
    frame[y1:y2, x1:x2] = (0, 0, 255)  # a red block
    return frame, np.array(box, float)


def found_block(x):
    """Bounds of the pixels where red dominates, in input pixels (x1, y1, x2, y2)."""
    red = (x[0, :, :, 0] > 0.8) & (x[0, :, :, 2] < 0.2)
    ys, xs = np.nonzero(red)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], float)


@pytest.mark.parametrize("resize", ["letterbox", "stretch"])
def test_the_block_lands_where_the_geometry_says(resize):
    frame, box = frame_with_block()
    pre = Preprocess(kind="image", color="rgb", scale=1 / 255, resize=resize)
    x, geometry = prepare(frame, NHWC, pre)
    assert x.shape == (1, 64, 96, 3) and x.dtype == np.float32
    np.testing.assert_allclose(found_block(x), geometry.to_input(box), atol=1.0)  # bilinear edges: 1 px
    np.testing.assert_allclose(geometry.to_image(geometry.to_input(box)), box, atol=1e-9)
    if resize == "letterbox":  # 400x150 -> 96x36, centred: 14 rows of grey above, 14 below
        assert (geometry.resized_h, geometry.resized_w, geometry.pad_top) == (36, 96, 14.0)
        np.testing.assert_allclose(x[0, :14], 114 / 255, atol=1e-6)
        np.testing.assert_allclose(x[0, 50:], 114 / 255, atol=1e-6)
    else:
        assert (geometry.scale_x, geometry.scale_y) == (96 / 400, 64 / 150)
    np.testing.assert_allclose(x[0, geometry.resized_h // 2 + int(geometry.pad_top), 1], [0, 0, 1], atol=1e-6)


def test_bgr_order_normalization_and_nchw():
    frame, _ = frame_with_block()
    pre = Preprocess(kind="image", color="bgr", scale=1 / 127.5, mean=(1.0,), resize="stretch")
    x, _ = prepare(frame, NCHW, pre)
    assert x.shape == (1, 3, 64, 96)
    np.testing.assert_allclose(x[0, :, 0, 0], [1.0, -1.0, -1.0])  # blue first, in [-1, 1]


def test_gray_and_bgra_frames_are_accepted():
    pre = Preprocess(kind="image", resize="stretch")
    assert prepare(np.zeros((20, 30), np.uint8), NHWC, pre)[0].shape == (1, 64, 96, 3)
    assert prepare(np.zeros((20, 30, 4), np.uint8), NHWC, pre)[0].shape == (1, 64, 96, 3)


@pytest.mark.parametrize("shape, expected", [
    ((1, 64, 96, 3), ("NHWC", 64, 96, 3)),
    ((1, 3, 64, 96), ("NCHW", 64, 96, 3)),
    ((1, 28, 28, 1), ("NHWC", 28, 28, 1)),
])
def test_image_layouts(shape, expected):
    assert image_layout(TensorSpec("x", shape, np.dtype(np.float32))) == expected


@pytest.mark.parametrize("shape", [(1, 1000), (1, -1, -1, 3), (1, 64, 96, 5)])
def test_non_image_inputs_are_refused_with_the_shape(shape):
    with pytest.raises(ValueError, match=r"model input 'x' has shape"):
        image_layout(TensorSpec("x", shape, np.dtype(np.float32)))


def test_size_mismatch_between_metadata_and_model_is_an_error():
    with pytest.raises(ValueError, match=r"metadata preprocess size \(32, 32\) does not match"):
        prepare(np.zeros((10, 10, 3), np.uint8), NHWC, Preprocess(kind="image", size=(32, 32)))


@pytest.mark.parametrize("dtype, scale, zero", [(np.uint8, 1 / 128, 128), (np.int8, 1 / 128, 0)])
def test_quantized_inputs_take_pixels_as_codes(dtype, scale, zero):
    """SSD MobileNet's quantized input: the integer code is the pixel (int8: pixel - 128)."""
    spec = TensorSpec("x", (1, 8, 8, 3), np.dtype(dtype), Quantization((scale,), (zero,)))
    pre = quantized_pixels(spec)
    pixels = np.array([0, 128, 255], np.float32)
    codes = spec.quantization.quantize(pre.normalize(pixels), dtype).astype(int)
    offset = 0 if dtype == np.uint8 else 128
    assert codes.tolist() == (pixels - offset).astype(int).tolist()
    assert quantized_pixels(NHWC) is None


@pytest.mark.parametrize("dtype, shape, color, mean, std, scale, zero, kind", [
    (np.int8, (1, 64, 96, 3), "rgb", (0.0,), (1.0,), 1 / 255, -128, "flip"),  # edgepilot's int8 detector
    (np.uint8, (1, 64, 96, 3), "rgb", (0.0,), (1.0,), 1 / 255, 0, "same"),
    (np.uint8, (1, 64, 96, 3), "bgr", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 0.0186, 114, "per-channel"),
    (np.int8, (1, 3, 64, 96), "rgb", (127.5,), (127.5,), 0.0079, 3, "shared"),  # NCHW
    (np.int8, (1, 64, 96, 1), "gray", (0.5,), (0.25,), 0.0157, -1, "shared"),
])
def test_a_quantized_input_gets_the_codes_run_would_compute(dtype, shape, color, mean, std, scale, zero, kind):
    """prepare() looks the codes up in a table, or for the usual recipes takes the pixel bits
    as they are or flips the top one; either way they equal what Model.run makes of the float
    tensor (same recipe, the model's scale and zero point), pixel for pixel."""
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (150, 200, 3), dtype=np.uint8)
    before = frame.copy()
    quant = Quantization((scale,), (zero,))
    spec = TensorSpec("image", shape, np.dtype(dtype), quant)
    pre = Preprocess(kind="image", color=color, scale=1 / 255 if mean[0] < 1 else 1.0, mean=mean, std=std,
                     resize="letterbox")
    assert pixel_codes(pre, spec, shape[1] if shape[1] in (1, 3) else shape[3]).kind == kind
    codes, geometry = prepare(frame, spec, pre)
    assert np.array_equal(frame, before)  # the caller's frame is left alone
    floats, same_geometry = prepare(frame, TensorSpec("image", shape, np.dtype(np.float32)), pre)
    assert codes.dtype == dtype and codes.shape == shape and geometry == same_geometry
    assert np.array_equal(codes, quant.quantize(floats, np.dtype(dtype)))
    assert len(np.unique(codes)) > 20  # the table spreads the pixels over many codes


def test_a_frame_that_is_not_uint8_gets_floats_for_a_quantized_input():
    """The code table covers uint8 pixels only: a float frame is normalized as floats, and
    Model.run quantizes it."""
    spec = TensorSpec("image", (1, 8, 8, 3), np.dtype(np.int8), Quantization((1 / 255,), (-128,)))
    pre = Preprocess(kind="image", scale=1 / 255, resize="stretch")
    x, _ = prepare(np.full((16, 16, 3), 255.0, np.float32), spec, pre)
    assert x.dtype == np.float32 and np.allclose(x, 1.0)
    codes, _ = prepare(np.full((16, 16, 3), 255, np.uint8), spec, pre)
    assert codes.dtype == np.int8 and (codes == 127).all()
