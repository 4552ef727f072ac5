"""Pinning the pipeline's stage threads to CPUs: ``--pin``, and by default while ``--streams
auto`` runs one stream.

Why: on a small CPU the scheduler spreads the pipeline's busy threads (capture, prepare,
inference, the caller's decoding) evenly over the cores, so inference, the slowest stage, gets
only part of one. With one inference stream, keeping capture, prepare and the caller's
decoding off the inference CPU gives it a core of its own: on 2 cores BlazeFace on vtest.avi
went from 0.80x to 0.96x of the model's own speed (docs/benchmarks.md). Once auto adds a
second stream the streams need every CPU, so the pinning is released then.

``pin``: True pins (``--pin``), False never does (``--no-pin``), None (the default) pins only
while ``--streams auto`` runs one single-threaded stream on the CPU with at least 2 usable CPUs
(and a cgroup quota of at least 2). :attr:`Pinning.text` says what was done, or why not, for
the run's summary.
"""
from __future__ import annotations

import os
import threading

from apps.camera.streams import runs_on_cpu

AUTO_PREFIX = "auto: "


def pin_plan(inference_threads: int) -> tuple[dict[str, set[int]] | None, str]:
    """CPUs per stage: the inference thread on the last CPU this process may use; capture,
    prepare and the caller's thread while it iterates the pipeline (decoding, tracking, outputs)
    on the others. Threads a library starts from a stage thread start on that thread's CPUs.
    Returns ``(plan, description)``; the plan is None when pinning cannot help."""
    if not hasattr(os, "sched_setaffinity"):
        return None, "not pinned: this OS has no sched_setaffinity (Linux only)"
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, f"not pinned: this process may use only CPU {cpus}"
    if inference_threads != 1:
        return None, f"not pinned: inference runs on {inference_threads} threads (pinning needs --threads 1)"
    others = set(cpus[:-1])
    plan = {"infer": {cpus[-1]}, "capture": others, "prepare": others, "caller": others}
    return plan, f"inference on CPU {cpus[-1]}; capture, prepare and decoding on CPU {','.join(map(str, cpus[:-1]))}"


class Pinning:
    """Where the stage threads run. Each stage thread calls :meth:`apply` as it starts;
    :meth:`release` puts every pinned thread back on all the CPUs it had."""

    def __init__(self, plan: dict[str, set[int]] | None, text: str, strict: bool = True):
        self.plan, self.text, self.strict = plan, text, strict
        self._all = os.sched_getaffinity(0) if plan is not None else set()
        self._pinned: set[int] = set()  # native ids of the live pinned threads
        self._caller: tuple[int, set[int]] | None = None  # the caller's thread id and its own CPUs
        self._lock = threading.Lock()

    @classmethod
    def choose(cls, pin: bool | None, threaded: bool, streams: int, auto_capacity: float | None,
               model) -> "Pinning":
        """``auto_capacity``: the usable CPUs (or quota) when ``--streams auto`` runs, else None;
        ``model``: an :class:`edge_runtime.Model`."""
        if pin is not None:
            pin = bool(pin)
        if pin is False or (pin is None and (auto_capacity is None or not threaded)):
            return cls(None, "not requested")
        if not threaded:
            return cls(None, "not pinned: the sequential loop has one thread")
        if pin and streams > 1:
            return cls(None, f"not pinned: {streams} inference streams share the CPUs")
        threads = getattr(model, "threads", 1)
        if pin:
            return cls(*pin_plan(threads))
        # the default with --streams auto: pin while one stream runs, where that can help
        if not runs_on_cpu(model):
            return cls(None, f"{AUTO_PREFIX}not pinned: the model runs on {model.accelerator}")
        if auto_capacity < 2:
            return cls(None, f"{AUTO_PREFIX}not pinned: {auto_capacity:g} usable CPU(s) (CPUs or cgroup quota)")
        plan, text = pin_plan(threads)
        return cls(plan, AUTO_PREFIX + text + (" while one stream runs" if plan else ""), strict=False)

    def apply(self, stage: str) -> None:
        """Pin the calling thread as the plan says for ``stage`` (nothing once released). A pin
        the OS refuses (the allowed CPUs changed, a seccomp profile) raises with ``--pin``; by
        default the run goes on unpinned and :attr:`text` says why."""
        with self._lock:
            if self.plan is None:
                return
            try:
                os.sched_setaffinity(0, self.plan[stage])  # 0: the calling thread
            except OSError as exc:
                if self.strict:
                    raise
                self._unpin()
                self.text = f"{AUTO_PREFIX}not pinned: the {stage} thread could not be pinned ({exc})"
                return
            self._pinned.add(threading.get_native_id())

    def apply_caller(self) -> None:
        """Pin the calling thread, the one iterating the pipeline, as the plan says for
        ``caller``; :meth:`restore` gives it back its own CPUs."""
        with self._lock:
            if self.plan is not None and self._caller is None:
                self._caller = (threading.get_native_id(), os.sched_getaffinity(0))
        self.apply("caller")

    def restore(self) -> None:
        """The caller's thread back on the CPUs it had before :meth:`apply_caller`."""
        with self._lock:
            self._restore_caller()

    def _restore_caller(self) -> None:
        if self._caller is not None:
            tid, cpus = self._caller
            self._caller = None
            self._pinned.discard(tid)
            try:
                os.sched_setaffinity(tid, cpus)
            except OSError:  # that thread has ended
                pass

    def done(self) -> None:
        """The calling stage thread is ending: forget it (its id may be reused)."""
        with self._lock:
            self._pinned.discard(threading.get_native_id())

    def release(self, why: str) -> None:
        """Put the pinned threads back on every CPU they had, and those they started meanwhile
        (a thread starts on its creator's CPUs: a video decoder reopened by the capture thread),
        and pin no more; ``why`` is added to :attr:`text`."""
        with self._lock:
            if self.plan is None:
                return
            self._unpin()
            self.text += f"; released {why}"

    def _unpin(self) -> None:
        """Every live thread of this process on one of the plan's CPU sets back on all of them
        (the caller's thread back on its own)."""
        self._restore_caller()
        sets = [cpus for cpus in self.plan.values() if cpus != self._all]
        try:
            tids = {int(tid) for tid in os.listdir("/proc/self/task")}  # this process's live threads
        except OSError:  # no /proc: the stage threads alone
            tids = set(self._pinned)
        for tid in tids:
            try:
                if tid in self._pinned or os.sched_getaffinity(tid) in sets:
                    os.sched_setaffinity(tid, self._all)
            except OSError:  # ended meanwhile, or not ours to change
                pass
        self.plan, self._pinned = None, set()
