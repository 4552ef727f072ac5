"""Fixed-length keyword-spotting clips: :class:`KwsClips` and :func:`build_clips`.

Classes are ``("_silence_", "_unknown_", *words)`` in this order. A keyword clip holds the whole
word (perturbed in speed, then augmented) with its end at a random position; an ``_unknown_`` clip
holds another word (from Debian ``wamerican``: some short, some sharing a keyword's first letters)
or the first or last part of a keyword cut off; a ``_silence_`` clip holds noise, music or near
silence. Validation clips are spoken by held-out voices only (:mod:`train.speech.split`).

A build is deterministic for its seed (each clip draws from its own generator seeded by
``(seed, stage, index)``) and cached whole under a content hash of every option, the voice set and
the engine versions; audio is kept on the int16 grid, so a cached build is bit-identical to a fresh one."""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from train.speech import cache
from train.speech.augment import augment, background_clip, perturb
from train.speech.backgrounds import RULE as background_rule, Backgrounds, make_backgrounds
from train.speech.engines import Request, Voice, engine_version, voices as machine_voices
from train.speech.split import SPLIT_RULE, split_voices
from train.speech.synth import SAMPLE_RATE_HZ, synthesize_requests
from train.speech.text import spoken, unknown_words as pick_unknown_words

SILENCE, UNKNOWN = "_silence_", "_unknown_"
# Keyword renderings per word and voice: espeak-ng has many voices, flite and festival few.
PER_VOICE = {"espeak-ng": 2, "flite": 20, "festival": 20}
SPEED_RANGE = (0.8, 1.25)  # engine speed factor
PITCH_RANGE = {"espeak-ng": (-3.0, 3.0), "flite": (-2.0, 2.0), "festival": (-2.0, 2.0)}  # semitones
CLIP_QUANTILE = 0.95  # the clip is long enough for this share of keyword utterances


@dataclass(frozen=True, eq=False)
class KwsClips:
    """Labelled 16 kHz clips. ``voices`` is the speaking voice's id ("" for silence), ``split``
    "train" or "val" (val = held-out voices only), ``texts`` what was said ("" for silence,
    ``"seven[:0.42]"`` for the first 42% of a keyword, ``"seven[-0.42:]"`` for the last), ``end_s`` where the word ends in the clip
    (NaN where no whole word is inside)."""

    audio: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)
    classes: tuple[str, ...]
    voices: np.ndarray = field(repr=False)
    split: np.ndarray = field(repr=False)
    clip_seconds: float
    texts: np.ndarray = field(repr=False, default=None)
    end_s: np.ndarray = field(repr=False, default=None)

    def __post_init__(self):
        n = len(self.audio)
        if self.audio.ndim != 2 or self.audio.dtype != np.float32:
            raise ValueError(f"KwsClips.audio: expected [N, samples] float32, got {self.audio.shape} {self.audio.dtype}")
        if self.audio.shape[1] != int(round(self.clip_seconds * SAMPLE_RATE_HZ)):
            raise ValueError(f"KwsClips.audio: {self.audio.shape[1]} samples a clip, expected "
                             f"{self.clip_seconds} s at {SAMPLE_RATE_HZ} Hz")
        if self.classes[:2] != (SILENCE, UNKNOWN):
            raise ValueError(f"KwsClips.classes: expected ('{SILENCE}', '{UNKNOWN}', *words), got {self.classes}")
        if self.texts is None:
            object.__setattr__(self, "texts", np.full(n, "", dtype="<U1"))
        if self.end_s is None:
            object.__setattr__(self, "end_s", np.full(n, np.nan, np.float32))
        for name in ("labels", "voices", "split", "texts", "end_s"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"KwsClips.{name}: {len(getattr(self, name))} entries for {n} clips")
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise ValueError(f"KwsClips.labels: expected 0..{len(self.classes) - 1}")
        bad = set(np.unique(self.split)) - {"train", "val"}
        if bad:
            raise ValueError(f"KwsClips.split: expected 'train' or 'val', got {sorted(bad)}")

    def __len__(self) -> int:
        return len(self.audio)

    @property
    def words(self) -> tuple[str, ...]:
        return self.classes[2:]

    def subset(self, split) -> "KwsClips":
        """The clips of ``split`` ("train" or "val"), or of a boolean mask / index array."""
        if isinstance(split, str):
            if split not in ("train", "val"):
                raise ValueError(f"KwsClips.subset: expected 'train' or 'val', got {split!r}")
            split = self.split == split
        return KwsClips(self.audio[split], self.labels[split], self.classes, self.voices[split], self.split[split],
                        self.clip_seconds, self.texts[split], self.end_s[split])

    def counts(self) -> dict:
        """``{"train": {class: clips}, "val": {...}, "voices": {"train": n, "val": n}}``."""
        out = {}
        for part in ("train", "val"):
            labels = self.labels[self.split == part]
            out[part] = {c: int(np.sum(labels == i)) for i, c in enumerate(self.classes)}
        out["voices"] = {part: len(ids) for part, ids in self.voice_split().items()}
        return out

    def voice_split(self) -> dict[str, tuple[str, ...]]:
        """``{"train": voice ids, "val": voice ids}`` (sorted; silence has no voice)."""
        return {part: tuple(sorted(set(self.voices[(self.split == part) & (self.voices != "")].tolist())))
                for part in ("train", "val")}

    def to_arrays(self, audio_int16: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Plain arrays (audio as int16; pass it when you have it, to save converting it back)."""
        audio = cache.quantize(self.audio) if audio_int16 is None else audio_int16
        return {"audio": audio, "labels": self.labels, "classes": np.array(self.classes),
                "voices": self.voices, "split": self.split, "texts": self.texts, "end_s": self.end_s,
                "clip_seconds": np.array(self.clip_seconds)}

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> "KwsClips":
        return cls(cache.dequantize(a["audio"]), a["labels"], tuple(a["classes"].tolist()), a["voices"], a["split"],
                   float(a["clip_seconds"]), a["texts"], a["end_s"])


def _rng(seed: int, stage: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, stage, index])


def _keyword_requests(words, voice_list, seed, per_voice) -> list[Request]:
    out = []
    for w, word in enumerate(words):
        for v, voice in enumerate(voice_list):
            for k in range(per_voice[voice.engine]):
                rng = _rng(seed, 1, (w * len(voice_list) + v) * 1000 + k)
                out.append(Request(voice, spoken(word), round(float(rng.uniform(*SPEED_RANGE)), 2),
                                   round(float(rng.uniform(*PITCH_RANGE[voice.engine])), 1)))
    return out


def _place(audio: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """``audio`` in an ``n``-sample clip ending at a random position (whole when it fits, else a
    random ``n``-sample window): (clip, end in seconds or NaN when cut)."""
    clip = np.zeros(n, np.float32)
    if len(audio) > n:
        start = int(rng.integers(len(audio) - n + 1))
        return audio[start:start + n].astype(np.float32), math.nan
    end = int(rng.integers(len(audio), n + 1))
    clip[end - len(audio):end] = audio
    return clip, end / SAMPLE_RATE_HZ


PARALLEL_MIN_CLIPS = 2000  # fewer clips are made on one thread
CHUNK_CLIPS = 250


def _make_clips(first: int, words: list, wholes: list, silence: range, n: int, seed: int,
                backgrounds: Backgrounds) -> tuple[int, np.ndarray, np.ndarray]:
    """Clips ``first..`` of the build (each from its own generator: the same whichever thread
    makes it) and then the ``_silence_`` clips numbered ``silence``: (first, int16 audio, end_s)."""
    audio = np.zeros((len(words) + len(silence), n), np.int16)
    end_s = np.full(len(audio), np.nan, np.float32)
    for j, (a, whole) in enumerate(zip(words, wholes)):
        rng = _rng(seed, 6, first + j)
        placed, end = _place(a, n, rng)
        audio[j] = cache.quantize(augment(placed, rng, backgrounds=backgrounds))
        end_s[j] = end if whole else math.nan
    for j, k in enumerate(silence, start=len(words)):
        audio[j] = cache.quantize(background_clip(n, _rng(seed, 7, k), backgrounds))
    return first, audio, end_s


def _render_clips(words: list, wholes: list, silence: int, n: int, seed: int, backgrounds: Backgrounds, jobs: int,
                  progress, audio: np.ndarray, end_s: np.ndarray) -> None:
    """Fill ``audio`` and ``end_s``: the word clips, then ``silence`` clips, on ``jobs`` threads for
    a large build (numpy, scipy and soxr release the GIL for most of the work)."""
    total = len(words) + silence
    tasks = [(i, words[i:i + CHUNK_CLIPS], wholes[i:i + CHUNK_CLIPS], range(0)) for i in range(0, len(words), CHUNK_CLIPS)]
    tasks += [(len(words) + i, [], [], range(len(words) + i, min(total, len(words) + i + CHUNK_CLIPS)))
              for i in range(0, silence, CHUNK_CLIPS)]
    done = 0
    if progress:
        progress(0, total)
    parallel = jobs > 1 and total >= PARALLEL_MIN_CLIPS
    with ThreadPoolExecutor(jobs if parallel else 1) as pool:
        make = (lambda task: _make_clips(*task, n, seed, backgrounds))
        for first, chunk, ends in (pool.map(make, tasks) if parallel else map(make, tasks)):
            audio[first:first + len(chunk)], end_s[first:first + len(chunk)] = chunk, ends
            done += len(chunk)
            if progress:
                progress(done, total)


def _options(words, seed, augment_copies, unknown_words, voice_list, val_fraction, per_voice, partial_fraction,
             silence_clips, clip_seconds, backgrounds) -> list:
    unknown = list(unknown_words) if unknown_words is not None and not isinstance(unknown_words, (int, float)) \
        else unknown_words
    return ["kws-clips", SPLIT_RULE, list(words), seed, augment_copies, unknown, [v.id for v in voice_list], val_fraction,
            sorted(per_voice.items()), partial_fraction, silence_clips, clip_seconds,
            sorted({engine_version(v.engine) for v in voice_list}),
            background_rule if backgrounds is None else backgrounds.digest()]


def build_clips(words, *, seed: int = 0, cache_dir=None, augment_copies: int = 2, unknown_words=1.0,
                voices=None, val_fraction: float = 0.2, per_voice=None, partial_fraction: float = 0.1,
                silence_clips: int | None = None, clip_seconds: float | None = None,
                backgrounds: Backgrounds | None = None, jobs: int = 2, progress=None) -> KwsClips:
    """Keyword-spotting clips for ``words``, built from the engines (or the cache).

    ``per_voice``: keyword renderings per word and voice by engine (default :data:`PER_VOICE`),
    each at a random engine speed and pitch; ``augment_copies``: augmented clips per utterance;
    ``unknown_words``: a number (that many times the keyword utterances; mirrors their voices,
    speeds and pitches) or the words themselves; ``partial_fraction``: extra ``_unknown_`` clips of
    cut-off keywords, as a share of the unknown utterances; ``silence_clips``: default the clips of
    an average keyword; ``clip_seconds``: default max(1.0, the 95th percentile of perturbed keyword
    durations rounded up to 0.1 s) (longer keyword utterances are dropped, never cut);
    ``backgrounds``: default :func:`make_backgrounds` of the train voices.
    ``progress(stage, done, total)`` reports each stage."""
    words = tuple(words)
    if not words or len(set(words)) != len(words) or any(w.startswith("_") for w in words):
        raise ValueError(f"build_clips words {words}: expected distinct words not starting with '_'")
    if augment_copies < 1:
        raise ValueError(f"augment_copies {augment_copies}: expected at least 1")
    voice_list = tuple(machine_voices() if voices is None else (v if isinstance(v, Voice) else Voice.parse(v)
                                                                   for v in voices))
    per_voice = dict(PER_VOICE, **(per_voice or {}))
    folder = cache.resolve(cache_dir)
    entry = folder / "clips" / (cache.key(*_options(words, seed, augment_copies, unknown_words, voice_list,
                                                     val_fraction, per_voice, partial_fraction, silence_clips,
                                                     clip_seconds, backgrounds)) + ".npz")
    stored = cache.load_arrays(entry)
    if stored is not None:
        if progress is not None:
            progress("cache", 1, 1)
        return KwsClips.from_arrays(stored)
    report = (lambda stage: (lambda d, t: progress(stage, d, t))) if progress is not None else (lambda stage: None)

    train_voices, val_voices = split_voices(voice_list, val_fraction=val_fraction, seed=seed)
    val_ids = {v.id for v in val_voices}
    kw_requests = _keyword_requests(words, voice_list, seed, per_voice)
    if isinstance(unknown_words, (int, float)):
        count = int(round(unknown_words * len(kw_requests)))
        unknown_texts = pick_unknown_words(words, count, np.random.default_rng([seed, 2]))
    else:
        unknown_texts = [str(w) for w in unknown_words]
    templates = [kw_requests[i] for i in np.random.default_rng([seed, 3]).integers(len(kw_requests),
                                                                                   size=len(unknown_texts))]
    unknown_requests = [Request(t.voice, text, t.speed, t.pitch) for t, text in zip(templates, unknown_texts)]
    keyword_utts = synthesize_requests(kw_requests, cache_dir=folder, jobs=jobs, progress=report("keywords"))
    unknown_utts = synthesize_requests(unknown_requests, cache_dir=folder, jobs=jobs, progress=report("unknown"))
    if backgrounds is None:  # babble of train voices only: val voices are never heard in training
        backgrounds = make_backgrounds(words, train_voices, seed=seed, cache_dir=folder, progress=progress)

    # keyword utterances: perturbed once per copy; the clip fits CLIP_QUANTILE of them
    perturbed = [[perturb(u.audio, _rng(seed, 4, i * augment_copies + c)) for c in range(augment_copies)]
                 for i, u in enumerate(keyword_utts)]
    lengths = np.array([len(a) for copies in perturbed for a in copies])
    if clip_seconds is None:
        clip_seconds = max(1.0, math.ceil(np.quantile(lengths, CLIP_QUANTILE) / SAMPLE_RATE_HZ * 10 - 1e-9) / 10)
    n = int(round(clip_seconds * SAMPLE_RATE_HZ))
    label_of = {w: i + 2 for i, w in enumerate(words)}
    items = []  # (audio, label, voice id, text, rng stage, whole word?)
    for i, (u, copies) in enumerate(zip(keyword_utts, perturbed)):
        word = words[[spoken(w) for w in words].index(u.text)]
        items += [(a, label_of[word], u.voice, word, True) for a in copies if len(a) <= n]
    kept_keywords = len(items)
    for u in unknown_utts:
        items += [(u.audio, 1, u.voice, u.text, True)] * augment_copies
    partial_rng = np.random.default_rng([seed, 5])
    for i in partial_rng.integers(len(keyword_utts), size=int(round(partial_fraction * len(unknown_utts)))):
        u = keyword_utts[int(i)]
        share = partial_rng.uniform(0.3, 0.6)
        cut = int(share * len(u.audio))
        if partial_rng.random() < 0.7:  # the start of the word ("seve" of seven), or its end
            items.append((u.audio[:cut], 1, u.voice, f"{u.text}[:{share:.2f}]", False))
        else:
            items.append((u.audio[len(u.audio) - cut:], 1, u.voice, f"{u.text}[-{share:.2f}:]", False))
    silence = silence_clips if silence_clips is not None else int(round(kept_keywords / len(words)))
    total = len(items) + silence
    audio = np.zeros((total, n), np.int16)  # on the int16 grid from the start: a cached build is the same
    labels = np.zeros(total, np.int32)
    voice_ids = np.full(total, "", dtype=object)
    texts = np.full(total, "", dtype=object)
    end_s = np.full(total, np.nan, np.float32)
    for k, (_a, label, voice, text, _whole) in enumerate(items):
        labels[k], voice_ids[k], texts[k] = label, voice, text
    _render_clips([a for a, *_ in items], [w for *_, w in items], silence, n, seed, backgrounds, jobs,
                  report("clips"), audio, end_s)
    val_share = len(val_voices) / len(voice_list)
    split = np.where(np.isin(voice_ids.astype(str), list(val_ids)), "val", "train")
    split[len(items):] = np.where(np.random.default_rng([seed, 8]).random(silence) < val_share, "val", "train")
    clips = KwsClips(cache.dequantize(audio), labels, (SILENCE, UNKNOWN, *words), voice_ids.astype(str), split.astype(str),
                     float(clip_seconds), texts.astype(str), end_s)
    cache.save_arrays(entry, **clips.to_arrays(audio_int16=audio))
    return clips
