"""Ending a live loop cleanly on Ctrl-C or SIGTERM, shared by the apps."""
from __future__ import annotations

import signal
import threading


class StopSignals:
    """While entered, SIGTERM / SIGINT only set ``received`` ("sigterm" / "sigint"), which the loop
    reads between iterations, so the work in flight finishes and the summary still comes. Handlers
    are installed in the main thread only; the old ones come back on exit."""

    def __init__(self):
        self.received: str | None = None
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig, name in ((signal.SIGTERM, "sigterm"), (signal.SIGINT, "sigint")):
                self._old[sig] = signal.signal(sig, lambda *_, n=name: setattr(self, "received", n))
        return self

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        return False
