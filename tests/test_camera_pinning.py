"""When the pipeline pins its stage threads (apps/camera/pinning.py): ``--pin``, ``--no-pin``,
and the default, which pins while ``--streams auto`` runs one stream. The model objects here are
stand-ins saying where a model runs (a GPU cannot be had on this machine); the pinning itself
is exercised on a real pipeline in test_camera_pipeline.py and test_camera_streams.py."""
from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from apps.camera.pinning import Pinning, pin_plan

CPU = SimpleNamespace(device="cpu", accelerator="cpu/xnnpack x1 threads", threads=1)
GPU = SimpleNamespace(device="gpu", accelerator="gpu/opencl delegate", threads=1)


def _two_cpus():
    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("pinning needs Linux and two usable CPUs")
    return sorted(os.sched_getaffinity(0))


def test_nothing_is_pinned_unless_asked_or_auto_runs():
    assert Pinning.choose(False, True, 1, 2.0, CPU).text == "not requested"  # --no-pin, even with auto
    assert Pinning.choose(None, True, 1, None, CPU).text == "not requested"  # --streams 1: default off
    assert Pinning.choose(None, True, 1, None, CPU).plan is None
    assert Pinning.choose(True, False, 1, None, CPU).text == "not pinned: the sequential loop has one thread"
    assert Pinning.choose(None, False, 1, 2.0, CPU).text == "not requested"  # sequential: nothing to pin
    assert Pinning.choose(True, True, 2, None, CPU).text == "not pinned: 2 inference streams share the CPUs"


def test_auto_pins_a_single_threaded_cpu_model_where_two_cpus_can_be_had():
    cpus = _two_cpus()
    auto = Pinning.choose(None, True, 1, 2.0, CPU)
    assert auto.plan == pin_plan(1)[0] and auto.plan["infer"] == {cpus[-1]}
    assert auto.text == f"auto: {pin_plan(1)[1]} while one stream runs"
    assert Pinning.choose(True, True, 1, None, CPU).text == pin_plan(1)[1]  # --pin with --streams 1
    quota = Pinning.choose(None, True, 1, 1.5, CPU)  # docker --cpus 1.5 on a bigger machine
    assert quota.plan is None and quota.text == "auto: not pinned: 1.5 usable CPU(s) (CPUs or cgroup quota)"
    gpu = Pinning.choose(None, True, 1, 2.0, GPU)
    assert gpu.plan is None and gpu.text == "auto: not pinned: the model runs on gpu/opencl delegate"
    wide = Pinning.choose(None, True, 1, 2.0, SimpleNamespace(device="cpu", accelerator="cpu", threads=2))
    assert wide.plan is None and "--threads 1" in wide.text


def test_release_puts_a_pinned_thread_back_and_pins_no_more():
    import threading

    cpus = _two_cpus()
    pinning = Pinning.choose(None, True, 1, 2.0, CPU)
    pinned, released, go = [], [], threading.Event()

    def stage():
        pinning.apply("infer")
        pinned.append(os.sched_getaffinity(0))
        go.wait(10)
        released.append(os.sched_getaffinity(0))

    thread = threading.Thread(target=stage)
    thread.start()
    while not pinned and thread.is_alive():
        thread.join(0.01)
    pinning.release("at frame 7 for stream 2")
    go.set()
    thread.join()
    assert pinned == [{cpus[-1]}] and released == [set(cpus)]
    assert pinning.text.endswith("while one stream runs; released at frame 7 for stream 2")
    pinning.apply("capture")  # after the release: nothing happens to the caller
    assert os.sched_getaffinity(0) == set(cpus)


def test_a_pin_the_os_refuses_stops_the_run_with_pin_and_not_by_default(monkeypatch):
    """The OS may refuse (the allowed CPUs shrank since the plan was made, a seccomp profile):
    --pin fails the run with the OS's error; the default goes on unpinned and says why."""
    _two_cpus()
    real = os.sched_setaffinity

    def refuse(pid, cpus):
        if pid == 0:
            raise OSError(22, "Invalid argument")
        real(pid, cpus)

    asked, auto = Pinning.choose(True, True, 1, None, CPU), Pinning.choose(None, True, 1, 2.0, CPU)
    monkeypatch.setattr(os, "sched_setaffinity", refuse)
    with pytest.raises(OSError, match="Invalid argument"):
        asked.apply("infer")
    auto.apply("prepare")
    assert auto.plan is None
    assert auto.text == "auto: not pinned: the prepare thread could not be pinned ([Errno 22] Invalid argument)"


def test_release_also_frees_threads_a_pinned_thread_started():
    """A thread starts on its creator's CPUs: a video decoder's worker started by the pinned
    capture thread (reopening a file in --loop, a reconnect) is put back too."""
    import threading

    cpus = _two_cpus()
    pinning = Pinning.choose(None, True, 1, 2.0, CPU)
    child_cpus, go, started = [], threading.Event(), threading.Event()

    def child():
        started.set()
        go.wait(10)
        child_cpus.append(os.sched_getaffinity(0))

    def capture():
        pinning.apply("capture")
        worker = threading.Thread(target=child)
        worker.start()
        started.wait(10)
        pinning.done()  # the capture thread ends; its worker lives on
        return worker

    holder = []
    thread = threading.Thread(target=lambda: holder.append(capture()))
    thread.start()
    thread.join()
    pinning.release("at frame 3 for stream 2")
    go.set()
    holder[0].join()
    assert child_cpus == [set(cpus)]


def test_the_callers_thread_gets_its_own_cpus_back_on_release_and_on_restore():
    cpus = _two_cpus()
    own = os.sched_getaffinity(0)
    for end in ("release", "restore"):
        pinning = Pinning.choose(None, True, 1, 2.0, CPU)
        pinning.apply_caller()
        assert os.sched_getaffinity(0) == set(cpus[:-1])
        pinning.release("at frame 5 for stream 2") if end == "release" else pinning.restore()
        assert os.sched_getaffinity(0) == own, end
