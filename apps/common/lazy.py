"""Lazy package exports: a package names what it exports and the module each lives in, and the
module is imported on first use (so ``import apps.camera`` stays cheap and pulls in no OpenCV
until a name is used)."""
from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict[str, str]):
    """The ``__getattr__`` for ``package``: ``exports`` maps each name to its module."""

    def __getattr__(name: str):
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
