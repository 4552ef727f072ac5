"""The whole ``edgepilot kws-calibrate``: data, recording, sweep, operating point, PNG, metadata.

    >>> result = run_calibration("runs/digits", CalibrateOptions(target_fa_per_hour=0.5))
    >>> result["operating_point"]["thresholds"]"""
from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from apps.speech.calibrate import (
    DEFAULT_MAX_FRR,
    DEFAULT_TARGET_FA_PER_HOUR,
    SMOOTHING_STEPS,
    choose,
    record,
    sweep,
    tally,
)


@dataclass(frozen=True)
class CalibrateOptions:
    """``positives`` / ``negatives``: folders, or None for the synthetic defaults
    (``positive_minutes`` of running sentences + isolated keywords by the held-out voices,
    ``negative_minutes`` of keyword-free speech over noise and music, both from ``seed``)."""

    positives: str | None = None
    negatives: str | None = None
    target_fa_per_hour: float = DEFAULT_TARGET_FA_PER_HOUR
    max_frr: float = DEFAULT_MAX_FRR  # never calibrate a keyword into rejecting more than this
    smoothing: tuple[int, ...] = SMOOTHING_STEPS
    positive_minutes: float = 10.0
    negative_minutes: float = 60.0
    seed: int = 1
    cache_dir: str | None = None
    png: str | None = None
    write: bool = True
    force: bool = False
    threads: int = 1

    def __post_init__(self):
        if not self.target_fa_per_hour >= 0:
            raise ValueError(f"--target-fa-per-hour must be >= 0, got {self.target_fa_per_hour}")
        if not 0 <= self.max_frr <= 1:
            raise ValueError(f"--max-frr must lie in 0..1 (a fraction of the keyword's utterances), got {self.max_frr}")
        if not self.smoothing or any(int(w) < 1 for w in self.smoothing):
            raise ValueError(f"--smoothing: expected whole numbers >= 1, got {list(self.smoothing)}")
        if self.positives is None and not self.positive_minutes >= 0:
            raise ValueError(f"--positive-minutes must be >= 0, got {self.positive_minutes}")
        if self.negatives is None and not self.negative_minutes > 0:
            raise ValueError(f"--negative-minutes must be > 0, got {self.negative_minutes}")
        if self.png is not None and Path(self.png).suffix.lower() != ".png":
            raise ValueError(f"--png {self.png}: expected a .png path")


def load_data(model_path, spec, options: CalibrateOptions, say) -> tuple[list, list, dict]:
    """(positive clips, negative clips, a description of both for the record)."""
    from apps.speech import calibration_data as data

    keywords = spec.keywords
    if options.positives is not None:
        positives = data.positives_from_dir(options.positives, keywords)
        pos_source = {"kind": "folder", "path": str(Path(options.positives).expanduser())}
    else:
        if spec.kind == "micro":
            raise ValueError(f"{spec.path}: a microWakeWord model has no held-out voices of its own; give "
                             f"--positives DIR (DIR/{keywords[0]}/*.wav)")
        voices = data.held_out_voices(model_path)
        positives = data.synthetic_positives(keywords, voices, minutes=options.positive_minutes, seed=options.seed,
                                             cache_dir=options.cache_dir, progress=say)
        pos_source = {"kind": "synthetic", "held_out_voices": len(voices), "minutes_running": options.positive_minutes,
                      "isolated": True, "seed": options.seed}
    if options.negatives is not None:
        negatives = data.negatives_from_dir(options.negatives)
        neg_source = {"kind": "folder", "path": str(Path(options.negatives).expanduser())}
    else:
        negatives = data.synthetic_negatives(keywords, minutes=options.negative_minutes, seed=options.seed,
                                             cache_dir=options.cache_dir, progress=say)
        neg_source = {"kind": "synthetic negative_stream", "minutes": options.negative_minutes, "seed": options.seed}
    return positives, negatives, {"positives": pos_source, "negatives": neg_source}


def run_calibration(model_path, options: CalibrateOptions = CalibrateOptions(), progress=None) -> dict:
    """Calibrate ``model_path`` (a training folder, one of its model files, or a microWakeWord
    model); write the operating point unless ``options.write`` is False; the result as a dict."""
    from apps.speech.models import open_model

    say = progress or (lambda m: None)
    started = time.perf_counter()
    if options.png is not None:
        _require_matplotlib()
        if Path(options.png).exists() and not options.force:
            raise ValueError(f"--png {options.png} already exists; pass --force to overwrite it")
    model = open_model(model_path, threads=options.threads)
    spec = model.spec
    if options.write:  # refuse early (before minutes of audio) what the write would refuse
        from apps.speech import operating_point

        for t in operating_point.targets(model_path, spec):
            if not options.force and operating_point.calibrated_before(t):
                raise ValueError(f"{t.path}: already calibrated ({operating_point.calibrated_before(t)}); pass "
                                 "--force to replace its operating point")
    positives, negatives, sources = load_data(model_path, spec, options, say)
    clips = positives + negatives
    audio_s = sum(c.seconds for c in clips)
    say(f"streaming {audio_s / 60:.1f} min of audio through {Path(spec.path).name} ({len(clips)} streams)")
    recordings = record(model, clips)
    say(f"sweeping smoothing {list(options.smoothing)} x thresholds")
    result_sweep = sweep(recordings, spec.keywords, spec.refractory_s, smoothing=tuple(int(w) for w in options.smoothing))
    point = choose(result_sweep, options.target_fa_per_hour, options.max_frr)
    at_point = tally(recordings, spec.keywords, np.array([[point.thresholds[k]] for k in spec.keywords]),
                     point.smoothing_steps, spec.refractory_s)
    calibration = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "target_fa_per_hour": point.target_fa_per_hour, "smoothing_steps": point.smoothing_steps,
        "fa_per_hour": {p.keyword: round(p.fa_per_hour, 3) for p in point.keywords},
        "frr": {p.keyword: round(p.frr, 4) for p in point.keywords},
        "negative_hours": round(point.negative_hours, 4),
        "utterances": int(sum(p.utterances for p in point.keywords)), "data": sources,
    }
    result = {
        "model": spec.path, "kind": spec.kind, "keywords": list(spec.keywords),
        "operating_point": point.to_dict(), "calibration": calibration,
        "positive_seconds": round(sum(c.seconds for c in positives), 1),
        "negative_seconds": round(sum(c.seconds for c in negatives), 1),
        "stray_detections_in_positives": int(at_point.stray.sum()),
        "latency_after_word_end_s": _percentiles(at_point.latency_s[0]),
        "written": [], "png": None, "seconds": None,
        # keywords that keep the target only by never firing on the positives (with --max-frr 1)
        "never_detected": [p.keyword for p in point.keywords if p.misses == p.utterances],
        # keywords kept usable at more false accepts than the target (see calibrate.pick)
        "over_target": [p.keyword for p in point.keywords if not p.target_met],
    }
    if result["never_detected"]:
        say(f"warning: {result['never_detected']} meet the target only at thresholds that found none of their "
            "utterances: more (or cleaner) negatives, a higher --target-fa-per-hour or a better model")
    for p in point.keywords:
        if not p.target_met:
            say(f"warning: {p.keyword!r} cannot meet {options.target_fa_per_hour:g} FA/h while finding at least "
                f"{1 - options.max_frr:.0%} of its utterances; kept at {p.fa_per_hour:.2f} FA/h with FRR {p.frr:.1%} "
                f"(threshold {p.threshold:g}). --max-frr 1 would switch it off instead; more negatives or a "
                f"better model may meet the target")
    if options.png is not None:
        plot(result_sweep, point, options.png)
        result["png"] = str(options.png)
    if options.write:
        from apps.speech import operating_point

        result["written"] = operating_point.write(model_path, spec, point, calibration, force=options.force)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def _percentiles(values: np.ndarray) -> dict:
    if len(values) == 0:
        return {"p50": None, "p99": None, "n": 0}
    return {"p50": round(float(np.percentile(values, 50)), 3), "p99": round(float(np.percentile(values, 99)), 3),
            "n": len(values)}


def _require_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise RuntimeError("--png needs matplotlib (the [train] extra): pip install matplotlib") from None


def plot(s, point, path) -> None:
    """FA/h (x, log) against FRR (y) per keyword at the chosen smoothing, the operating points marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from convert.files import write_atomic

    t = s.tallies[point.smoothing_steps]
    floor = 0.5 / t.negative_hours if t.negative_hours > 0 else 0.01  # where 0 FA/h is drawn on a log axis:
    if point.target_fa_per_hour > 0:  # left of 1 false accept, and of the target
        floor = min(floor, point.target_fa_per_hour / 2)
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    colors = plt.get_cmap("tab10" if len(s.keywords) <= 10 else "tab20")
    for k, (word, p) in enumerate(zip(s.keywords, point.keywords)):
        x = np.maximum(t.fa_per_hour[k], floor)
        ax.plot(x, 100 * t.frr[k], color=colors(k % colors.N), lw=1.3, label=f"{word} (p > {p.threshold:g})")
        ax.plot(max(p.fa_per_hour, floor), 100 * p.frr, "o", color=colors(k % colors.N), ms=7, mec="black")
    ax.axvline(point.target_fa_per_hour if point.target_fa_per_hour > 0 else floor, color="grey", ls="--", lw=1,
               label=f"target {point.target_fa_per_hour:g} FA/h")
    ax.set_xscale("log")
    ax.set_xlabel(f"false accepts per hour ({60 * t.negative_hours:.1f} min of negatives; 0 drawn at {floor:.2g})")
    ax.set_ylabel("false-reject rate (%)")
    ax.set_title(f"operating points: smoothing {point.smoothing_steps} steps, "
                 f"refractory {s.refractory_s:g} s")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    write_atomic(Path(path), buffer.getvalue(), force=True)


def render(result: dict) -> str:
    """The result for people."""
    op = result["operating_point"]
    lines = [(f"{result['model']}: smoothing {op['smoothing_steps']} steps, target {op['target_fa_per_hour']:g} FA/h "
              f"per keyword, {60 * op['negative_hours']:.1f} min of negatives, {result['positive_seconds'] / 60:.1f} "
              "min of positives"),
             f"{'keyword':<16} {'threshold':>9} {'FRR %':>7} {'FA/h':>7} {'FA':>4} {'utterances':>10}"]
    for word, p in op["keywords"].items():
        lines.append(f"{word:<16} {p['threshold']:>9.4g} {100 * p['frr']:>7.2f} {p['fa_per_hour']:>7.2f} "
                     f"{p['false_accepts']:>4} {p['utterances']:>10}" + ("" if p["target_met"] else "  (target not met)")
                     + ("  (never fires on its utterances at this target)" if p["misses"] == p["utterances"] else ""))
    lat = result["latency_after_word_end_s"]
    if lat["n"]:
        lines.append(f"mean FRR {100 * op['mean_frr']:.2f}%, total {op['fa_per_hour_total']:.2f} FA/h; detection "
                     f"{lat['p50']:.2f} s (p50) / {lat['p99']:.2f} s (p99) after the word ended")
    mean = ", ".join(f"{k}: {100 * v:.2f}%" for k, v in op["mean_frr_by_smoothing"].items())
    lines.append(f"mean FRR by smoothing window: {mean}")
    if result["png"]:
        lines.append(f"plot: {result['png']}")
    lines.append("written: " + (", ".join(result["written"]) if result["written"] else "nothing (--dry-run)"))
    lines.append(f"({result['seconds']:.0f} s)")
    return "\n".join(lines)


def to_json(result: dict) -> str:
    return json.dumps(result, sort_keys=True)
