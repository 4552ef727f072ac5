"""What pinning the thread that iterates the pipeline (decoding, tracking, outputs) adds to the
default ``--streams auto`` pipeline: rounds that each measure the model alone, the default
pipeline with that thread left where the scheduler puts it (capture, prepare and inference still
pinned), and the default pipeline as it is; pipeline / model ratios per round and their medians.

    python bench/camera_pinning.py --rounds 5          # BlazeFace short range on vtest.avi
    python bench/camera_pinning.py --model det.tflite --rounds 5

Prints a markdown table on stdout (docs/benchmarks.md, "On this host, after the pinning change").
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.camera import model_only_fps, pipeline_summary  # noqa: E402


def rounds(path: str, frames: int, count: int, progress=print) -> dict[str, list[float]]:
    """Pipeline / model per round, for ``caller unpinned`` and ``default``."""
    from apps.camera.detector import Detector
    from apps.camera.pinning import Pinning

    detector = Detector(path, device="cpu", threads=1)
    real = Pinning.apply_caller
    ratios: dict[str, list[float]] = {"caller unpinned": [], "default": []}
    for n in range(count):
        for variant in ratios:
            model = model_only_fps(detector, runs=max(200, frames))
            Pinning.apply_caller = (lambda self: None) if variant == "caller unpinned" else real
            try:
                fps = pipeline_summary(path, frames, 1, streams="auto").fps
            finally:
                Pinning.apply_caller = real
            ratios[variant].append(fps / model)
            progress(f"round {n + 1} {variant}: model {model:.1f} FPS, pipeline {fps:.1f} FPS, {fps / model:.3f}x")
    return ratios


def table(ratios: dict[str, list[float]]) -> str:
    rows = [f"| {variant} | {statistics.median(v):.2f}x | {min(v):.2f}x-{max(v):.2f}x | "
            f"{', '.join(f'{r:.2f}' for r in v)} |" for variant, v in ratios.items()]
    return ("| default pipeline, decoding thread | pipeline / model, median | range | each round |\n"
            "|---|---|---|---|\n" + "\n".join(rows))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a .tflite detector (default: BlazeFace short range)")
    parser.add_argument("--frames", type=int, default=795)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "scripts"))
    import assets

    path = args.model or str(assets.fetch("blazeface_short_range.tflite"))
    print(table(rounds(path, args.frames, args.rounds, progress=lambda m: print(m, file=sys.stderr, flush=True))))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
