"""``make bench``: overhead of edge_runtime over the raw interpreter, and the same model on
LiteRT vs ONNX Runtime, 1 vs 2 threads, fp32 vs int8. Writes docs/benchmarks.md."""
from __future__ import annotations

import argparse
import os
import platform
import sys
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench import fashion_mnist, models, overhead  # noqa: E402
from edge_runtime.bench import benchmark, table  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--cache", default=os.path.expanduser("~/.cache/edgepilot/bench-models"))
    parser.add_argument("--calls", type=int, default=3000, help="interleaved calls for the overhead figures")
    parser.add_argument("--runs", type=int, default=300, help="timed runs per model for the comparison")
    parser.add_argument("--epochs", type=int, default=3, help="Fashion-MNIST training epochs")
    args = parser.parse_args(argv)

    import assets

    paths = models.build(Path(args.cache))
    wake = assets.fetch("wakeword_hey_mycroft.tflite")

    rows = []
    for label, path, float_io in [
        ("CNN 160k fp32 (~0.5 ms)", paths["cnn_fp32.tflite"], False),
        ("MLP 10k fp32 (tiny)", paths["mlp_fp32.tflite"], False),
        ("hey_mycroft int8, raw=True (tiny)", wake, False),
        ("hey_mycroft int8, float I/O vs hand-quantized (tiny)", wake, True),
    ]:
        o = overhead.measure(str(path), calls=args.calls, float_io=float_io)
        rows.append(f"| {label} | {o.raw_p50_us:.1f} | {o.ours_p50_us:.1f} | {o.extra_us:+.1f} | "
                    f"{(o.ratio - 1) * 100:+.1f}% | {o.calls} |")
        print(rows[-1], flush=True)

    results = []
    for name in ("cnn_fp32.tflite", "cnn_int8.tflite", "cnn_fp32.onnx", "cnn_int8.onnx"):
        for threads in (1, 2):
            results.append(benchmark(str(paths[name]), device="cpu", threads=threads, runs=args.runs, warmup=30))
            print(f"{name} x{threads}: p50 {results[-1].p50_ms:.3f} ms", flush=True)

    card, keras_top1 = fashion_mnist.run(Path(args.cache) / "fashion_mnist", epochs=args.epochs,
                                         bench_runs=args.runs, progress=lambda m: print(m, flush=True))
    card_md = card.markdown().split("\n", 2)[2]  # without its title line
    int8 = next(r for r in card.results if r.target == "tflite_int8")
    int8_line = (f"tflite_int8 top-1 {int8.top1:.2f}% vs float {card.reference_top1:.2f}% "
                 f"({card.drop(int8):+.2f} points; budget 1.0)")
    print(int8_line, flush=True)

    command = "make bench  (python bench/run.py)"
    text = f"""# Benchmarks

Produced by `{command}` on {date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores,
Python {platform.python_version()}. This machine is shared and noisy: read the medians and the
ratios, not single absolute times. Regenerate with `make bench`.

## Overhead of `Model.run` over the raw interpreter

The same .tflite file in `edge_runtime` and in a bare `ai_edge_litert.Interpreter`
(set_tensor / invoke / get_tensor), one thread, {args.calls} calls interleaved one by one so noise
hits both alike. Targets: at most +5% on a ~500 us model, at most +15 us per call on a tiny one.

| model | raw p50 us | Model.run p50 us | extra us/call | extra % | calls |
|---|---|---|---|---|---|
{chr(10).join(rows)}

## The same CNN on LiteRT and ONNX Runtime, 1 vs 2 threads, fp32 vs int8

CNN with ~160k parameters on 64x64x3; int8 is full-integer TFLite; the ONNX files are tf2onnx
conversions of the two .tflite files. {args.runs} timed runs after 30 warm-up runs; the last
column is p50 relative to the first row.

{table(results)}

## Conversion report card: Fashion-MNIST CNN, every variant

A CNN of ~100k parameters trained {args.epochs} epochs on the 60,000 Fashion-MNIST training images
(Debian's `dataset-fashion-mnist`; the Keras model scores {keras_top1:.2f}% on the test split),
converted by `edgepilot convert` with 200 calibration images and measured on all 10,000 test
images through `edge_runtime` ({args.runs} timed runs per variant, one thread). {int8_line}.

{card_md}
"""
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
