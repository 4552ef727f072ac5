"""Shared fixtures: real third-party models (fetched once into a cache, sha256-checked) and
tiny models the tests build themselves."""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import assets  # noqa: E402  (scripts/assets.py: the asset table and fetcher)

WAKE_WORDS = ("alexa", "hey_jarvis", "hey_mycroft", "okay_nabu")


def has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def require_system(present: bool, what: str) -> None:
    """Skip the calling test when a system part (a Debian package, a file it ships) is missing,
    naming it; but fail when the environment variable CI is set, since CI installs them all."""
    if present:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing, and CI (env CI is set) must have it")
    pytest.skip(f"{what} is missing")


@pytest.fixture(scope="session")
def asset():
    """``asset("silero_vad.onnx") -> Path``: a real model read out of a pinned wheel."""
    return assets.fetch


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """Tiny TFLite models built here with TensorFlow (skipped where TF is absent)."""
    if not has("tensorflow"):
        pytest.skip("building tiny models needs TensorFlow (not in this environment)")
    from tiny_models import build_all

    return build_all(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory):
    """Tiny ONNX models built with onnx.helper (no TensorFlow)."""
    if not has("onnx"):
        pytest.skip("building ONNX models needs the onnx package")
    from tiny_models import build_onnx

    return build_onnx(tmp_path_factory.mktemp("tiny_onnx"))
