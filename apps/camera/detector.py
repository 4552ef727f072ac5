"""``Detector``: a model file + its decoder + its preprocessing, one call per frame.

    >>> det = Detector("blazeface_short_range.tflite")
    >>> det.decoder_name, det.resize
    ('blazeface', 'letterbox')
    >>> det.detect(cv2.imread("astronaut.png"))
    Detections(1 in 512x512: face: 1)

The three stages (:meth:`prepare`, :meth:`infer`, :meth:`decode`) are public so the pipeline can
run them on different threads; :meth:`detect` chains them.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np

from apps.camera.decoders import DECODER_CHOICES, Decoder, DecoderError, make_decoder
from apps.camera.detections import Detections
from apps.camera.exporter_metadata import packed_labels, ultralytics_metadata
from apps.camera.labels import check_count, read_labels
from apps.camera.preprocess import fit_preprocess, fixed_input, image_layout, is_open, prepare, quantized_pixels
from edge_runtime.metadata import ModelMetadata, Preprocess, ResizeGeometry

# Signature keys some layouts name their outputs by; TFLite files made from Keras name the
# tensors "StatefulPartitionedCall:0"..., and Model.output_name maps the keys back.
_KEYS = ("boxes", "scores")


class Detector:
    """Runs one detection model on BGR frames.

    Args:
        model: a .tflite / .onnx path or an already loaded :class:`edge_runtime.Model`.
        decoder: ``auto`` (the metadata's ``extra["decoder"]``, else recognized from the output
            shapes) or one of ``edgepilot``, ``yolo``, ``ssd``, ``blazeface`` (and ``yolov8``,
            ``yolov5``, ``yolo-end2end`` to force a YOLO variant).
        score, iou: thresholds; by default the model metadata's ``thresholds``, else the
            decoder's own (0.25 / 0.45; BlazeFace: MediaPipe's 0.5 / 0.3).
        device, threads: passed to :func:`edge_runtime.load`.
        multi_label: every class above ``score`` is a candidate box, not just each anchor's
            best; for mAP evaluation (see :mod:`apps.camera.decoders`), not for live use.
        labels: class names instead of the file's own: a label file's path
            (:func:`apps.camera.labels.read_labels`) or a sequence of names. Where the outputs
            say how many classes there are (YOLO, edgepilot), the count must match.

    Attributes: ``decoder_name``, ``resize`` (``"letterbox"`` or ``"stretch"``), ``labels``,
    ``preprocess`` (the recipe in use) and ``preprocess_source`` (``"metadata"``, ``"ultralytics
    metadata"`` for an Ultralytics export (:mod:`apps.camera.exporter_metadata`), or which
    default was used for a model that carries none).
    """

    def __init__(self, model, decoder: str = "auto", score: float | None = None, iou: float | None = None,
                 device: str = "auto", threads: int | None = None, multi_label: bool = False, labels=None):
        import edge_runtime

        if decoder not in DECODER_CHOICES:
            raise ValueError(f"decoder must be one of {', '.join(DECODER_CHOICES)}, got {decoder!r}")
        if isinstance(model, (str, os.PathLike)):
            model = edge_runtime.load(Path(model), device=device, threads=threads)
        self.model = model
        self._file = _stamp(model.path)  # a replica made later must read the same file
        if len(model.inputs) != 1:
            raise ValueError(f"{model.path}: a detector takes one image input; this model has "
                             f"{[s.name for s in model.inputs]}")
        self.metadata: ModelMetadata | None = model.info or ultralytics_metadata(model) or packed_labels(model)
        if labels is not None:  # the user's names replace the file's own
            names = read_labels(labels) if isinstance(labels, (str, os.PathLike)) else tuple(labels)
            base = self.metadata or ModelMetadata(task="detection")
            extra = {k: v for k, v in (base.extra or {}).items() if k != "labels_from"}
            self.metadata = replace(base, labels=names, extra=extra)
        # a dynamic export's open height and width come from the metadata's size
        size = self.metadata.preprocess.size if self.metadata is not None else None
        self.input = fixed_input(model.inputs[0], size)
        try:  # a clear error for a non-image input, now rather than per frame
            _, height, width, _ = image_layout(self.input)
        except ValueError as exc:
            raise ValueError(f"{model.path}: {exc}") from None
        self._names = self._output_keys(model)
        specs = [(self._names[s.name], shape) for s, shape in zip(model.outputs, self._output_shapes())]
        self.decoder: Decoder = make_decoder(decoder, specs, self.metadata, multi_label, (height, width))
        if labels is not None:
            source = os.fspath(labels) if isinstance(labels, (str, os.PathLike)) else None
            check_count(self.decoder.labels, self.decoder.classes, source, str(model.path))
        elif self._packed_labels_misfit():  # not this model's list: ignored, like malformed metadata
            self.metadata = None
            self.decoder = make_decoder(decoder, specs, None, multi_label, (height, width))
        self.preprocess, self.preprocess_source = self._preprocess()
        thresholds = dict(self.metadata.thresholds) if self.metadata is not None else {}
        self.score = float(score if score is not None else thresholds.get("score", self.decoder.default_score))
        self.iou = float(iou if iou is not None else thresholds.get("iou", self.decoder.default_iou))
        for name, value in (("score", self.score), ("iou", self.iou)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"--{name} must lie in [0, 1], got {value}")

    @staticmethod
    def _output_keys(model) -> dict[str, str]:
        """Tensor name -> the name decoders see: the signature key where it is a known one."""
        names = {s.name: s.name for s in model.outputs}
        for key in _KEYS:
            try:
                tensor = model.output_name(key)
            except KeyError:
                continue
            if tensor in names and tensor != key and key not in names:
                names[tensor] = key
        return names

    def _packed_labels_misfit(self) -> bool:
        """Whether the names came from a label file packed into the model (no other metadata) and
        the outputs say there is another number of classes."""
        packed = self.metadata is not None and "labels_from" in (self.metadata.extra or {})
        return packed and self.decoder.classes is not None and len(self.metadata.labels) != self.decoder.classes

    def _output_shapes(self) -> list[tuple]:
        """The outputs' shapes; where the file leaves some open (a dynamic export), those of one
        run on a blank input of the fixed input shape, which the decoders need to tell layouts apart."""
        outputs = self.model.outputs
        shapes = [tuple(spec.shape) for spec in outputs]
        if not any(is_open(d) for shape in shapes for d in shape[1:]):  # an open batch is 1
            return [tuple(1 if is_open(d) else d for d in shape) for shape in shapes]
        blank = np.zeros(self.input.shape, self.input.dtype)
        try:
            return [tuple(value.shape) for value in self.model.run(blank, raw_inputs=self.input.quantized).ordered]
        except Exception as exc:  # noqa: BLE001 - any runtime's error, said with what was being done
            raise ValueError(f"{self.model.path}: its outputs' shapes are open, and one run on a blank input of "
                             f"shape {list(self.input.shape)} to learn them failed: {exc}") from exc

    def _preprocess(self) -> tuple[Preprocess, str]:
        meta = self.metadata
        if meta is not None and meta.preprocess.kind == "image":
            source = "metadata" if "metadata_from" not in meta.extra else f"{meta.extra['metadata_from']} metadata"
            return fit_preprocess(meta.preprocess, self.input), source
        quantized = quantized_pixels(self.input)
        default = self.decoder.default_preprocess()
        if quantized is not None:  # the integer codes are the pixels; keep the layout's resize
            default = replace(quantized, color=default.color, resize=default.resize, pad_value=default.pad_value)
            source = f"default for {self.decoder.name} (quantized input: codes are pixels)"
        else:
            source = f"default for {self.decoder.name}"
        return fit_preprocess(default, self.input), source

    # ----- what it is --------------------------------------------------------------------
    @property
    def decoder_name(self) -> str:
        return getattr(self.decoder, "variant", self.decoder.name)

    @property
    def resize(self) -> str:
        return self.preprocess.resize

    @property
    def labels(self) -> tuple[str, ...]:
        return self.decoder.labels

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the model input."""
        return tuple(self.preprocess.size)

    # ----- the three stages --------------------------------------------------------------
    def prepare(self, frame_bgr: np.ndarray) -> tuple[np.ndarray, ResizeGeometry]:
        return prepare(frame_bgr, self.input, self.preprocess)

    def infer(self, x: np.ndarray, codes: bool | None = None) -> Mapping[str, np.ndarray]:
        """Outputs by the names the decoder knows (signature keys where there are some).

        ``x`` is what :meth:`prepare` returns: floats, or the quantized input's integer codes.
        ``codes`` says which; None decides by dtype (an array of the quantized input's own dtype
        holds codes, anything else real values)."""
        if codes is None:
            codes = self.input.quantized and x.dtype == self.input.dtype
        out = self.model.run(x, raw_inputs=codes)
        return {self._names[name]: value for name, value in zip(out, out.ordered)}

    def decode(self, outputs: Mapping[str, np.ndarray], geometry: ResizeGeometry) -> Detections:
        try:
            return self.decoder(outputs, geometry, self.score, self.iou)
        except DecoderError as exc:  # outputs that turn out not to fit the layout: name the model too
            raise DecoderError(f"{self.model.path}: {exc}") from None

    def detect(self, frame_bgr: np.ndarray) -> Detections:
        x, geometry = self.prepare(frame_bgr)
        return self.decode(self.infer(x), geometry)

    __call__ = detect

    def replica(self) -> "Detector":
        """The same detector on a new interpreter of the same file, on the same device with the
        same threads and interpreter package: a second inference stream (``--streams``), which the
        pipeline runs on its own thread beside this one. Decoder, preprocessing and thresholds are
        shared (read-only, but for the SSD decoder's one-time check of which output holds the
        classes, which sets the same keys whichever thread makes it; the pipeline decodes on one
        thread anyway). Load options beyond those (a GPU delegate's options, a model
        loaded without XNNPACK) are not carried over: the replica must then report the same
        runtime and accelerator as this one, or ValueError says how they differ. ValueError too when
        the file changed on disk since this detector loaded it (``--streams auto`` may ask for a
        replica long into a run)."""
        import copy

        import edge_runtime
        from edge_runtime import deps

        if self.model.device.startswith("edgetpu"):
            raise ValueError(f"--streams: {self.model.path} runs on an Edge TPU ({self.model.accelerator}), "
                             "which runs one model at a time; use --streams 1")
        if _stamp(self.model.path) != self._file:
            raise ValueError(f"--streams: {self.model.path} changed on disk since it was loaded; a second "
                             "interpreter would run another model")
        other = copy.copy(self)
        model = self.model
        interpreter = model.runtime if model.runtime in deps.TFLITE_MODULES else None
        other.model = edge_runtime.load(Path(model.path), device=model.device, threads=model.threads,
                                        interpreter=interpreter)
        first, second = (f"{m.runtime} on {m.accelerator}" for m in (model, other.model))
        if first != second:
            raise ValueError(f"--streams: a second interpreter of {model.path} runs as {second}, the first as "
                             f"{first}; use --streams 1")
        return other

    def describe(self) -> dict:
        """What a summary should say about how frames were read and decoded."""
        return {
            "model": self.model.path, "accelerator": self.model.accelerator, "decoder": self.decoder_name,
            "resize": self.resize, "input_size": list(self.input_size), "preprocess": self.preprocess_source,
            "score": self.score, "iou": self.iou, "multi_label": self.decoder.multi_label,
        }

    def __repr__(self) -> str:
        return (f"<Detector {self.model.path} decoder={self.decoder_name} resize={self.resize} "
                f"score={self.score} iou={self.iou}>")


def _stamp(path) -> tuple[int, int] | None:
    """(size, modification time in ns) of a model file, or None when it cannot be read."""
    try:
        info = os.stat(path)
    except (OSError, TypeError):
        return None
    return info.st_size, info.st_mtime_ns
