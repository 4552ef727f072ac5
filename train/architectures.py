"""Model builders: a small MobileNet-style classifier and a single-shot detector, both designed to
stay accurate in int8 and to run where the int8 model goes (XNNPACK, the Edge TPU).

Each builder takes the Keras module to build with (``keras`` for training, ``tf_keras`` for
quantization-aware training: tfmot only wraps tf_keras models) and returns a functional model.
Layer names are fixed so that weights move between the two by name.

Choices made for int8, in one place:

* ReLU6, not swish/GELU: a bounded activation gives every tensor a small fixed range, and
  the Edge TPU and XNNPACK both run it fused into the convolution.
* Batch normalization after every convolution (folded into the weights at conversion).
* Only Conv2D, DepthwiseConv2D, Add, Mul, Concatenate, Reshape, Dense, global average pooling
  and sigmoid: ops that XNNPACK and the Edge TPU compiler both take, so XNNPACK runs the whole
  converted detector, fp32 or int8, in one partition (tested). The box decoder's clip to [0, 1]
  is a ReLU6 fused into an Add for the same reason (:class:`train.layers.GridDecode`).
* Nearest 2x upsampling in the FPN is written as Concatenate + Reshape (:func:`_upsample2x`).
  Keras 3's UpSampling2D writes it as a repeat, which becomes TILE in TFLite: neither XNNPACK
  nor the Edge TPU takes TILE, so each one split the XNNPACK graph and would have ended the
  Edge TPU's part of the model in the middle of the neck. ``Resizing(interpolation="nearest")``
  becomes RESIZE_NEAREST_NEIGHBOR, which this XNNPACK does not take either, in a version (half-
  pixel centres) that the Edge TPU compiler refuses.
* The detector has **two outputs**, boxes and class scores, both in [0, 1]: boxes are
  normalized corner coordinates decoded inside the graph (:class:`train.layers.GridDecode`),
  scores are sigmoids. One int8 scale per output then fits its values; a single YOLO-style
  tensor with pixel coordinates next to probabilities is what loses int8 detectors their
  accuracy (the issue cites YOLOv8s .449 -> .382).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

# Detector feature levels: stride -> the largest box-edge distance (in pixels) a level can predict.
# Each level is 8 cells of reach; FCOS-style, a box goes to the level whose reach covers it.
STRIDES = (8, 16, 32)
REACH_CELLS = 8
PRIOR = 0.01  # initial class probability of every cell
HEADS = ("shared", "decoupled")  # one separable block feeds boxes and classes, or one block each
# Batch-norm running statistics start at mean 0, variance 1, and some activations here have a
# variance near 1e-3: with Keras' default momentum 0.99 the inference-mode statistics are still
# dominated by that start after hundreds of steps (a model perfect in training predicts one class
# in inference). 0.9 (PyTorch's default) forgets the start within a few dozen steps.
BN_MOMENTUM = 0.9


@dataclass(frozen=True)
class DetectorSpec:
    """What a detector's graph is: input size (height, width) in pixels, classes, width factor and
    head (:data:`HEADS`)."""

    input_size: tuple[int, int] = (256, 256)
    num_classes: int = 5
    width: float = 1.0
    head: str = "shared"

    def __post_init__(self):
        h, w = self.input_size
        if not (96 <= h <= 640 and 96 <= w <= 640) or h % 32 or w % 32:
            raise ValueError(f"detector input size must be multiples of 32 between 96 and 640 pixels, got {h}x{w}")
        if self.num_classes < 1:
            raise ValueError(f"a detector needs at least one class, got {self.num_classes}")
        if self.head not in HEADS:
            raise ValueError(f"detector head must be one of {HEADS}, got {self.head!r}")

    def grids(self) -> list[tuple[int, int, int]]:
        """(stride, rows, columns) of each output level, in output order."""
        h, w = self.input_size
        return [(s, h // s, w // s) for s in STRIDES]

    @property
    def num_anchors(self) -> int:
        return sum(r * c for _, r, c in self.grids())


def _channels(n: int, width: float) -> int:
    return max(8, int(round(n * width / 8)) * 8)


def _bn(k, name: str):
    """Batch normalization; synchronized across replicas (batch statistics all-reduced, so every
    worker keeps the same running statistics) while a multi-replica strategy is training."""
    if _SYNC_BN:
        return k.layers.BatchNormalization(momentum=BN_MOMENTUM, synchronized=True, name=name)
    return k.layers.BatchNormalization(momentum=BN_MOMENTUM, name=name)


_SYNC_BN = False


def synchronized_bn(enabled: bool):
    """Context manager: build models with synchronized batch normalization (Keras 3, TensorFlow)."""
    import contextlib

    @contextlib.contextmanager
    def scope():
        global _SYNC_BN
        previous, _SYNC_BN = _SYNC_BN, bool(enabled)
        try:
            yield
        finally:
            _SYNC_BN = previous

    return scope()


def _conv_bn(k, x, filters: int, kernel: int, stride: int, name: str):
    x = k.layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = _bn(k, f"{name}_bn")(x)
    return k.layers.ReLU(6.0, name=f"{name}_relu")(x)


def _upsample2x(k, x, name: str):
    """Nearest-neighbour 2x upsampling of [B, H, W, C] as two Concatenate + Reshape pairs (each
    pixel repeated along W, then each row along H): the same values as UpSampling2D(2), in ops
    that XNNPACK and the Edge TPU take (see the module docstring)."""
    _, h, w, c = x.shape
    x = k.layers.Concatenate(axis=-1, name=f"{name}_w")([x, x])          # [B, H, W, 2C]
    x = k.layers.Reshape((h, 2 * w, c), name=f"{name}_w_flat")(x)      # [B, H, 2W, C]
    x = k.layers.Concatenate(axis=2, name=f"{name}_h")([x, x])           # [B, H, 4W, C]
    return k.layers.Reshape((2 * h, 2 * w, c), name=f"{name}_h_flat")(x)  # [B, 2H, 2W, C]


def _separable(k, x, filters: int, stride: int, name: str):
    """Depthwise 3x3 + pointwise 1x1, each with BN and ReLU6 (MobileNet v1's block); a residual
    Add when shape allows (MobileNet v2's skip, without the expansion that costs latency here)."""
    inp = x
    x = k.layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"{name}_dw")(x)
    x = _bn(k, f"{name}_dw_bn")(x)
    x = k.layers.ReLU(6.0, name=f"{name}_dw_relu")(x)
    x = k.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(x)
    x = _bn(k, f"{name}_pw_bn")(x)
    x = k.layers.ReLU(6.0, name=f"{name}_pw_relu")(x)
    if stride == 1 and inp.shape[-1] == filters:
        x = k.layers.Add(name=f"{name}_add")([inp, x])
    return x


def classifier(k, input_shape: tuple[int, int, int], num_classes: int, width: float = 1.0, dropout: float = 0.2):
    """A MobileNet-style classifier: a 3x3 stem, depthwise-separable blocks (with residual adds)
    that halve the grid twice for small inputs such as 28x28 (four times for 64 px and more),
    global average pooling, dropout, softmax.

    Small inputs (under 64 px) start with a space-to-depth stem (:func:`_space_to_depth_stem`):
    each 2x2 block of pixels becomes one position with 4x the channels, then the 3x3 stem runs
    at half the resolution. It drops no pixel (the 3x3 convolution sees a 6x6 window of the
    input), and it is what makes the int8 model faster than the float one: int8 convolution
    kernels pad the input channels to a multiple of 4 to 16, so a 1- or 3-channel stem at full
    resolution costs as much as a 16-channel one, five times its float time (docs/benchmarks.md,
    classifier section). TPUs use the same transform for their first layer. Larger inputs get a
    stride-2 stem, as MobileNet's.

    About 75k parameters at width 1 on 28x28x1 (Fashion-MNIST); input values as the metadata's
    preprocessing gives them (pixels / 255)."""
    h, w, c = input_shape
    x = inputs = k.Input(input_shape, name="image")
    small = min(h, w) < 64  # e.g. 28x28: space-to-depth, then the stem at 14x14
    if small:
        x = _space_to_depth_stem(k, x, _channels(32, width))
    else:
        x = _conv_bn(k, x, _channels(32, width), 3, 2, "stem")
    plan = [(64, 1), (64, 1), (128, 2), (128, 1), (256, 1)] if small else \
        [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1)]
    for i, (filters, stride) in enumerate(plan):
        x = _separable(k, x, _channels(filters, width), stride, f"block{i}")
    x = k.layers.GlobalAveragePooling2D(name="pool")(x)
    x = k.layers.Dropout(dropout, name="dropout")(x)
    outputs = k.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return k.Model(inputs, outputs, name="edgepilot_classifier")


def _space_to_depth_stem(k, x, filters: int):
    """[B, H, W, C] -> [B, H/2, W/2, 4C] (each 2x2 block of pixels side by side in the channels;
    an odd height or width first gets one row or column of zeros), then the 3x3 stem.

    Written as Reshape + Permute + Reshape (RESHAPE and TRANSPOSE in TFLite, which XNNPACK runs
    in fp32 and int8, and tfmot's QAT passes through): Keras 3 has no space-to-depth layer."""
    _, h, w, c = x.shape
    if h % 2 or w % 2:
        x = k.layers.ZeroPadding2D(((0, h % 2), (0, w % 2)), name="stem_pad")(x)
        h, w = h + h % 2, w + w % 2
    x = k.layers.Reshape((h // 2, 2, w // 2, 2 * c), name="stem_blocks")(x)  # rows in pairs; (col pair, C) flat
    x = k.layers.Permute((1, 3, 2, 4), name="stem_gather")(x)                 # [H/2, W/2, 2, 2C]
    x = k.layers.Reshape((h // 2, w // 2, 4 * c), name="stem_s2d")(x)
    return _conv_bn(k, x, filters, 3, 1, "stem")


def detector(k, spec: DetectorSpec, decode_layer):
    """A single-shot anchor-free detector (FCOS/YOLOv8 family) for small CPUs and the Edge TPU.

    Backbone: depthwise-separable blocks down to stride 32. Neck: an FPN-lite top-down path
    (1x1 lateral convolutions, nearest upsampling, Add, one separable block per level). Heads:
    per level, a separable block then a 1x1 convolution for the four box-edge distances and one
    for the class logits; with ``spec.head == "decoupled"`` the boxes and the classes each get their
    own separable block (YOLOX's decoupled head, as in YOLOv8): the two tasks stop competing for
    one set of features, at one more separable block per level.
    ``decode_layer(stride, rows, cols, reach_px, input_size, name)`` turns the distances into
    normalized corners inside the graph; scores go through a sigmoid.

    Outputs ``{"boxes": [B, N, 4], "scores": [B, N, C]}`` with N the cells of all levels (1344
    at 256x256): the edgepilot layout (``edge_runtime.metadata.DETECTOR_LAYOUT``). About 0.17M
    parameters at width 1 and 0.65M at width 2 (the benchmark's), whatever the input size."""
    width = spec.width
    x = inputs = k.Input((*spec.input_size, 3), name="image")
    x = _conv_bn(k, x, _channels(24, width), 3, 2, "stem")                          # stride 2
    # Full 3x3 convolutions at the two finest strides (EfficientNet-EdgeTPU's "fused" blocks):
    # with few channels they cost little more than separable ones, train several times faster
    # on CPUs (TensorFlow's depthwise gradients are slow there) and suit the Edge TPU better.
    x = _conv_bn(k, x, _channels(32, width), 3, 2, "b1")                            # 4
    x = _conv_bn(k, x, _channels(48, width), 3, 2, "b2")                            # 8
    c3 = _separable(k, x, _channels(48, width), 1, "b3")
    x = _separable(k, c3, _channels(96, width), 2, "b4")                            # 16
    x = _separable(k, x, _channels(96, width), 1, "b5")
    c4 = _separable(k, x, _channels(96, width), 1, "b6")
    x = _separable(k, c4, _channels(160, width), 2, "b7")                           # 32
    x = _separable(k, x, _channels(160, width), 1, "b8")
    c5 = _separable(k, x, _channels(160, width), 1, "b9")

    neck = _channels(64, width)
    p5 = _conv_bn(k, c5, neck, 1, 1, "lat5")
    p4 = k.layers.Add(name="top4")([_conv_bn(k, c4, neck, 1, 1, "lat4"), _upsample2x(k, p5, "up5")])
    p4 = _separable(k, p4, neck, 1, "fpn4")
    p3 = k.layers.Add(name="top3")([_conv_bn(k, c3, neck, 1, 1, "lat3"), _upsample2x(k, p4, "up4")])
    p3 = _separable(k, p3, neck, 1, "fpn3")

    boxes, scores = [], []
    for (stride, rows, cols), feature in zip(spec.grids(), (p3, p4, p5)):
        if spec.head == "shared":
            box_features = class_features = _separable(k, feature, neck, 1, f"head{stride}")
        else:
            box_features = _separable(k, feature, neck, 1, f"boxhead{stride}")
            class_features = _separable(k, feature, neck, 1, f"clshead{stride}")
        distances = k.layers.Conv2D(4, 1, name=f"box{stride}")(box_features)
        boxes.append(decode_layer(stride, rows, cols, REACH_CELLS * stride, spec.input_size, f"decode{stride}")(distances))
        # RetinaNet's prior: every cell starts at p = 0.01, so the flood of background cells does
        # not swamp the first steps of focal-loss training
        prior = k.initializers.Constant(-math.log((1 - PRIOR) / PRIOR))
        logits = k.layers.Conv2D(spec.num_classes, 1, bias_initializer=prior, name=f"cls{stride}")(class_features)
        scores.append(k.layers.Reshape((rows * cols, spec.num_classes), name=f"cls{stride}_flat")(logits))
    box_out = k.layers.Concatenate(axis=1, name="boxes")(boxes)
    score_out = k.layers.Activation("sigmoid", name="scores")(k.layers.Concatenate(axis=1, name="logits")(scores))
    return k.Model(inputs, {"boxes": box_out, "scores": score_out}, name="edgepilot_detector")
