"""The conversion benchmark: a small CNN trained on Fashion-MNIST (Debian's
dataset-fashion-mnist), converted to every variant, each measured on the 10,000 test images."""
from __future__ import annotations

from pathlib import Path

from convert.options import ConvertOptions
from convert.report import ReportCard
from convert.workflow import convert_model
from train.recipes import FASHION_MNIST_METADATA, fashion_mnist_cnn


def run(cache: Path, epochs: int = 3, batch: int | None = None, bench_runs: int = 200, progress=None,
        force: bool = True) -> tuple[ReportCard, float]:
    """(report card, the Keras model's own test top-1). The trained model is cached."""
    cache.mkdir(parents=True, exist_ok=True)
    model = cache / f"fashion_mnist_cnn_{epochs}ep.keras"
    calib, test = cache / "fmnist_calib.npz", cache / "fmnist_test.npz"
    marker = cache / f"fashion_mnist_cnn_{epochs}ep.top1"
    if not (model.exists() and calib.exists() and test.exists() and marker.exists()):
        trained = fashion_mnist_cnn(model, epochs=epochs, calib_npz=calib, eval_npz=test)
        marker.write_text(f"{trained.test_top1}")
    keras_top1 = float(marker.read_text())
    options = ConvertOptions(model=model, out_dir=cache / ("out" if batch is None else f"out_batch{batch}"),
                             calib=calib, eval=test, eval_samples=10000, budget=1.0, force=force,
                             metadata=FASHION_MNIST_METADATA, bench_runs=bench_runs, batch=batch)
    return convert_model(options, progress=progress), keras_top1
