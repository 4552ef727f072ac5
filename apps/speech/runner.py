"""``listen()``: the whole ``edgepilot listen``: a source, the spotter, every output, and the
summary.

    >>> summary = listen("kws/", WavFiles(["clip.wav"]), ListenOptions(json=True))
    >>> summary["detections"], summary["rtf"]

Detections go to stdout as JSON lines (``--json``) or as readable lines, and to MQTT
(``TOPIC/keyword``; the summary to ``TOPIC/summary``, retained). Ctrl-C or SIGTERM ends the run
after the block in hand, and the summary still comes (``stop_reason``)."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TextIO

from apps.common.events import EventWriter
from apps.common.signals import StopSignals
from apps.speech.models import KeywordModel, open_model
from apps.speech.spotter import Detection, Spotter


@dataclass(frozen=True)
class ListenOptions:
    """What ``edgepilot listen`` was asked for. ``thresholds``: None (the model's), a probability,
    or ``{keyword: probability}``; ``vad``: None (no gate) or a Silero VAD model path ("" for the
    cached asset)."""

    thresholds: float | dict | None = None
    refractory_s: float | None = None
    smoothing_steps: int | None = None
    vad: str | None = None
    vad_threshold: float = 0.5
    json: bool = False
    mqtt: str | None = None
    threads: int = 1
    device: str = "cpu"


def _gate(options: ListenOptions):
    if options.vad is None:
        return None
    from apps.speech.vad import VadGate

    return VadGate(options.vad or None, threshold=options.vad_threshold, threads=options.threads)


def listen(model, source, options: ListenOptions = ListenOptions(), stdout: TextIO | None = None,
           stderr: TextIO | None = None) -> dict:
    """Run ``source`` (:class:`~apps.speech.sources.WavFiles` or ``Microphone``) through ``model``
    (a path for :func:`~apps.speech.models.open_model`, or a :class:`KeywordModel`); returns the
    summary (also printed)."""
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    if not isinstance(model, KeywordModel):
        model = open_model(model, threads=options.threads, device=options.device)
    spotter = Spotter(model, thresholds=options.thresholds, refractory_s=options.refractory_s,
                      smoothing_steps=options.smoothing_steps, gate=_gate(options))
    events = EventWriter(stdout, enabled=options.json)
    publisher = None
    if options.mqtt:
        from apps.common.mqtt import MqttPublisher

        publisher = MqttPublisher(options.mqtt).start()
        publisher.wait_connected(2.0)
    print(f"[edgepilot] listen: {model.spec.path} ({model.spec.kind}, {model.accelerator}; keywords "
          f"{', '.join(model.spec.keywords)}) <- {source.describe()}", file=stderr, flush=True)
    for warning in model.warnings:
        print(f"[edgepilot] listen: warning: {warning}", file=stderr, flush=True)
    several = len(getattr(source, "wavs", ())) > 1
    stop_reason, files = "end", 0
    started = time.monotonic()

    def report(d: Detection, name: str | None) -> None:
        event = d.to_dict()
        if several:
            event["file"] = name
        if options.json:
            events.emit(event)
        else:
            print(f"{d}" + (f"  {name}" if several else ""), file=stdout, flush=True)
        if publisher is not None:
            publisher.publish("keyword", event)

    try:
        with StopSignals() as stop:
            for stream in source.streams():
                if files:
                    spotter.reset()
                files += 1
                for block in stream.blocks():
                    for d in spotter.process(block):
                        report(d, stream.name)
                    if stop.received:
                        break
                if stop.received:
                    stop_reason = stop.received
                    break
            if source.live and stop_reason == "end":
                stop_reason = "duration"
    except KeyboardInterrupt:  # a second Ctrl-C inside a library call
        stop_reason = "sigint"
    finally:
        source.close()
    summary = _summary(spotter, model, source, stop_reason, files, time.monotonic() - started)
    if publisher is not None:
        publisher.publish("summary", {"summary": summary}, retain=True)
        publisher.close()
        summary["mqtt"] = publisher.stats()
    if options.json:
        events.summary(summary)
    else:
        print(render(summary), file=stdout, flush=True)
    return summary


def _summary(spotter: Spotter, model, source, stop_reason: str, files: int, wall_s: float) -> dict:
    stats = spotter.stats()
    summary = {
        "seconds": round(stats.seconds, 3), "detections": sum(stats.detections.values()), "rtf": round(stats.rtf, 6),
        "overflows": source.overflows, "per_keyword": stats.detections, "steps": stats.steps,
        "vad_skipped": stats.vad_skipped, "latency_ms_p50": stats.to_dict()["latency_ms_p50"],
        "latency_ms_p99": stats.to_dict()["latency_ms_p99"], "compute_s": round(stats.compute_s, 4),
        "keywords": list(spotter.keywords),
        "thresholds": {k: float(t) for k, t in zip(spotter.keywords, spotter.thresholds)},
        "refractory_s": spotter.refractory_s, "smoothing_steps": spotter.smoothing_steps,
        "model": model.spec.path, "kind": model.spec.kind, "accelerator": model.accelerator,
        "source": source.describe(), "streams": files, "stop_reason": stop_reason, "wall_s": round(wall_s, 3),
    }
    if spotter.gate is not None:
        summary["vad"] = spotter.gate.report(stats)
    return summary


def render(s: dict) -> str:
    """The summary for people."""
    per = ", ".join(f"{k} {n}" for k, n in s["per_keyword"].items())
    lines = [f"{s['detections']} detection(s) ({per}) in {s['seconds']:.2f} s of audio; stop: {s['stop_reason']}",
             (f"rtf {s['rtf']:.4f}  steps {s['steps']}  step latency p50/p99 {s['latency_ms_p50']}/"
              f"{s['latency_ms_p99']} ms  overflows {s['overflows']}  ({s['accelerator']})")]
    if "vad" in s:
        v = s["vad"]
        lines.append(f"voice gate: {s['vad_skipped']} of {s['vad_skipped'] + s['steps']} steps skipped "
                     f"({v['skipped_pct']:.1f}%), model compute saved ~{v['saved_s']:.3f} s")
    return "\n".join(lines)
