"""The audio ``edgepilot kws-calibrate`` measures on: :class:`~apps.speech.calibrate.Clip` lists.

- :func:`positives_from_dir`: ``DIR/<keyword>/*.wav``; each file holds one or more utterances of
  that keyword, separated by at least ``GAP_S`` of quiet; the utterances are found by frame
  energy (:func:`utterance_spans`).
- :func:`negatives_from_dir`: ``DIR/*.wav`` with none of the keywords said.
- :func:`synthetic_positives` / :func:`synthetic_negatives`: the offline defaults, spoken by the
  TTS engines of Debian main through :mod:`train.speech` (the ``[train]`` extra): keywords inside
  running sentences and said alone by the model's held-out voices; running text without any
  keyword over noise, babble and music."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from apps.speech.audio import AudioError, read_wav
from apps.speech.calibrate import Clip, Said
from apps.speech.frontend import SAMPLE_RATE_HZ

FRAME_SAMPLES = 160  # 10 ms
SPEECH_BELOW_PEAK_DB = 35.0  # a frame is speech within this of the file's loudest frame ...
SPEECH_FLOOR_DBFS = -60.0  # ... and above this
GAP_S = 0.5  # quieter stretches shorter than this stay inside one utterance ("okay ... nabu")
MIN_UTTERANCE_S = 0.1


def utterance_spans(samples: np.ndarray) -> list[tuple[float, float]]:
    """(start_s, end_s) of each stretch of speech in int16 16 kHz audio, by 10 ms frame energy."""
    n = len(samples) // FRAME_SAMPLES
    if n == 0:
        return []
    frames = samples[:n * FRAME_SAMPLES].astype(np.float64).reshape(n, FRAME_SAMPLES) / 32768.0
    energy_db = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)
    loud = energy_db >= max(energy_db.max() - SPEECH_BELOW_PEAK_DB, SPEECH_FLOOR_DBFS)
    idx = np.flatnonzero(loud)
    if len(idx) == 0:
        return []
    gap = round(GAP_S * SAMPLE_RATE_HZ / FRAME_SAMPLES)
    breaks = np.flatnonzero(np.diff(idx) > gap)
    starts, ends = np.r_[idx[0], idx[breaks + 1]], np.r_[idx[breaks], idx[-1]] + 1
    step = FRAME_SAMPLES / SAMPLE_RATE_HZ
    return [(s * step, e * step) for s, e in zip(starts, ends) if (e - s) * step >= MIN_UTTERANCE_S]


def _wav_files(folder: Path, what: str) -> list[Path]:
    if not folder.is_dir():
        raise ValueError(f"{what} {folder}: no such folder")
    files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    others = [p.name for p in files if p.is_dir() or p.suffix.lower() != ".wav"]
    if others:
        raise ValueError(f"{what} {folder}: expected only .wav files, found {others[:5]}")
    if not files:
        raise ValueError(f"{what} {folder}: no .wav files in it")
    return files


def _folder_name(keyword: str) -> tuple[str, ...]:
    return (keyword, keyword.replace(" ", "_"), keyword.replace("_", " "))


def positives_from_dir(folder, keywords) -> list[Clip]:
    """``folder/<keyword>/*.wav`` for every keyword (a folder may spell spaces as ``_``)."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise ValueError(f"--positives {root}: no such folder; expected {root}/<keyword>/*.wav")
    subfolders = {p.name: p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    strays = sorted(p.name for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
    if strays:
        raise ValueError(f"--positives {root}: files {strays[:5]} directly inside; expected one folder per keyword "
                         f"({list(keywords)}) holding .wav files")
    owner = {}
    for name, path in subfolders.items():
        match = [k for k in keywords if name in _folder_name(k)]
        if not match:
            raise ValueError(f"--positives {root}/{name}: {name!r} is not a keyword of the model; its keywords are "
                             f"{list(keywords)}")
        owner[match[0]] = path
    missing = [k for k in keywords if k not in owner]
    if missing:
        raise ValueError(f"--positives {root}: no folder for keyword(s) {missing}; expected {root}/<keyword>/*.wav "
                         f"for each of {list(keywords)}")
    clips = []
    for keyword in keywords:
        for path in _wav_files(owner[keyword], "--positives"):
            samples = read_wav(path).mono16k()
            spans = utterance_spans(samples)
            if not spans:
                raise AudioError(f"{path}: no speech found (silent or too quiet); expected utterances of {keyword!r}")
            clips.append(Clip(str(path), samples, tuple(Said(keyword, s, e) for s, e in spans), source=str(root)))
    return clips


def negatives_from_dir(folder) -> list[Clip]:
    root = Path(folder).expanduser()
    clips = []
    for path in _wav_files(root, "--negatives"):
        samples = read_wav(path).mono16k()
        if len(samples) == 0:
            raise AudioError(f"{path}: no audio in it (0 samples)")
        clips.append(Clip(str(path), samples, negative=True, source=str(root)))
    return clips


def _speech():
    try:
        import scipy  # noqa: F401  (the augmentation needs it; fail here, not halfway)

        from train import speech
    except ImportError as exc:
        raise RuntimeError(f"synthesizing default positives/negatives needs the [train] extra ({exc.name} is "
                           "missing): pip install 'edgepilot[train]', or give --positives and --negatives") from None
    return speech


def held_out_voices(model_path) -> tuple[str, ...]:
    """The held-out (validation) voice ids in the training.json beside the model."""
    p = Path(model_path)
    record = (p if p.is_dir() else p.parent) / "training.json"
    if not record.is_file():
        raise ValueError(f"{p}: no training.json beside it to name the held-out voices; give --positives DIR")
    try:
        voices = json.loads(record.read_text(encoding="utf-8"))["voices"]["val"]
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{record}: expected voices.val (the held-out voice ids) in it") from None
    if not voices:
        raise ValueError(f"{record}: voices.val is empty; give --positives DIR")
    return tuple(voices)


def synthetic_positives(keywords, voices, *, minutes: float, seed: int, cache_dir=None, isolated: bool = True,
                        progress=None) -> list[Clip]:
    """Keywords in running sentences (``minutes`` of it, a keyword in every sentence) and, with
    ``isolated``, each keyword said alone once by each voice (0.6-1.2 s apart): one clip each."""
    speech = _speech()
    say = progress or (lambda m: None)
    clips = []
    if minutes > 0:
        say(f"positives: {minutes:g} min of sentences with keywords, {len(voices)} held-out voices")
        audio, words = speech.running_speech(keywords, voices=voices, seconds=minutes * 60, seed=seed,
                                             cache_dir=cache_dir, keyword_share=1.0)
        clips.append(Clip("running speech (held-out voices)", speech_int16(audio),
                          tuple(Said(w.word, w.start_s, w.end_s) for w in words), source="running_speech"))
    if isolated:
        say(f"positives: {len(keywords)} keyword(s) said alone by {len(voices)} held-out voices")
        clips.append(isolated_words(keywords, voices, seed=seed, cache_dir=cache_dir))
    return clips


def isolated_words(keywords, voices, *, seed: int, cache_dir=None, repeats: int = 1) -> Clip:
    """Each keyword said alone ``repeats`` times by each voice (random speed and pitch, levels
    from -8 to +4 dB around the reference), 0.6-1.2 s of silence between, in random order."""
    speech = _speech()
    from train.speech.augment import REFERENCE_DBFS, active_rms
    from train.speech.engines import Request, Voice
    from train.speech.streams import PITCH_RANGE, SPEED_RANGE

    rng = np.random.default_rng([seed, 0x150])
    requests = []
    for _ in range(repeats):
        for voice in voices:
            for word in keywords:
                requests.append((word, Request(Voice.parse(voice), word.replace("_", " "),
                                               round(float(rng.uniform(*SPEED_RANGE)), 2),
                                               round(float(rng.uniform(*PITCH_RANGE)), 1))))
    order = rng.permutation(len(requests))
    utts = speech.synthesize_requests([requests[i][1] for i in order], cache_dir=cache_dir)
    pieces, said, at = [np.zeros(int(0.5 * SAMPLE_RATE_HZ), np.float32)], [], int(0.5 * SAMPLE_RATE_HZ)
    for i, u in zip(order, utts):
        gain = 10 ** ((REFERENCE_DBFS + rng.uniform(-8.0, 4.0)) / 20) / max(active_rms(u.audio), 1e-9)
        said.append(Said(requests[i][0], at / SAMPLE_RATE_HZ, (at + len(u.audio)) / SAMPLE_RATE_HZ))
        pause = np.zeros(int(rng.uniform(0.6, 1.2) * SAMPLE_RATE_HZ), np.float32)
        pieces += [(u.audio * gain).astype(np.float32), pause]
        at += len(u.audio) + len(pause)
    return Clip("isolated keywords (held-out voices)", speech_int16(np.concatenate(pieces)), tuple(said),
                source="isolated")


def synthetic_negatives(keywords, *, minutes: float, seed: int, cache_dir=None, progress=None) -> list[Clip]:
    """``minutes`` of running text without any keyword, over noise, babble and music."""
    speech = _speech()
    if progress is not None:
        progress(f"negatives: {minutes:g} min of sentences without the keywords, over noise and music")
    audio = speech.negative_stream([k.replace("_", " ") for k in keywords], seconds=minutes * 60, seed=seed,
                                   cache_dir=cache_dir)
    return [Clip(f"negative_stream seed {seed}", speech_int16(audio), negative=True, source="negative_stream")]


def speech_int16(audio: np.ndarray) -> np.ndarray:
    """train.speech float audio (on the int16 grid, scale 32767) as int16 samples."""
    return np.clip(np.round(np.asarray(audio, np.float64) * 32767.0), -32768, 32767).astype(np.int16)
