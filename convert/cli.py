"""``edgepilot convert`` and ``edgepilot quant-debug``: argument parsing and output only; the
work is in :mod:`convert.workflow`. Registered by :mod:`edgepilot.cli`, imported only when one
of these commands runs."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from convert.options import ONNX_INT8_CHOICES, TARGETS

EXIT_OK, EXIT_ERROR, EXIT_OVER_BUDGET, EXIT_VARIANT_FAILED = 0, 1, 3, 4

CONVERT_EPILOG = f"""targets: {', '.join(TARGETS)} (default: all)
exit codes: 0 all variants produced (and within --budget), 1 error, 3 a variant misses --budget,
4 a variant failed to convert (the others are still written)
example: edgepilot convert model.keras --out out/ --calib calib.npz --eval test.npz --budget 1.0"""


def add_parsers(sub) -> None:
    p = sub.add_parser("convert", help="Keras / SavedModel / .tflite -> TFLite and ONNX variants with a report card",
                       epilog=CONVERT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="SavedModel directory, .keras / .h5 file (Keras 3 or tf_keras), .tflite, "
                   "or a folder written by edgepilot train (its model, metadata and data are found there)")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--calib", help="calibration data: image or WAV folder, .npy, or .npz with x (and y)")
    p.add_argument("--eval", help="evaluation data, same forms; labels (y or sub-folders) give top-1")
    p.add_argument("--targets", nargs="+", default=list(TARGETS), metavar="TARGET", help="variants to produce")
    p.add_argument("--int8", action="store_true", help="shorthand for --targets tflite_int8")
    p.add_argument("--budget", type=float, help="allowed accuracy drop in percentage points; exit 3 when missed")
    p.add_argument("--auto-fix", action="store_true", help="keep the worst int8 layers in float until --budget holds")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    p.add_argument("--int8-io", choices=("int8", "uint8"), default="int8", help="integer type of int8 model I/O")
    p.add_argument("--onnx-int8", choices=ONNX_INT8_CHOICES, default="u8s8",
                   help="onnx_int8 data types: u8s8 (default: uint8 activations, int8 weights in 7 bits; ONNX "
                        "Runtime's fast path on x86 CPUs) or s8s8 (signed on both sides, for accelerators that take only "
                        "symmetric int8, such as TensorRT)")
    p.add_argument("--calib-samples", type=int, default=None, help="calibration samples (default 200: a few hundred, as TFLite advises; more "
                   "only slows calibration)")
    p.add_argument("--eval-samples", type=int, default=None, help="evaluation samples (default 2000: about +-1 point resolution on top-1)")
    p.add_argument("--bench-runs", type=int, default=100, help="timed runs per variant for latency (default 100)")
    p.add_argument("--batch", type=int, default=None,
                   help="fix the batch dimension (e.g. 1): no shape ops, so XNNPACK takes more of the graph")
    _metadata_arguments(p)
    p.add_argument("--json", action="store_true", help="print report.json instead of report.md")
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's own start-up and converter logs")
    p.set_defaults(func=run_convert)

    p = sub.add_parser("quant-debug", help="per-layer int8 quantization error, worst layers first",
                       epilog="example: edgepilot quant-debug model.keras --calib calib.npz --top 10")
    p.add_argument("model", type=Path, help="SavedModel directory or .keras / .h5 file")
    p.add_argument("--calib", required=True, help="calibration data (image or WAV folder, .npy, .npz)")
    p.add_argument("--calib-samples", type=int, default=None, help="calibration samples (default 200)")
    p.add_argument("--top", type=int, default=20, help="rows to print (default 20)")
    _metadata_arguments(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run_quant_debug)


def _metadata_arguments(p) -> None:
    g = p.add_argument_group("metadata and preprocessing (stored in every output model)")
    g.add_argument("--task", default="", help="e.g. classification, detection, keyword_spotting")
    g.add_argument("--labels", help="label names: a text file with one per line, or a comma-separated list")
    g.add_argument("--input-kind", choices=("image", "audio", "array"), default=None,
                   help="what the input is (default: audio with --sample-rate, image for image folders, else array)")
    g.add_argument("--scale", type=float, default=1.0, help="input = (raw * scale - mean) / std; e.g. 0.00392157")
    g.add_argument("--mean", type=float, nargs="+", default=[0.0], help="per-channel mean after scaling")
    g.add_argument("--std", type=float, nargs="+", default=[1.0], help="per-channel std after scaling")
    g.add_argument("--color", choices=("rgb", "bgr", "gray"), default="rgb", help="image channel order")
    g.add_argument("--sample-rate", type=int, default=None, help="audio sample rate in Hz")


_METADATA_DEFAULTS = {"task": "", "labels": None, "input_kind": None, "scale": 1.0, "mean": [0.0], "std": [1.0],
                      "color": "rgb", "sample_rate": None}


def _metadata(args, input_hint: str | None, stored=None):
    """The metadata options; with ``stored`` metadata (from the model's sidecar), only the options
    given on the command line replace what it says."""
    from dataclasses import replace

    from edge_runtime.metadata import ModelMetadata, Preprocess

    given = {k for k, default in _METADATA_DEFAULTS.items() if getattr(args, k) != default}
    if stored is not None:
        pre = stored.preprocess
        changes = {"kind": args.input_kind, "color": args.color, "scale": args.scale, "mean": tuple(args.mean),
                   "std": tuple(args.std), "sample_rate_hz": args.sample_rate}
        keys = {"input_kind": "kind", "color": "color", "scale": "scale", "mean": "mean", "std": "std",
                "sample_rate": "sample_rate_hz"}
        pre = replace(pre, **{keys[k]: changes[keys[k]] for k in given if k in keys})
        fields = {"preprocess": pre}
        if "task" in given:
            fields["task"] = args.task
        if "labels" in given:
            fields["labels"] = _metadata(args, input_hint).labels
        return replace(stored, **fields)

    labels: tuple[str, ...] = ()
    if args.labels:
        path = Path(args.labels)
        if path.is_file():
            labels = tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
        else:
            labels = tuple(x.strip() for x in args.labels.split(",") if x.strip())
    kind = args.input_kind or ("audio" if args.sample_rate else input_hint or "array")
    pre = Preprocess(kind=kind, color=args.color, scale=args.scale, mean=tuple(args.mean), std=tuple(args.std),
                     sample_rate_hz=args.sample_rate)
    return ModelMetadata(task=args.task, labels=labels, preprocess=pre)


def _input_hint(data) -> str | None:
    if data and Path(data).is_dir():
        if any(p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".gif") for p in Path(data).rglob("*")):
            return "image"
        if any(p.suffix.lower() == ".wav" for p in Path(data).rglob("*")):
            return "audio"
    return None


def _progress(message: str) -> None:
    print(f"[edgepilot] {message}", file=sys.stderr, flush=True)


def run_convert(args) -> int:
    import os

    from convert import training_folder
    from convert.data import DEFAULT_CALIBRATION_SAMPLES, DEFAULT_EVAL_SAMPLES
    from convert.options import ConvertOptions
    from convert.quiet import VERBOSE_ENV
    from convert.workflow import convert_model

    if args.verbose:
        os.environ[VERBOSE_ENV] = "1"
    model, calib, evaluation, stored = args.model, args.calib, args.eval, None
    trained = training_folder.find(args.model)
    if trained is not None:
        model, stored = trained.model, trained.metadata
        calib, evaluation = calib or trained.calib, evaluation or trained.eval
        _progress(f"training folder {trained.folder}: model {model.name}, calibration {calib or 'none'}, "
                  f"evaluation {evaluation or 'none'}")
    elif args.model.exists():
        stored = training_folder.stored_metadata(args.model)
    targets = ("tflite_int8",) if args.int8 else tuple(args.targets)
    options = ConvertOptions(
        model=model, out_dir=args.out, targets=targets, calib=calib, eval=evaluation,
        calib_samples=args.calib_samples or DEFAULT_CALIBRATION_SAMPLES,
        eval_samples=args.eval_samples or DEFAULT_EVAL_SAMPLES, budget=args.budget, auto_fix=args.auto_fix,
        force=args.force, int8_io=args.int8_io, onnx_int8=args.onnx_int8, metadata=_metadata(args, _input_hint(calib), stored),
        bench_runs=args.bench_runs, batch=args.batch)
    card = convert_model(options, progress=_progress)
    print(card.to_json() if args.json else card.markdown())
    print(f"[edgepilot] wrote {args.out}/report.md, report.json, report.png", file=sys.stderr)
    misses = card.budget_misses()
    failed = [r for r in card.results if not r.ok and not r.skipped]
    for r, over in misses:
        if r.ok:
            print(f"edgepilot convert: {r.target} misses the {card.budget}-point budget by {over:.2f} points "
                  f"({card.metric_name}: {r.metric(card.labelled):.2f} vs float {card.reference_metric():.2f})",
                  file=sys.stderr)
    for r in card.results:
        if not r.ok:
            print(f"edgepilot convert: {r.target} {'skipped' if r.skipped else 'failed'}: {r.reason}"
                  + (f" Advice: {r.advice}" if r.advice else ""), file=sys.stderr)
    if any(r.ok for r, _ in misses):
        return EXIT_OVER_BUDGET
    return EXIT_VARIANT_FAILED if failed else EXIT_OK


def run_quant_debug(args) -> int:
    from convert.data import DEFAULT_CALIBRATION_SAMPLES
    from convert.options import ConvertOptions
    from convert.workflow import Conversion

    options = ConvertOptions(model=args.model, out_dir=Path("."), targets=("tflite_int8",), calib=args.calib,
                             calib_samples=args.calib_samples or DEFAULT_CALIBRATION_SAMPLES,
                             metadata=_metadata(args, _input_hint(args.calib)), force=True)
    conversion = Conversion(options, progress=_progress)
    try:
        conversion.load()
        conversion.calibrate()
        rows = conversion.layer_errors()
    finally:
        conversion.close()
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    print("| rank | op | tensor | rmse / scale | max abs error | mean error | scale |")
    print("|---|---|---|---|---|---|---|")
    for i, r in enumerate(rows[: args.top], 1):
        print(f"| {i} | {r['op']} | {r['tensor']} | {r['rmse_over_scale']:.3f} | {r['max_abs_error']:.4g} | "
              f"{r['mean_error']:.4g} | {r['scale']:.4g} |")
    return EXIT_OK
