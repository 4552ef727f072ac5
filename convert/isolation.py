"""Run one conversion step in a child process, so that a converter that crashes (seen here:
int8 of a Keras 3 LSTM kills the process with SIGSEGV) or hangs fails that step only.

Children are forked from a server that has imported TensorFlow once, so each step starts in
well under a second instead of paying TensorFlow's import again. Their output (TensorFlow's
log noise included) goes to a log file whose tail is reported when a step fails."""
from __future__ import annotations

import multiprocessing
import os
import signal
import traceback
from dataclasses import dataclass
from pathlib import Path

_CONTEXT = None


class StepFailed(RuntimeError):
    """A step raised, crashed or timed out in its child process."""

    def __init__(self, step: str, reason: str, log_tail: str = ""):
        super().__init__(f"{step}: {reason}")
        self.step, self.reason, self.log_tail = step, reason, log_tail


@dataclass(frozen=True)
class _Outcome:
    ok: bool
    value: object = None
    error: str = ""


def _context():
    global _CONTEXT
    if _CONTEXT is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        # tf_keras must be chosen before TensorFlow is imported; Keras 3 files use `import keras`.
        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
        _CONTEXT = multiprocessing.get_context("forkserver")
        _CONTEXT.set_forkserver_preload(["tensorflow"])
    return _CONTEXT


def _child(conn, log_path: str, fn, args, kwargs) -> None:
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    try:
        conn.send(_Outcome(True, fn(*args, **kwargs)))
    except BaseException as exc:  # reported to the parent, which decides
        conn.send(_Outcome(False, error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"))
    finally:
        conn.close()


_NOISE = ("I0000", "W0000", "WARNING: All log messages", "cudart_stub", "cpu_feature_guard", "To enable the following")


def _tail(path: Path, lines: int = 25) -> str:
    """The last ``lines`` lines of a child's log, without TensorFlow's start-up noise."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join([line for line in text if not any(n in line for n in _NOISE)][-lines:])


def run_isolated(step: str, fn, *args, log_path: Path, timeout_s: float = 900, **kwargs):
    """Run ``fn(*args, **kwargs)`` in a child process and return its result.

    Raises :class:`StepFailed` with the reason (the exception, the signal that killed the
    child, or the timeout) and the tail of the child's log."""
    ctx = _context()
    parent, child = ctx.Pipe(duplex=False)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    process = ctx.Process(target=_child, args=(child, str(log_path), fn, args, kwargs), daemon=True)
    from convert.quiet import quiet_stderr

    with quiet_stderr():  # the first start launches the forkserver, which loads TensorFlow
        process.start()
    child.close()
    outcome = None
    if parent.poll(timeout_s):
        try:
            outcome = parent.recv()
        except EOFError:
            outcome = None
    process.join(timeout=5 if outcome is not None else 0.1)
    if process.is_alive():
        process.kill()
        process.join()
        if outcome is None:
            raise StepFailed(step, f"timed out after {timeout_s:.0f} s", _tail(log_path))
    if outcome is None:
        code = process.exitcode
        reason = (f"the converter crashed the process ({signal.Signals(-code).name})" if code and code < 0
                  else f"the child process exited with code {code} without a result")
        raise StepFailed(step, reason, _tail(log_path))
    if not outcome.ok:
        first = outcome.error.strip().splitlines()[0] if outcome.error.strip() else "failed"
        raise StepFailed(step, first[:1500], outcome.error[-3000:] + "\n" + _tail(log_path))
    return outcome.value
