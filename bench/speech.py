"""Keyword spotting benchmark (issue 9): the spoken digits zero..nine.

* accuracy on held-out synthetic voices: float, streaming fp32, streaming int8 (``training.json``);
* ``edgepilot kws-calibrate`` on held-out voices and 120 min of negatives (seed 1), then, on fresh
  audio: false-reject rate at that point on digits inside sentences and on isolated digits
  (held-out voices, seed 3), false accepts per hour on an hour of keyword-free synthetic speech
  over noise, babble and music (seed 2), detection latency after the end of the word;
* real-time factor on one thread, features included, over the same audio: our int8 and fp32
  streaming models and microWakeWord's okay_nabu through ``apps.speech``, and pymicro-wakeword's
  own ``MicroWakeWordFeatures`` + ``MicroWakeWord`` (the reference), interleaved;
* memory: an hour of audio streamed through a spotter in a child process, RSS after the first
  minute and after the hour.

The digits model is trained into ``CACHE/kws-digits`` unless a run with the same options is there.

    flock /tmp/edgepilot-heavy.lock python bench/speech.py            # prints the markdown
    flock /tmp/edgepilot-heavy.lock python bench/run.py --sections speech

``run(cache) -> markdown`` is what ``bench/run.py`` calls."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

TRAIN_COMMAND = "edgepilot train kws --words " + " ".join(DIGITS) + " --out {out}"
SEEDS = {"calibration": 1, "negatives": 2, "positives": 3}


def train_cached(cache: Path, progress=print) -> Path:
    """The digits model folder, trained unless a run with train kws's current default options is cached."""
    out = cache / "kws-digits"
    record = out / "training.json"
    if record.is_file():
        from train.kws.options import KwsOptions

        options = json.loads(record.read_text()).get("options", {})
        # every option of today's defaults, so a changed default retrains instead of reusing an old model
        wanted = {k: v for k, v in KwsOptions(words=DIGITS, out=out).to_dict().items()
                  if k not in ("out", "cache_dir", "force", "qat_epochs")}  # qat_epochs: only with qat
        if all(options.get(k) == v for k, v in wanted.items()):
            return out
    progress(f"training the digits model: {TRAIN_COMMAND.format(out=out)} (an hour or more on 2 cores)")
    done = subprocess.run([sys.executable, "-m", "edgepilot.cli", "train", "kws", "--words", *DIGITS, "--out", str(out),
                           "--force"], cwd=ROOT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"edgepilot train kws failed with exit code {done.returncode}")
    return out


def _micro_path() -> Path:
    sys.path.insert(0, str(ROOT / "scripts"))
    import assets

    path = assets.fetch("wakeword_okay_nabu.tflite")
    assets.fetch("wakeword_okay_nabu.json")
    return path


def _at_point(model_path, clips, point):
    """Replay of the real spotter at the operating point (proved equal in tests/test_speech_calibrate.py)."""
    from apps.speech.calibrate import record, tally
    from apps.speech.models import open_model

    model = open_model(model_path)
    recordings = record(model, clips)
    thresholds = np.array([[point["thresholds"][k]] for k in model.spec.keywords])
    return tally(recordings, model.spec.keywords, thresholds, point["smoothing_steps"], model.spec.refractory_s)


def _percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def evaluate(folder: Path, point: dict, fa_minutes: float, positive_minutes: float, progress=print) -> dict:
    """FRR (running / isolated), latency and FA/h at ``point`` on audio calibration never saw."""
    from apps.speech import calibration_data as data

    voices = data.held_out_voices(folder)
    words = tuple(json.loads((folder / "training.json").read_text())["options"]["words"])
    model = folder / "kws_stream_int8.tflite"
    progress(f"positives: {positive_minutes:g} min of sentences + isolated digits x2, {len(voices)} held-out voices")
    running = data.synthetic_positives(words, voices, minutes=positive_minutes, seed=SEEDS["positives"],
                                       isolated=False)
    isolated = [data.isolated_words(words, voices, seed=SEEDS["positives"], repeats=2)]
    out = {"voices": len(voices)}
    for name, clips in (("running", running), ("isolated", isolated)):
        t = _at_point(model, clips, point)
        lat = t.latency_s[0]
        out[name] = {"utterances": int(t.utterances.sum()), "misses": int((t.utterances - t.hits[:, 0]).sum()),
                     "frr": float(1 - t.hits[:, 0].sum() / t.utterances.sum()), "stray": int(t.stray.sum()),
                     "per_keyword_frr": {k: round(float(v), 4) for k, v in zip(t.keywords, t.frr[:, 0])},
                     "latency_p50_s": _percentile(lat, 50), "latency_p99_s": _percentile(lat, 99),
                     "seconds": float(sum(c.seconds for c in clips))}
        progress(f"{name}: FRR {100 * out[name]['frr']:.2f}% of {out[name]['utterances']}, latency p50/p99 "
                 f"{out[name]['latency_p50_s']:.3f}/{out[name]['latency_p99_s']:.3f} s")
    progress(f"negatives: {fa_minutes:g} min of keyword-free speech over noise and music (seed {SEEDS['negatives']})")
    negatives = data.synthetic_negatives(words, minutes=fa_minutes, seed=SEEDS["negatives"])
    t = _at_point(model, negatives, point)
    out["fa"] = {"hours": t.negative_hours, "false_accepts": int(t.false_accepts.sum()),
                 "per_hour": float(t.false_accepts.sum() / t.negative_hours),
                 "per_keyword": {k: int(v) for k, v in zip(t.keywords, t.false_accepts[:, 0])}}
    progress(f"FA/h {out['fa']['per_hour']:.2f} ({out['fa']['false_accepts']} in {t.negative_hours:.2f} h)")
    out["negative_audio"] = negatives[0].audio
    return out


def _spotter_rtf(path, audio: np.ndarray) -> float:
    from apps.speech.models import open_model
    from apps.speech.spotter import Spotter

    spotter = Spotter(open_model(path, threads=1))
    for i in range(0, len(audio), 1600):
        spotter.process(audio[i:i + 1600])
    return spotter.stats().rtf


def _pymicro_rtf(audio: np.ndarray) -> float:
    from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model

    mww, features = MicroWakeWord.from_builtin(Model.OKAY_NABU), MicroWakeWordFeatures()
    start = time.perf_counter()
    for i in range(0, len(audio), 1600):
        for f in features.process_streaming(audio[i:i + 1600].tobytes()):
            mww.process_streaming(f)
    return (time.perf_counter() - start) / (len(audio) / 16000)


def rtf(folder: Path, audio: np.ndarray, rounds: int = 5) -> dict:
    """Median real-time factor of each engine over ``audio`` (rounds interleaved, so noise hits all)."""
    engines = {"edgepilot digits, streaming int8 (apps.speech)": lambda: _spotter_rtf(folder / "kws_stream_int8.tflite", audio),
               "edgepilot digits, streaming fp32 (apps.speech)": lambda: _spotter_rtf(folder / "kws_stream_fp32.tflite", audio),
               "microWakeWord okay_nabu (apps.speech)": lambda: _spotter_rtf(_micro_path(), audio),
               "microWakeWord okay_nabu (pymicro-wakeword 2.5.0, reference)": lambda: _pymicro_rtf(audio)}
    times = {name: [] for name in engines}
    for _ in range(rounds):
        for name, measure in engines.items():
            times[name].append(measure())
    return {name: float(np.median(v)) for name, v in times.items()}


CHILD = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import numpy as np
    sys.path.insert(0, {root!r})
    from apps.speech.models import open_model
    from apps.speech.spotter import Spotter

    def rss():
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

    audio = np.load({audio!r}, allow_pickle=False)
    spotter = Spotter(open_model({model!r}, threads=1))
    total, fed, marks, detections = int({minutes} * 60 * 16000), 0, {{}}, 0
    while fed < total:
        for i in range(0, len(audio), 1600):
            detections += len(spotter.process(audio[i:i + 1600]))
            fed += len(audio[i:i + 1600])
            if "first_minute" not in marks and fed >= 60 * 16000:
                marks["first_minute"] = rss()
            if fed >= total:
                break
    marks.update(end=rss(), seconds=fed / 16000, detections=detections, steps=spotter.stats().steps)
    print(json.dumps(marks))
""")


def memory(model_path, audio: np.ndarray, minutes: float) -> dict:
    """RSS (MiB) of a child process after the first minute and after ``minutes`` of ``audio`` looped."""
    with tempfile.TemporaryDirectory() as folder:
        np.save(Path(folder) / "audio.npy", audio)
        code = CHILD.format(root=str(ROOT), audio=str(Path(folder) / "audio.npy"), model=str(model_path), minutes=minutes)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=7200, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the memory child failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(cache: Path, fa_minutes: float = 60, calib_negative_minutes: float = 120, positive_minutes: float = 20,
        memory_minutes: float = 60, rtf_seconds: float = 300, folder: Path | None = None, progress=print) -> str:
    """Markdown with every figure; ``folder``: measure that training folder instead of the cached digits."""
    from apps.speech.calibration_run import CalibrateOptions, run_calibration

    folder = train_cached(cache, progress) if folder is None else Path(folder)
    record = json.loads((folder / "training.json").read_text())
    progress("calibrating (kws-calibrate, held-out voices, seed 1)")
    calibrated = run_calibration(folder, CalibrateOptions(seed=SEEDS["calibration"], force=True,
                                                         negative_minutes=calib_negative_minutes,
                                                         png=str(folder / "calibration.png")),
                                 progress=progress)
    point = calibrated["operating_point"]
    figures = evaluate(folder, point, fa_minutes, positive_minutes, progress)
    audio = figures.pop("negative_audio")
    progress(f"real-time factor over {rtf_seconds:g} s of that audio")
    rtfs = rtf(folder, audio[:int(rtf_seconds * 16000)])
    progress(f"memory: {memory_minutes:g} min of audio through the int8 spotter in a child process")
    mem = memory(folder / "kws_stream_int8.tflite", audio[:min(len(audio), 10 * 60 * 16000)], memory_minutes)
    return markdown(folder, record, calibrated, figures, rtfs, mem, fa_minutes, calib_negative_minutes, rtf_seconds)


def markdown(folder, record, calibrated, f, rtfs, mem, fa_minutes, calib_minutes, rtf_seconds) -> str:
    from edge_runtime.tflite_backend import interpreter_label

    m = record["metrics"]
    point = calibrated["operating_point"]
    drop = m["val_top1_float"] - m["val_top1_stream_int8"]
    ref = rtfs["microWakeWord okay_nabu (pymicro-wakeword 2.5.0, reference)"]
    rtf_rows = "\n".join(f"| {name} | {value:.4f} | {value / ref:.2f}x |" for name, value in rtfs.items())
    kw_rows = "\n".join(f"| {k} | {p['threshold']:g} | {100 * p['frr']:.1f} | {p['false_accepts']} | "
                        f"{100 * f['running']['per_keyword_frr'][k]:.1f} | {100 * f['isolated']['per_keyword_frr'][k]:.1f} | "
                        f"{f['fa']['per_keyword'][k]} |" for k, p in point["keywords"].items())
    growth = 100 * (mem["end"] / mem["first_minute"] - 1)
    run_, iso = f["running"], f["isolated"]
    return f"""## Speech: keyword spotting (`edgepilot listen`, the digits)

`flock /tmp/edgepilot-heavy.lock python bench/run.py --sections speech` (part of `make bench`). The model:
`{TRAIN_COMMAND.format(out=str(folder).replace(str(Path.home()), "~"))}` ({m['parameters']:,} parameters,
{record['seconds']['total'] / 60:.0f} min on this machine), cached and reused while its options match. All audio is
synthetic (espeak-ng, flite, festival), and the positives are spoken by the {f['voices']} held-out voices training
never heard. Single runs on a shared 2-core machine: read ratios, not the last digit.

### Accuracy on held-out voices ({m['val_clips']:,} clips; classes: silence, unknown word, {len(point['keywords'])} keywords)

| model | top-1 % | vs float (points) |
|---|---|---|
| float (Keras, non-streaming) | {m['val_top1_float']:.2f} | - |
| streaming fp32 (`kws_stream_fp32.tflite`) | {m['val_top1_stream_fp32']:.2f} | {m['val_top1_stream_fp32'] - m['val_top1_float']:+.2f} |
| streaming int8 (`kws_stream_int8.tflite`) | {m['val_top1_stream_int8']:.2f} | {-drop:+.2f} (target: within 1 point) |

### Operating point and detection

`edgepilot kws-calibrate DIR --force` (seed {SEEDS['calibration']}: {calibrated['positive_seconds'] / 60:.0f} min of
held-out-voice positives, {calib_minutes:g} min of negatives; target {point['target_fa_per_hour']:g} FA/h per keyword)
chose smoothing over **{point['smoothing_steps']} steps** ({30 * point['smoothing_steps']} ms), refractory
{point['refractory_s']:g} s. Then on fresh audio (other seeds), through the same spotter `listen` runs:

| measure | value | target |
|---|---|---|
| false-reject rate, digits inside sentences ({run_['utterances']} digits, {run_['seconds'] / 60:.1f} min) | {100 * run_['frr']:.2f}% | |
| false-reject rate, isolated digits ({iso['utterances']} digits) | {100 * iso['frr']:.2f}% | |
| false accepts per hour, {fa_minutes / 60:.1f} h of keyword-free speech over noise, babble, music (all {len(point['keywords'])} keywords) | {f['fa']['per_hour']:.2f} ({f['fa']['false_accepts']} in {f['fa']['hours']:.2f} h) | <= 8, goal 4 |
| detection latency after the end of the word, p50 / p99 (sentences) | {run_['latency_p50_s']:.3f} / {run_['latency_p99_s']:.3f} s | p99 <= 0.5 s |
| detection latency after the end of the word, p50 / p99 (isolated) | {iso['latency_p50_s']:.3f} / {iso['latency_p99_s']:.3f} s | |

{_never(calibrated)}Latency is the detection's stream time (end of the audio the firing step had seen) minus the end of the
synthesized word; a detection counts for a word from its start to 1 s after its end.
Detections in the sentences that match no digit said: {run_['stray']}.

| keyword | threshold | FRR % (calibration) | FA (calibration) | FRR % sentences | FRR % isolated | FA in {fa_minutes / 60:.1f} h |
|---|---|---|---|---|---|---|
{kw_rows}

### Real-time factor, one thread, features included

Compute seconds per second of audio over the same {rtf_seconds / 60:.1f} min of the negative stream (speech over
noise and music), streamed in 100 ms blocks; median of 5 interleaved rounds. Aim: 0.01 or better.
apps.speech ran on {interpreter_label()} (ai-edge-litert 2.2 and 2.3 run microWakeWord's STRIDED_SLICE
about 2x slower per step; pyproject.toml excludes them, see docs/speech.md).

| engine | RTF | vs pymicro-wakeword |
|---|---|---|
{rtf_rows}

### Memory

{mem['seconds'] / 60:.0f} min of audio (10 min of the negative stream, looped) through the int8 spotter in a child
process ({mem['steps']:,} steps): RSS {mem['first_minute']:.1f} MiB after the first minute, {mem['end']:.1f} MiB at
the end ({growth:+.1f}%; target within 5%).
"""


def _never(calibrated: dict) -> str:
    text = ""
    words = calibrated.get("never_detected") or []
    if words:
        text += (f"At this target the calibration found no threshold for {', '.join(words)} that detects any of their "
                 "calibration utterances without a false accept in its negatives: those keywords are off (FRR 100%).\n")
    over = calibrated.get("over_target") or []
    if over:
        points = calibrated["operating_point"]["keywords"]
        text += ("Over the target (`--max-frr` 0.5 keeps a keyword finding at least half its calibration utterances "
                 "rather than switching it off): " + ", ".join(
                     f"{w} at {points[w]['fa_per_hour']:.2f} FA/h with FRR {100 * points[w]['frr']:.1f}%" for w in over)
                 + " in the calibration data.\n")
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", default=os.path.expanduser("~/.cache/edgepilot/bench-models"))
    parser.add_argument("--fa-minutes", type=float, default=60)
    parser.add_argument("--memory-minutes", type=float, default=60)
    parser.add_argument("--calib-negative-minutes", type=float, default=120)
    parser.add_argument("--positive-minutes", type=float, default=20)
    parser.add_argument("--rtf-seconds", type=float, default=300)
    parser.add_argument("--model", default=None, metavar="DIR", help="a training folder instead of the cached digits")
    args = parser.parse_args(argv)
    print(run(Path(args.cache), fa_minutes=args.fa_minutes, calib_negative_minutes=args.calib_negative_minutes,
              positive_minutes=args.positive_minutes, memory_minutes=args.memory_minutes,
              rtf_seconds=args.rtf_seconds, folder=args.model, progress=lambda m: print(m, file=sys.stderr, flush=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
