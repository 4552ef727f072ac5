"""``run()``: the whole ``edgepilot detect`` — pipeline, tracker and every output — and its summary.

    >>> from apps.camera import DetectOptions, run
    >>> summary = run("model.tflite", "clip.mp4", DetectOptions(save="out.mp4", max_frames=300))
    >>> summary.fps, summary.resize, summary.decoder
    (212.4, 'letterbox', 'edgepilot')

For a Python loop of your own, :func:`detect_stream` yields each frame's result instead.
"""
from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import TextIO

from apps.camera.pipeline import Pipeline, Result, check_counts
from apps.common.events import EventWriter, Progress
from apps.common.timing import LoopTimer


@dataclass(frozen=True)
class DetectOptions:
    """Every option of ``edgepilot detect`` (the CLI flags map one to one)."""

    decoder: str = "auto"
    score: float | None = None
    iou: float | None = None
    device: str = "auto"
    threads: int | None = None
    max_frames: int | None = None
    loop: bool = False  # replay a video file or image folder endlessly
    json: bool = False  # one JSON object per frame on stdout, then {"summary": ...}
    save: str | None = None  # annotated video file
    force: bool = False  # overwrite --save
    serve: str | None = None  # HOST:PORT for the MJPEG page
    mqtt: str | None = None  # mqtt://HOST:PORT/TOPIC
    show: bool = False
    track: bool = True
    summary_every_s: float = 10.0  # MQTT summary period
    threaded: bool = True  # False: the plain sequential loop (for comparison)
    pin: bool | None = None  # inference thread alone on one CPU, the other stages on the others;
    # None: only while streams="auto" runs one stream (apps.camera.pinning)
    streams: int | str = "auto"  # interpreters running frames side by side, or "auto" (apps.camera.streams)
    progress: bool = True  # status line on stderr
    labels: str | None = None  # a label file whose names replace the model's own

    def __post_init__(self):  # checked before any model, source or output is opened
        check_counts(self.max_frames, self.streams)


@dataclass(frozen=True)
class RunSummary:
    """What a run did. ``fps``: processed frames per second; ``dropped``: frames of a live source
    skipped to stay current; latencies from capture to decoded detections; ``stopped``: ``end``
    (the source ended), ``max_frames``, ``stopped`` (asked to), ``interrupted`` (Ctrl-C), or None
    in the periodic summaries of a run still going."""

    frames: int
    dropped: int
    fps: float
    resize: str
    decoder: str
    reconnects: int
    latency_ms_p50: float
    latency_ms_p99: float
    inference_ms_p50: float
    duration_s: float
    source: str
    model: str
    accelerator: str
    preprocess: str
    score: float
    iou: float
    detections: dict[str, int] = field(default_factory=dict)  # per label, over all frames
    tracks: int = 0
    stopped: str | None = None  # None in the periodic summaries of a run still going
    saved: str | None = None
    served: str | None = None
    mqtt: dict | None = None
    pinning: str = "not requested"
    streams: int = 1  # inference streams at the end of the run
    streams_auto: str | None = None  # with --streams auto: what it decided and on which measurement
    skipped: int = 0  # images of a folder or glob that OpenCV could not read (each named on stderr)

    def to_dict(self) -> dict:
        data = asdict(self)
        for key in ("fps", "latency_ms_p50", "latency_ms_p99", "inference_ms_p50", "duration_s"):
            data[key] = round(data[key], 3) if data[key] == data[key] else None
        return data


def _detector(model, options: DetectOptions):
    from apps.camera.detector import Detector

    if isinstance(model, Detector):
        return model
    return Detector(model, decoder=options.decoder, score=options.score, iou=options.iou, device=options.device,
                    threads=options.threads, labels=options.labels)


def detect_stream(model, source, options: DetectOptions | None = None, *, track: bool = False) -> Iterator[Result]:
    """Yield a :class:`~apps.camera.pipeline.Result` per processed frame (with ``track_ids`` and
    appear/leave ``events`` when ``track``). Break out of the loop to stop."""
    from apps.camera.sources import open_source
    from apps.camera.tracker import IouTracker

    options = options or DetectOptions()
    detector = _detector(model, options)
    tracker = IouTracker() if track else None
    source = open_source(source, options.loop)
    try:
        pipeline = Pipeline(detector, source, options.max_frames, options.threaded, options.pin, options.streams)
        start = None
        for result in pipeline:
            start = result.frame.t if start is None else start
            if tracker is not None:
                detections, events = tracker.update(result.detections, result.frame.index, result.frame.t - start)
                result = replace(result, detections=detections, events=tuple(events))
            yield result
    finally:
        source.close()


class _Outputs:
    """The optional outputs of one run, opened together and always closed together."""

    def __init__(self, options: DetectOptions, source, progress: Progress):
        self.recorder = self.server = self.mqtt = self.window = None
        try:
            if options.save:
                from apps.camera.outputs import VideoRecorder

                self.recorder = VideoRecorder(options.save, source.fps or 15.0, options.force)
            if options.serve:
                from apps.camera.server import FrameServer

                self.server = FrameServer(options.serve).start()
                progress.note(f"watch it at {self.server.url}")
            if options.mqtt:
                from apps.common.mqtt import MqttPublisher

                self.mqtt = MqttPublisher(options.mqtt).start()
            if options.show:
                from apps.camera.outputs import Window

                self.window = Window()
        except BaseException:
            self.close(failed=True)
            raise

    def close(self, failed: bool = False) -> str | None:
        saved = None
        if self.recorder is not None:
            if failed:
                self.recorder.discard()
            else:
                path = self.recorder.close()
                saved = str(path) if path else None
        for output in (self.server, self.mqtt, self.window):
            if output is not None:
                output.close()
        return saved


class _Run:
    """The state of one run and what happens to each result (run() drives it)."""

    def __init__(self, detector, source, pipeline: Pipeline, outputs: _Outputs, options: DetectOptions,
                 events_out: EventWriter, progress: Progress):
        from apps.camera.tracker import IouTracker

        self.detector, self.source, self.pipeline, self.outputs = detector, source, pipeline, outputs
        self.options, self.events_out, self.progress = options, events_out, progress
        self.tracker = IouTracker() if options.track else None
        self.timer, self.inference = LoopTimer(), LoopTimer()
        self.counts: Counter = Counter()
        self.start = time.monotonic()
        self.next_summary = self.start + options.summary_every_s
        self.stopped: str | None = None  # None while running (the periodic MQTT summaries say so)
        self.last_frame, self.last_t = -1, 0.0

    def summary(self) -> RunSummary:
        s, det, outputs = self.timer.summary(), self.detector, self.outputs
        return RunSummary(
            frames=s.count, dropped=self.pipeline.dropped, fps=s.rate_hz, resize=det.resize,
            decoder=det.decoder_name, reconnects=self.source.reconnects, latency_ms_p50=s.latency_ms_p50,
            latency_ms_p99=s.latency_ms_p99, inference_ms_p50=self.inference.summary().latency_ms_p50,
            duration_s=time.monotonic() - self.start, source=self.source.spec.text, model=det.model.path,
            accelerator=det.model.accelerator, preprocess=det.preprocess_source, score=det.score, iou=det.iou,
            detections=dict(sorted(self.counts.items())), tracks=self.tracker.total if self.tracker else 0,
            stopped=self.stopped, served=outputs.server.url if outputs.server else None,
            mqtt=outputs.mqtt.stats() if outputs.mqtt else None, pinning=self.pipeline.pinning,
            streams=self.pipeline.streams, streams_auto=self.pipeline.streams_note, skipped=self.source.skipped)

    def handle(self, result: Result) -> bool:
        """Track, count and send one result everywhere asked; False when the user closed the window."""
        from apps.camera.draw import annotate

        now, frame, outputs = time.monotonic(), result.frame, self.outputs
        self.last_frame, self.last_t = frame.index, frame.t - self.start
        self.timer.record(now, result.latency_s)
        self.inference.record(now, result.inference_s)
        detections, events = result.detections, []
        if self.tracker is not None:
            detections, events = self.tracker.update(detections, frame.index, self.last_t)
        self.counts.update(detections.count_by_label())
        row = {"frame": frame.index, "t": round(self.last_t, 4), "detections": detections.to_dicts(),
               "latency_ms": round(result.latency_s * 1000, 2)}
        if frame.name:
            row["file"] = frame.name
        if events:
            row["events"] = [e.to_dict() for e in events]
        self.events_out.emit(row)
        fps = self.timer.rate_hz
        if outputs.mqtt is not None:
            for event in events:
                outputs.mqtt.publish("event", event.to_dict())
            if now >= self.next_summary:
                outputs.mqtt.publish("summary", self.summary().to_dict())
                self.next_summary = now + self.options.summary_every_s
        caption = self.detector.decoder_name
        if outputs.server is not None:  # drawn in the viewer's thread, when someone watches
            outputs.server.update(frame.image, detections, fps, caption, {
                "frame": frame.index, "fps": fps, "source": self.source.spec.text, "detections": row["detections"]})
        if outputs.recorder is not None or outputs.window is not None:
            image = annotate(frame.image, detections, fps, caption)
            if outputs.recorder is not None:
                outputs.recorder.write(image)
            if outputs.window is not None and not outputs.window.show(image):
                self.stopped = "stopped"
                return False
        self.progress.update(f"frame {frame.index + 1}, {fps:.1f} FPS, {len(detections)} objects, "
                             f"{self.pipeline.dropped} dropped")
        return True

    def finish(self) -> RunSummary:
        """Leave events for the objects still tracked, the last MQTT summary; outputs closed."""
        leave = self.tracker.finish(self.last_frame, self.last_t) if self.tracker is not None else []
        if self.outputs.mqtt is not None:
            for event in leave:
                self.outputs.mqtt.publish("event", event.to_dict())
            self.outputs.mqtt.publish("summary", self.summary().to_dict(), retain=True)
        final = self.summary()
        return replace(final, saved=self.outputs.close())


def run(model, source, options: DetectOptions | None = None, *, stdout: TextIO | None = None,
        stderr: TextIO | None = None, stop: threading.Event | None = None) -> RunSummary:
    """Detect objects in ``source`` with every output ``options`` asks for; ``stop`` (an Event
    set from another thread) ends a run early, as Ctrl-C does."""
    from apps.camera.sources import open_source

    options = options or DetectOptions()
    detector = _detector(model, options)
    progress = Progress("detect", stream=stderr or sys.stderr, enabled=options.progress)
    events_out = EventWriter(stdout or sys.stdout, enabled=options.json)
    source = open_source(source, options.loop)
    source.on_note(progress.note)
    for warning in detector.model.warnings:  # even with --quiet: it says why the run is slow
        print(f"[edgepilot] detect: warning: {warning}", file=stderr or sys.stderr, flush=True)
    outputs = None
    try:
        # the pipeline first: its second interpreters (--streams) may fail, before any output is opened
        pipeline = Pipeline(detector, source, options.max_frames, options.threaded, options.pin, options.streams)
        outputs = _Outputs(options, source, progress)
        state = _Run(detector, source, pipeline, outputs, options, events_out, progress)
        watcher = _watch(stop, pipeline)
        try:
            for result in pipeline:
                if not state.handle(result):
                    break
            if stop is not None and stop.is_set():
                state.stopped = "stopped"
            elif state.stopped is None:
                limited = options.max_frames is not None and pipeline.frames >= options.max_frames
                state.stopped = "max_frames" if limited else "end"
        except KeyboardInterrupt:
            state.stopped = "interrupted"
        finally:
            pipeline.close()
            watcher.set()
        final = state.finish()
        outputs = None
        events_out.summary(final.to_dict())
        progress.done(f"{final.frames} frames, {final.fps:.1f} FPS, {final.dropped} dropped, "
                      f"{final.reconnects} reconnects, decoder {final.decoder}, resize {final.resize}"
                      + (f", {final.skipped} unreadable images skipped" if final.skipped else ""))
        return final
    except BaseException:
        if outputs is not None:
            outputs.close(failed=True)
        raise
    finally:
        source.close()


def _watch(stop: threading.Event | None, pipeline: Pipeline) -> threading.Event:
    """A thread that stops ``pipeline`` when ``stop`` is set; set the returned event to end it."""
    done = threading.Event()
    if stop is None:
        return done

    def wait():
        while not done.is_set():
            if stop.wait(0.1):
                pipeline.stop()
                return

    threading.Thread(target=wait, name="stop-watch", daemon=True).start()
    return done
