"""The keyword-spotting network, in two forms that compute the same thing.

* :func:`build_model` — the non-streaming Keras model that trains: feature frames
  [B, window_frames, 40] -> class probabilities [B, K].
* :class:`StreamingKws` — the same layers and weights as a ``tf.Module`` that takes
  ``stride_frames`` new frames per call and keeps, in resource variables, the few past inputs each
  temporal layer still needs (the way microWakeWord's and kws_streaming's models stream). Its
  output after step n equals the non-streaming model's output on the last ``window_frames``
  frames, so one detection costs one small step instead of a whole window.

The network (a depthwise-separable temporal CNN, as DS-CNN and microWakeWord's MixedNet): a
strided first convolution that reads ``stride_frames`` new frames per output step, ``blocks`` of
depthwise temporal convolution + pointwise convolution (with a residual connection), and a final
depthwise convolution as long as what is left of the window, which weighs every step of the last
second. Every temporal convolution is ``valid``: nothing looks ahead, nothing is padded, so the
streaming form is exact. Ops: CONV_2D, DEPTHWISE_CONV_2D, ADD, RELU, FULLY_CONNECTED, SOFTMAX,
CONCATENATION and STRIDED_SLICE in TFLite, all int8.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

BINS = 40


@dataclass(frozen=True)
class KwsArchitecture:
    """Sizes of the network. ``window_frames`` is set from the clip length by :func:`for_clip`."""

    window_frames: int = 98  # 1 s of 10 ms frames
    stride_frames: int = 3  # new frames per streaming step (30 ms)
    first_kernel: int = 5
    first_channels: int = 64
    block_kernels: tuple[int, ...] = (5, 5, 5, 5)
    channels: int = 64

    def __post_init__(self):
        if (self.window_frames - self.first_kernel) % self.stride_frames:
            raise ValueError(f"window_frames - first_kernel ({self.window_frames} - {self.first_kernel}) must be "
                             f"a multiple of stride_frames ({self.stride_frames})")
        if self.final_kernel < 1:
            raise ValueError(f"the blocks' kernels {self.block_kernels} need more than {self.window_frames} frames")

    @property
    def steps(self) -> int:
        """Output steps of the first convolution over one window."""
        return (self.window_frames - self.first_kernel) // self.stride_frames + 1

    @property
    def final_kernel(self) -> int:
        return self.steps - sum(k - 1 for k in self.block_kernels)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def for_clip(cls, frames: int, **sizes) -> KwsArchitecture:
        """The largest aligned window that fits in ``frames`` feature frames."""
        base = cls(**sizes) if sizes else cls()
        window = frames - (frames - base.first_kernel) % base.stride_frames
        return cls(**{**base.to_dict(), "window_frames": window, "block_kernels": tuple(base.block_kernels)})


def build_model(arch: KwsArchitecture, classes: int, seed: int = 0):
    """The non-streaming Keras model [B, window_frames, 40] -> softmax [B, classes]."""
    import keras

    keras.utils.set_random_seed(seed)
    return _network(keras, arch, classes, two_d=False)


def build_qat_twin(keras, arch: KwsArchitecture, classes: int):
    """The same network with 2-D layers on [B, T, 1, C], for quantization-aware training.

    tensorflow-model-optimization quantizes Conv2D and DepthwiseConv2D but not their 1-D forms,
    so ``--qat`` fine-tunes this twin (tf_keras, see :mod:`train.kws.qat`). A Conv1D kernel
    [k, in, out] is a Conv2D kernel [k, 1, in, out], a DepthwiseConv1D kernel [k, C, 1] a
    DepthwiseConv2D kernel [k, 1, C, 1]; every layer keeps its name, so weights move between
    the two by name with a reshape, and the twin computes exactly what :func:`build_model` does."""
    return _network(keras, arch, classes, two_d=True)


def _network(keras, arch: KwsArchitecture, classes: int, two_d: bool):
    """The network of :func:`build_model` (``two_d`` False) or of its QAT twin (True): the same
    layers, names and order; only the temporal layers' rank differs."""
    layers = keras.layers

    def conv(filters: int, kernel: int, name: str, stride: int = 1):
        if two_d:
            return layers.Conv2D(filters, (kernel, 1), strides=(stride, 1), use_bias=False, name=name)
        return layers.Conv1D(filters, kernel, strides=stride, use_bias=False, name=name)

    def depthwise(kernel: int, name: str):
        if two_d:
            return layers.DepthwiseConv2D((kernel, 1), use_bias=False, name=name)
        return layers.DepthwiseConv1D(kernel, use_bias=False, name=name)

    def newest(kernel: int, name: str):  # the steps a block's depthwise convolution kept
        return layers.Cropping2D(((kernel - 1, 0), (0, 0)), name=name) if two_d else layers.Cropping1D((kernel - 1, 0), name=name)

    inputs = keras.Input((arch.window_frames, BINS), name="features")
    x = layers.Reshape((arch.window_frames, 1, BINS), name="to_2d")(inputs) if two_d else inputs
    x = conv(arch.first_channels, arch.first_kernel, "first_conv", stride=arch.stride_frames)(x)
    x = layers.BatchNormalization(name="first_bn")(x)
    x = layers.ReLU(name="first_relu")(x)
    for i, kernel in enumerate(arch.block_kernels):
        y = depthwise(kernel, f"block{i}_dw")(x)
        y = layers.BatchNormalization(name=f"block{i}_dw_bn")(y)
        y = layers.ReLU(name=f"block{i}_dw_relu")(y)
        y = conv(arch.channels, 1, f"block{i}_pw")(y)
        y = layers.BatchNormalization(name=f"block{i}_pw_bn")(y)
        if x.shape[-1] == arch.channels:  # residual over the steps the block kept (the newest ones)
            y = layers.Add(name=f"block{i}_add")([newest(kernel, f"block{i}_crop")(x), y])
        x = layers.ReLU(name=f"block{i}_relu")(y)
    x = depthwise(arch.final_kernel, "final_dw")(x)
    x = layers.BatchNormalization(name="final_bn")(x)
    x = layers.ReLU(name="final_relu")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(0.1, name="dropout")(x)
    outputs = layers.Dense(classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="kws_qat_twin" if two_d else "kws")


def _folded(model, conv: str, bn: str) -> tuple[np.ndarray, np.ndarray]:
    """(kernel, bias) of convolution ``conv`` with batch norm ``bn`` folded in (inference)."""
    kernel = model.get_layer(conv).get_weights()[0]
    norm = model.get_layer(bn)
    gamma, beta, mean, var = norm.get_weights()
    scale = gamma / np.sqrt(var + norm.epsilon)
    if kernel.ndim == 3 and conv.endswith("_dw"):  # DepthwiseConv1D kernel [k, C, 1]
        scale = scale[None, :, None]
    return (kernel * scale).astype(np.float32), (beta - mean * gamma / np.sqrt(var + norm.epsilon)).astype(np.float32)


def _streaming_module(model, arch: KwsArchitecture):
    """The trained weights, batch norm folded, as constants; only the past inputs are variables."""
    import tensorflow as tf

    first_w, first_b = _folded(model, "first_conv", "first_bn")
    blocks = [(_folded(model, f"block{i}_dw", f"block{i}_dw_bn"), _folded(model, f"block{i}_pw", f"block{i}_pw_bn"))
              for i in range(len(arch.block_kernels))]
    final_w, final_b = _folded(model, "final_dw", "final_bn")
    dense_w, dense_b = model.get_layer("probabilities").get_weights()

    def depthwise(window, kernel, bias):
        """[1, k, C] window * [k, C, 1] kernel + bias -> [1, C] (one step)."""
        out = tf.nn.depthwise_conv2d(window[:, None], tf.constant(kernel[None]), [1, 1, 1, 1], "VALID")
        return tf.reshape(tf.nn.bias_add(out, bias), [1, -1])

    def dense(x, kernel, bias):
        return tf.nn.bias_add(tf.matmul(x, tf.constant(kernel)), bias)

    class StreamingKws(tf.Module):
        """One streaming step: [1, stride_frames, 40] -> [1, K], with each temporal layer's past
        inputs kept in a resource variable (zeros at the start of a stream)."""

        def __init__(self):
            super().__init__(name="kws_stream")
            self.first = tf.Variable(tf.zeros([1, arch.first_kernel - arch.stride_frames, BINS]), trainable=False,
                                     name="first_state")
            widths = [arch.first_channels] + [arch.channels] * len(arch.block_kernels)
            self.blocks = [tf.Variable(tf.zeros([1, k - 1, widths[i]]), trainable=False, name=f"block{i}_state")
                           for i, k in enumerate(arch.block_kernels)]
            self.final = tf.Variable(tf.zeros([1, arch.final_kernel - 1, arch.channels]), trainable=False,
                                     name="final_state")

        @staticmethod
        def _push(state, new):
            """The layer's input window (past inputs + new ones); the state keeps the newest."""
            window = tf.concat([state, new], axis=1)
            state.assign(window[:, -state.shape[1]:])
            return window

        @tf.function(input_signature=[tf.TensorSpec([1, arch.stride_frames, BINS], tf.float32, name="features")])
        def step(self, features):
            window = tf.reshape(self._push(self.first, features), [1, arch.first_kernel * BINS])
            x = tf.nn.relu(dense(window, first_w.reshape(-1, first_w.shape[-1]), first_b))  # [1, C]: one step
            for state, ((dw_w, dw_b), (pw_w, pw_b)) in zip(self.blocks, blocks):
                y = tf.nn.relu(depthwise(self._push(state, tf.reshape(x, [1, 1, -1])), dw_w, dw_b))
                y = dense(y, pw_w[0], pw_b)
                x = tf.nn.relu(y + x if x.shape[-1] == arch.channels else y)
            x = tf.nn.relu(depthwise(self._push(self.final, tf.reshape(x, [1, 1, -1])), final_w, final_b))
            return {"probabilities": tf.nn.softmax(dense(x, dense_w, dense_b))}

    return StreamingKws()


def save_streaming(model, arch: KwsArchitecture, directory: str) -> None:
    """Write the streaming form of ``model`` as a SavedModel whose serving signature is one step."""
    import tensorflow as tf

    module = _streaming_module(model, arch)
    tf.saved_model.save(module, directory, signatures={"serving_default": module.step})


def stream_steps(features: np.ndarray, arch: KwsArchitecture) -> np.ndarray:
    """A stream's frames [T, 40] as streaming inputs [T // stride, stride, 40] (a partial step
    at the end is dropped), in order: the calibration data of the streaming model."""
    usable = len(features) - len(features) % arch.stride_frames
    return features[:usable].reshape(-1, arch.stride_frames, BINS).astype(np.float32)


def count_params(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))
