"""JSON lines on stdout for machines, progress on stderr for people.

Every app command with ``--json`` prints one JSON object per event (a frame, a keyword, a
control step) and, last, ``{"summary": {...}}``; nothing else goes to stdout, so
``edgepilot detect ... --json | jq`` always works. Human progress goes to stderr.
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any, TextIO


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars/arrays, tuples, dataclasses and paths turned into plain JSON
    types; NaN and infinities become null (JSON has no such numbers)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = value.to_dict() if hasattr(value, "to_dict") else dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return jsonable(value.tolist())
    return str(value)


class EventWriter:
    """One JSON object per line on ``stream`` (stdout by default), flushed at once so a reader
    sees each event when it happens. Thread-safe. ``enabled=False`` makes it a no-op, so callers
    need no ``if args.json`` around every event."""

    def __init__(self, stream: TextIO | None = None, enabled: bool = True):
        self.stream = stream if stream is not None else sys.stdout
        self.enabled = enabled
        self.count = 0
        self._lock = threading.Lock()

    def emit(self, event: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        line = json.dumps(jsonable(event), separators=(",", ":"), allow_nan=False)
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()
            self.count += 1

    def summary(self, summary: Any) -> None:
        """The last line: ``{"summary": {...}}``."""
        self.emit({"summary": jsonable(summary)})


class Progress:
    """A status line on stderr at most every ``interval_s``: rewritten in place on a terminal,
    one line per update otherwise (logs). Disabled with ``enabled=False``."""

    def __init__(self, label: str, interval_s: float = 1.0, stream: TextIO | None = None, enabled: bool = True):
        self.label, self.interval_s = label, interval_s
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last = -math.inf
        self._shown = False

    def update(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < self.interval_s):
            return
        self._last = now
        if self._tty:
            self.stream.write(f"\r\x1b[K{self.label}: {text}")
        else:
            self.stream.write(f"{self.label}: {text}\n")
        self.stream.flush()
        self._shown = True

    def done(self, text: str | None = None) -> None:
        if text is not None:
            self.update(text, force=True)
        if self.enabled and self._tty and self._shown:
            self.stream.write("\n")
            self.stream.flush()

    def note(self, text: str) -> None:
        """A line of its own (a reconnect, a warning), kept apart from the status line."""
        if not self.enabled:
            return
        self.stream.write(("\r\x1b[K" if self._tty else "") + f"{self.label}: {text}\n")
        self.stream.flush()
