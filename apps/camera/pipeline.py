"""The pipelined loop: capture -> prepare -> infer on their own threads, the rest on the caller's.

Why threads: decoding a 768x576 video frame and resizing it cost about as much as a small
detector, and LiteRT's ``invoke``, OpenCV's decoding and resizing all release the GIL, so the
stages overlap: while the model runs on frame n, frame n+1 is being prepared and frame n+2
read. A plain loop pays for all of them one after the other.

Between the stages sit bounded hand-over queues (:class:`Handoff`):
  * live sources (cameras, streams) hand over only the newest item: when a stage is busy, the
    item waiting for it is replaced by a newer one and counted as dropped, so results are always
    about *now* and latency does not pile up;
  * files and image folders hand over every item in order, and a full queue makes the producer
    wait, so no frame is lost and memory stays bounded.

Iterating a :class:`Pipeline` yields :class:`Result` objects (frame, detections, latency) in
capture order; decoding runs in the consumer's thread so that everything that follows
(tracking, drawing, outputs) works on plain objects.

Inference streams (``streams=N``, ``--streams``; ``"auto"``, the default, starts with one and
adds more while the model is the bottleneck and a CPU idles: :mod:`apps.camera.streams`): N
interpreters of the same model, each on
its own thread, take prepared frames in turn (OpenVINO calls these throughput streams). One
single-threaded interpreter caps the pipeline at the model's own speed even when a core is idle;
one interpreter on two threads waits at every layer for its slower half, which stalls whenever
capture or preparation holds a core (docs/camera.md; bench/camera.py measures both). Results
still come out in capture order: for files the consumer waits for the next frame in order; for
live sources it never goes back in time: a frame that finishes after a newer one was shown is dropped and counted, and when
results wait for the consumer the oldest frame is the one dropped. At most ``2 * streams +
QUEUE_SIZE`` frames are taken by the streams and not yet shown (the next one to show included),
so a stalled stream cannot make the others pile up finished frames.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from apps.camera.detections import Detections
from apps.camera.pinning import Pinning
from apps.camera.sources import Frame, FrameSource
from apps.camera.streams import AUTO, AutoStreams, cpu_quota, why_one_stream

QUEUE_SIZE = 2  # per hand-over for files: enough to keep each stage busy, little memory


class _End:
    """The end of the stream, or the error that ended it (re-raised in the consumer)."""

    def __init__(self, error: BaseException | None = None):
        self.error = error


class Handoff:
    """A bounded queue between two threads: ``latest`` mode keeps only the newest items
    (replacing counts a drop), otherwise ``put`` waits while ``size`` items are queued.

    ``age`` (latest mode) says which item is the oldest when several producers put items out of
    order (the inference streams: a sequence number); without it the first queued is."""

    def __init__(self, size: int, latest: bool, stop: threading.Event, age=None):
        self.size, self.latest, self._stop, self._age = size, latest, stop, age
        self._items: deque = deque()
        self._cond = threading.Condition()
        self.dropped = 0

    def put(self, item) -> bool:
        """False when the pipeline is stopping (the item was not queued)."""
        with self._cond:
            if self.latest and not isinstance(item, _End):
                while len(self._items) >= self.size:
                    queued = [x for x in self._items if not isinstance(x, _End)]  # an end is never dropped
                    if not queued:
                        break
                    oldest = min(queued, key=self._age) if self._age else queued[0]
                    self.dropped += 1
                    if self._age and self._age(item) < self._age(oldest):
                        return True  # the new item is the stalest: it is the one dropped
                    self._items.remove(oldest)
            else:
                while len(self._items) >= self.size and not self._stop.is_set() and not isinstance(item, _End):
                    self._cond.wait(0.1)
                if self._stop.is_set() and not isinstance(item, _End):
                    return False
            self._items.append(item)
            self._cond.notify_all()
            return True

    def get(self):
        with self._cond:
            while not self._items:
                if self._stop.is_set():
                    return _End()
                self._cond.wait(0.1)
            item = self._items.popleft()
            self._cond.notify_all()
            return item


def check_counts(max_frames: int | None, streams: int | str) -> None:
    """ValueError naming the option when ``--max-frames`` or ``--streams`` is out of range."""
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"--max-frames must be >= 1, got {max_frames}")
    if streams != AUTO and (not isinstance(streams, int) or isinstance(streams, bool) or streams < 1):
        raise ValueError(f"--streams must be a positive integer or 'auto', got {streams!r}")


@dataclass(frozen=True)
class Result:
    """What the pipeline made of one frame. ``latency_s``: capture to decoded detections;
    ``events``: the tracker's appear/leave events (when tracking)."""

    frame: Frame
    detections: Detections
    latency_s: float
    inference_s: float
    events: tuple = ()


class Pipeline:
    """Runs ``detector`` over ``source`` on threads; iterate it for :class:`Result` objects.

    Args:
        detector: an :class:`apps.camera.detector.Detector`.
        source: an opened :class:`FrameSource`.
        max_frames: stop after this many results (None: until the source ends).
        threaded: False runs the same stages one after the other in the caller's thread (the
            baseline the benchmark compares against).
        pin: pin the stage threads to CPUs: True, False, or None (the default): only while
            ``streams="auto"`` runs one stream (:mod:`apps.camera.pinning`); ``pinning`` says what was done.
        streams: inference streams, or ``"auto"`` (see the module docstring); ``streams_note``
            says what auto decided.
    """

    def __init__(self, detector, source: FrameSource, max_frames: int | None = None, threaded: bool = True,
                 pin: bool | None = None, streams: int | str = 1):
        check_counts(max_frames, streams)
        self._auto: AutoStreams | None = None
        self._auto_off: str | None = None  # why auto stays at one stream from the start
        auto_capacity = None  # usable CPUs (or the quota) with streams="auto"
        if streams == AUTO:
            auto = AutoStreams(threads=detector.model.threads, live=source.spec.live, quota=cpu_quota())
            self._auto_off = why_one_stream(detector.model, threaded, pin is True, auto.capacity)
            self._auto = auto if self._auto_off is None else None
            streams, auto_capacity = 1, auto.capacity
        if streams > 1 and not threaded:
            raise ValueError(f"--streams {streams} needs the threaded pipeline; the sequential loop runs one")
        self.detector, self.source, self.max_frames, self.threaded = detector, source, max_frames, threaded
        self.live = source.spec.live
        self._stop = threading.Event()
        size = 1 if self.live else QUEUE_SIZE
        self._captured = Handoff(size, self.live, self._stop)
        self._prepared = Handoff(size, self.live, self._stop)
        # a live source's results may wait for the consumer one per stream (each stream's newest)
        self._inferred = Handoff(size + streams - 1, self.live, self._stop, age=lambda item: item[0])
        self.detectors = [detector] + [detector.replica() for _ in range(streams - 1)]
        self._take = threading.Lock()  # streams take prepared frames one at a time, numbering them
        self._taken = 0  # frames handed to the streams so far: the next one's sequence number
        self._next_out = 0  # the sequence number the consumer shows next
        self._pending: dict[int, tuple] = {}  # results that finished before an earlier frame
        self._ended = 0  # streams that have finished
        self._late = 0  # live: results that finished after a newer frame was shown
        self._ahead = 2 * streams + QUEUE_SIZE  # most frames taken and not yet shown
        self._shown = threading.Condition()  # notified when _next_out moves on
        self._error: BaseException | None = None  # the first stage error, raised by the consumer
        self._threads: list[threading.Thread] = []
        self._loading: threading.Thread | None = None  # making another stream's interpreter (auto)
        self._loaded: list = []  # what the loading thread made: the replica, or the error it raised
        self.frames = 0
        self._pinning = Pinning.choose(pin, threaded, streams, auto_capacity, detector.model)

    @property
    def pinning(self) -> str:
        """Where the stage threads ran (:mod:`apps.camera.pinning`), or why they were not pinned."""
        return self._pinning.text

    @property
    def dropped(self) -> int:
        """Frames captured but never processed (live sources: replaced by a newer one)."""
        return self._captured.dropped + self._prepared.dropped + self._inferred.dropped + self._late

    @property
    def streams(self) -> int:
        return len(self.detectors)

    @property
    def streams_note(self) -> str | None:
        """What ``streams="auto"`` decided and why (None when a number was asked for)."""
        if self._auto is not None:
            return self._auto.note(self.streams)
        return f"auto: 1 ({self._auto_off})" if self._auto_off else None

    def _load_stream(self) -> None:
        """Make the interpreter of the stream auto asked for on a thread of its own (loading a
        model takes from milliseconds to seconds), so that results keep flowing meanwhile."""
        def load():
            try:
                self._loaded.append(self.detector.replica())
            except Exception as exc:  # noqa: BLE001 - e.g. it would run elsewhere, or memory ran out: a live run goes on
                self._loaded.append(exc)

        self._loading = threading.Thread(target=load, name="load-stream", daemon=True)
        self._loading.start()

    def _add_stream(self) -> None:
        """Start the stream :meth:`_load_stream` made (called by the consumer once loading ended;
        the consumer alone counts the streams' ends, so the count it compares with includes the
        new one from here on)."""
        self._loading = None
        detector = self._loaded.pop()
        if isinstance(detector, BaseException):
            self._auto.stop(f"no more streams: {detector}")
            return
        self._pinning.release(f"at frame {self.frames} for stream {self.streams + 1}")
        with self._shown:
            self.detectors.append(detector)
            self._ahead = 2 * self.streams + QUEUE_SIZE
        with self._inferred._cond:
            self._inferred.size += 1
            self._inferred._cond.notify_all()
        thread = threading.Thread(target=self._stream, args=(detector,), name=f"infer-{self.streams - 1}", daemon=True)
        self._threads.append(thread)
        thread.start()
        self._auto.added()

    # ----- stages ------------------------------------------------------------------------
    def _capture(self) -> None:
        try:
            self._pinning.apply("capture")
            while not self._stop.is_set():
                frame = self.source.read()
                if frame is None:
                    break
                if not self._captured.put(frame):
                    break
            self._captured.put(_End())
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, re-raised there
            self._captured.put(_End(exc))
        finally:
            self._pinning.done()

    def _stage(self, inbox: Handoff, outbox: Handoff, work, name: str) -> None:
        try:
            self._pinning.apply(name)
            while True:
                item = inbox.get()
                if isinstance(item, _End):
                    outbox.put(item)
                    return
                out = work(item)
                if not outbox.put(out):
                    outbox.put(_End())
                    return
        except BaseException as exc:  # noqa: BLE001 - a failed pin or work item, re-raised in the consumer
            self._fail(exc)
            outbox.put(_End(exc))
        finally:
            self._pinning.done()

    def _fail(self, exc: BaseException) -> None:
        """Keep the first error for the consumer (before anything can end the run without it), then stop."""
        with self._shown:
            if self._error is None:
                self._error = exc
        self._stop.set()
        self.source.stop()

    def _prepare(self, frame: Frame):
        x, geometry = self.detector.prepare(frame.image)
        return frame, x, geometry

    def _infer(self, item, detector=None):
        frame, x, geometry = item
        start = time.perf_counter()
        outputs = (detector or self.detector).infer(x)
        return frame, outputs, geometry, time.perf_counter() - start

    def _stream(self, detector) -> None:
        """One inference stream: take the next prepared frame (numbering it), infer, hand over
        ``(number, result)``. The end of the input is left in the queue for the other streams;
        each stream ends with its own ``_End``, which the consumer counts."""
        try:
            self._pinning.apply("infer")
            while True:
                with self._take:
                    with self._shown:  # no further ahead of the consumer than _ahead frames
                        while self._taken - self._next_out >= self._ahead and not self._stop.is_set():
                            self._shown.wait(0.1)
                    item = self._prepared.get()
                    if isinstance(item, _End):
                        self._prepared.put(item)  # for the other streams
                        self._inferred.put(item)
                        return
                    number = self._taken
                    self._taken += 1
                if not self._inferred.put((number, self._infer(item, detector))):
                    self._inferred.put(_End())
                    return
        except BaseException as exc:  # noqa: BLE001 - a failed pin or inference, re-raised in the consumer
            self._fail(exc)
            self._inferred.put(_End(exc))
        finally:
            self._pinning.done()

    # ----- running -----------------------------------------------------------------------
    def start(self) -> "Pipeline":
        if self.threaded and not self._threads:
            self._threads = [
                threading.Thread(target=self._capture, name="capture", daemon=True),
                threading.Thread(target=self._stage, args=(self._captured, self._prepared, self._prepare, "prepare"),
                                 name="prepare", daemon=True),
            ] + [threading.Thread(target=self._stream, args=(detector,), name=f"infer-{i}", daemon=True)
                 for i, detector in enumerate(self.detectors)]
            for thread in self._threads:
                thread.start()
        return self

    def stop(self) -> None:
        """Ask every stage to finish (from any thread); iteration then ends soon."""
        self._stop.set()
        self.source.stop()

    def close(self) -> None:
        self.stop()
        for handoff in (self._captured, self._prepared, self._inferred):  # unblock waiting producers
            with handoff._cond:
                handoff._items.clear()
                handoff._cond.notify_all()
        for thread in self._threads + ([self._loading] if self._loading else []):
            thread.join(timeout=10)
        self._pinning.restore()

    def _next_inferred(self):
        if not self.threaded:
            frame = self.source.read()
            if frame is None or self._stop.is_set():
                return _End()
            return self._infer(self._prepare(frame))
        while self._next_out not in self._pending:
            item = self._inferred.get()
            if isinstance(item, _End):
                self._ended += 1
                if item.error is not None or self._ended == self.streams or self._stop.is_set():
                    return item
                continue
            number, result = item
            if self.live:  # never back in time: a newer frame may be shown, an older one is late
                if number < self._next_out:
                    self._late += 1
                    continue
                self._next_out = number
            self._pending[number] = result
        with self._shown:
            self._next_out += 1
            self._shown.notify_all()
        return self._pending.pop(self._next_out - 1)

    def _auto_step(self, inference_s: float, index: int) -> None:
        """Count one result for ``--streams auto``; start loading a stream when it asks for one,
        and start that stream once loaded (no measuring meanwhile: auto measures what the new
        stream gained from the moment it runs)."""
        if self._loading is not None:
            if not self._loading.is_alive():
                self._add_stream()
        elif self._auto.observe(inference_s, self.streams, index, self._captured.dropped + self._prepared.dropped):
            self._load_stream()

    def __iter__(self):
        self.start()
        try:
            if self.threaded:
                self._pinning.apply_caller()
            while self.max_frames is None or self.frames < self.max_frames:
                item = self._next_inferred()
                if isinstance(item, _End):
                    error = item.error or self._error  # an _End of a stage that stopped may come first
                    if error is not None:
                        raise error
                    return
                frame, outputs, geometry, inference_s = item
                detections = self.detector.decode(outputs, geometry)
                self.frames += 1
                result = Result(frame, detections, time.monotonic() - frame.t, inference_s)
                if self._auto is not None:
                    self._auto_step(inference_s, frame.index)
                yield result
        finally:
            self.close()

