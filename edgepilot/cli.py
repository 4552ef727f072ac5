"""``edgepilot`` command line: ``main(argv) -> int``.

Each subcommand's module is imported only when that subcommand runs, so ``edgepilot --help``
imports neither TensorFlow, nor ONNX Runtime, nor OpenCV."""
from __future__ import annotations

import argparse
import json
import sys

EXAMPLES = {
    "inspect": "edgepilot inspect model.tflite --device cpu",
    "bench": "edgepilot bench a.tflite b.onnx --threads 1 2 --runs 200",
}


class _Progress:
    """A one-line progress bar on stderr (only when stderr is a terminal)."""

    def __init__(self, label: str):
        self.label, self.enabled = label, sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        width = 30
        filled = int(width * done / total)
        sys.stderr.write(f"\r{self.label[:40]:<40} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _cmd_inspect(args) -> int:
    from edge_runtime.bench import parse_shapes
    from edge_runtime.inspection import inspect_model

    for path in args.models:
        report = inspect_model(path, device=args.device, threads=args.threads, shapes=parse_shapes(args.shape))
        print(json.dumps(report.to_dict(), indent=2) if args.json else report.render())
    return 0


def _cmd_bench(args) -> int:
    from edge_runtime.bench import benchmark, parse_shapes, table

    shapes = parse_shapes(args.shape)
    results = []
    for path in args.models:
        for device in args.device:
            for threads in args.threads:
                label = f"{path} {device} x{threads}"
                results.append(benchmark(path, device=device, threads=threads, runs=args.runs,
                                         warmup=args.warmup, progress=_Progress(label), shapes=shapes))
    if args.json:
        print(json.dumps([json.loads(r.to_json()) for r in results], indent=2))
    else:
        print(table(results, markdown=args.markdown))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgepilot",
        description="Convert Keras models to TFLite/ONNX, and run and benchmark them on edge devices.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("inspect", help="inputs, outputs, quantization, ops, metadata and device placement of a model",
                       epilog=f"example: {EXAMPLES['inspect']}")
    p.add_argument("models", nargs="+", metavar="MODEL", help=".tflite or .onnx file")
    p.add_argument("--device", default="auto", help="auto, cpu, gpu, edgetpu, edgetpu:usb:0 ... (default auto)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default 1)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--shape", action="append", metavar="NAME=D1xD2", help="input shape for open dimensions")
    p.set_defaults(func=_cmd_inspect)

    p = sub.add_parser("bench", help="latency / throughput / memory of models, side by side",
                       epilog=f"example: {EXAMPLES['bench']}")
    p.add_argument("models", nargs="+", metavar="MODEL", help=".tflite or .onnx files")
    p.add_argument("--device", nargs="+", default=["auto"], help="one or more devices (default auto)")
    p.add_argument("--threads", nargs="+", type=int, default=[1], help="one or more thread counts (default 1)")
    p.add_argument("--runs", type=int, default=100, help="timed runs per model (default 100)")
    p.add_argument("--warmup", type=int, default=10, help="untimed runs before timing (default 10)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--markdown", action="store_true", help="print a markdown table")
    p.add_argument("--shape", action="append", metavar="NAME=D1xD2",
                   help="input shape for open dimensions, e.g. --shape input=1x576 (repeatable)")
    p.set_defaults(func=_cmd_bench)

    from convert.cli import (
        add_parsers,  # argparse only: TensorFlow is imported when a command runs
    )

    add_parsers(sub)
    from train.cli import (
        add_parsers as add_train_parsers,  # argparse only: TensorFlow loads when a command runs
    )

    add_train_parsers(sub)
    from apps.camera.cli import (
        add_parsers as add_camera_parsers,  # argparse only: OpenCV/LiteRT load when it runs
    )

    add_camera_parsers(sub)
    from apps.control.cli import (
        add_parser as add_control_parser,  # argparse only: the loop loads when it runs
    )

    add_control_parser(sub)
    from apps.speech.cli import (
        add_parser as add_listen_parser,  # argparse only: the spotter loads when it runs
    )

    add_listen_parser(sub)
    from apps.speech.calibrate_cli import (
        add_parser as add_calibrate_parser,  # argparse only: the spotter loads when it runs
    )

    add_calibrate_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from edge_runtime.errors import EdgeRuntimeError

    try:
        return args.func(args)
    except (EdgeRuntimeError, ValueError, OSError, RuntimeError) as exc:
        print(f"edgepilot {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
