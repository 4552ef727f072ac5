"""``make bench``: every benchmark, each a section of docs/benchmarks.md.

Sections: ``runtime`` (overhead of edge_runtime over the raw interpreter, LiteRT vs ONNX Runtime,
1 vs 2 threads, fp32 vs int8, the Fashion-MNIST report card), ``detector`` and ``classifier`` (the
training recipes: float / int8 / QAT, and the throughput of two workers), ``camera`` (the
detection pipeline on vtest.avi), ``control`` (policies at a fixed rate) and ``speech`` (keyword
spotting: the digits, calibrated; false accepts, latency, real-time factor, memory). ``--sections`` runs
some of them and replaces only those sections in the file, between their markers."""
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
from convert.files import write_atomic  # noqa: E402
from edge_runtime.bench import benchmark, table  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--cache", default=os.path.expanduser("~/.cache/edgepilot/bench-models"))
    parser.add_argument("--calls", type=int, default=3000, help="interleaved calls for the overhead figures")
    parser.add_argument("--runs", type=int, default=300, help="timed runs per model for the comparison")
    parser.add_argument("--epochs", type=int, default=3, help="Fashion-MNIST training epochs")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        parser.error(f"--sections: unknown {unknown}; expected any of {SECTIONS}")
    out = Path(args.out)
    for name in chosen:
        body = SECTION_FUNCTIONS[name](args)
        # read the file again now, not when the run started: a section takes up to hours, and
        # edits made to the other sections meanwhile must not be overwritten
        text = _replace(_current(out), name, body)
        write_atomic(out, text, force=True)  # after each section, so a later failure keeps what was measured
        print(f"wrote section {name} of {out}", flush=True)
    return 0


def _current(out: Path) -> str:
    """The file as it is now, in sections (a file from before the sections becomes the runtime part)."""
    text = out.read_text() if out.is_file() else ""
    if MARK.format("runtime") not in text:
        earlier = text.split("\n", 1)[1].strip() if text.startswith("# Benchmarks") else ""
        text = HEADER + "".join(f"{MARK.format(n)}\n{earlier if n == 'runtime' else ''}\n{END.format(n)}\n"
                                for n in SECTIONS)
    return text


SECTIONS = ("runtime", "detector", "classifier", "camera", "control", "speech")
MARK, END = "<!-- section:{} -->", "<!-- /section:{} -->"
HEADER = """# Benchmarks

Produced by `make bench` (`python bench/run.py`; one part: `python bench/run.py --sections detector`).
This machine is shared and noisy: read the medians and the ratios, not single absolute times.
Each section says when and where it was measured.

"""


def _replace(text: str, name: str, body: str) -> str:
    start, end = MARK.format(name), END.format(name)
    if start not in text:
        text += f"{start}\n{end}\n"
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{body.strip()}\n{end}{tail}"


def _machine() -> str:
    from bench.host import cpu_description
    from edge_runtime.tflite_backend import interpreter_label

    return (f"{date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores of {cpu_description()}, "
            f"Python {platform.python_version()}, {interpreter_label()}")


def detector_section(args) -> str:
    from bench import vision

    body = vision.run_detector(Path(args.cache), runs=args.runs, progress=lambda m: print(m, flush=True))
    return body.replace("\n", f"\n\nMeasured {_machine()}.\n", 1)


def classifier_section(args) -> str:
    from bench import vision

    body = vision.run_classifier(Path(args.cache), runs=args.runs, progress=lambda m: print(m, flush=True))
    return body.replace("\n", f"\n\nMeasured {_machine()}.\n", 1)


def camera_section(args) -> str:
    from bench import camera, vision

    folders = vision.detector_cached(Path(args.cache), progress=lambda m: print(m, flush=True))
    converted = folders["detector"] / "converted"
    models = [("BlazeFace short range (fp32)", str(assets_path("blazeface_short_range.tflite")))]
    for target in ("tflite_fp32", "tflite_int8"):
        path = converted / f"detector_{target}.tflite"
        if path.is_file():
            models.append((f"edgepilot detector ({target})", str(path)))
    return f"## Camera: `edgepilot detect`\n\nMeasured {_machine()}.\n\n" + camera.run(models)


def control_section(args) -> str:
    from bench import control

    return f"## Robot control: `edgepilot control`\n\nMeasured {_machine()}.\n\n" + control.run(
        Path(args.cache), progress=lambda m: print(m, flush=True))


def speech_section(args) -> str:
    from bench import speech

    body = speech.run(Path(args.cache), progress=lambda m: print(m, flush=True))
    return body.replace("\n", f"\n\nMeasured {_machine()}.\n", 1)


def assets_path(name: str) -> Path:
    import assets

    return assets.fetch(name)


def runtime_section(args) -> str:
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

    text = f"""## Runtime

`python bench/run.py --sections runtime`, measured {_machine()}.

### Overhead of `Model.run` over the raw interpreter

The same .tflite file in `edge_runtime` and in a bare `ai_edge_litert.Interpreter`
(set_tensor / invoke / get_tensor), one thread, {args.calls} calls interleaved one by one so noise
hits both alike. Targets: at most +5% on a ~500 us model, at most +15 us per call on a tiny one.

| model | raw p50 us | Model.run p50 us | extra us/call | extra % | calls |
|---|---|---|---|---|---|
{chr(10).join(rows)}

### The same CNN on LiteRT and ONNX Runtime, 1 vs 2 threads, fp32 vs int8

CNN with ~160k parameters on 64x64x3; int8 is full-integer TFLite; the ONNX files are tf2onnx
conversions of the two .tflite files. {args.runs} timed runs after 30 warm-up runs; the last
column is p50 relative to the first row.

{table(results)}

### Conversion report card: Fashion-MNIST CNN, every variant

A CNN of ~100k parameters trained {args.epochs} epochs on the 60,000 Fashion-MNIST training images
(Debian's `dataset-fashion-mnist`; the Keras model scores {keras_top1:.2f}% on the test split),
converted by `edgepilot convert` with 200 calibration images and measured on all 10,000 test
images through `edge_runtime` ({args.runs} timed runs per variant, one thread). {int8_line}.

{card_md}
"""
    return text


SECTION_FUNCTIONS = {"runtime": runtime_section, "detector": detector_section, "classifier": classifier_section,
                     "camera": camera_section, "control": control_section, "speech": speech_section}


if __name__ == "__main__":
    sys.exit(main())
