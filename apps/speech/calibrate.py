"""Choosing a keyword model's operating point: thresholds and smoothing from recorded probabilities.

1. :func:`record` streams every clip through the real :class:`~apps.speech.spotter.Spotter`
   (frontend, model, block by block, exactly as ``edgepilot listen`` does) with smoothing 1 and
   keeps the raw probability of every keyword at every step (its ``on_step`` hook).
2. :func:`detect` replays those probabilities offline for many thresholds at once, applying the
   spotter's own rules to the bit: the mean of the last ``smoothing_steps`` probabilities (0 until
   there are that many; the same ring-buffer sum), fire when it *exceeds* the threshold, then quiet
   for ``refractory_s`` of stream time and until the score fell below half the threshold. A test
   proves the replay gives the real spotter's detections, times included.
3. :func:`sweep` scores each smoothing window x threshold: false-reject rate on the positives (an
   utterance is found when its keyword fires from its start to ``MATCH_TOLERANCE_S`` after its
   end) and false accepts per hour on the negatives; :func:`choose` picks the operating point.

Pure numpy; the model runs only in :func:`record`."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from apps.speech.spotter import REARM_FRACTION, Spotter

SMOOTHING_STEPS = (1, 2, 3, 4, 6, 8)
DEFAULT_TARGET_FA_PER_HOUR = 0.5  # per keyword: 10 keywords -> 5 per hour, between the goal (4) and the aim (8)
DEFAULT_MAX_FRR = 0.5  # a keyword is never calibrated into rejecting more than this (see pick)
MATCH_TOLERANCE_S = 1.0  # a detection up to this long after the end of the word still finds it
BLOCK_SAMPLES = 1600  # 100 ms, listen's default block


def threshold_grid() -> np.ndarray:
    """0.005 .. 0.995 in steps of 0.005, then 1 - 10^-x up to 0.9999 (models that saturate)."""
    linear = np.round(np.arange(1, 200) * 0.005, 6)
    tail = np.round(1.0 - 10.0 ** -np.arange(2.4, 4.01, 0.2), 6)
    return np.unique(np.concatenate([linear, tail]))


@dataclass(frozen=True)
class Said:
    """A keyword said in a clip, from ``start_s`` to ``end_s`` (stream seconds)."""

    keyword: str
    start_s: float
    end_s: float


@dataclass(frozen=True, eq=False)
class Clip:
    """One stream of 16 kHz mono int16 audio: a positive one lists the keywords said in it
    (``said``); a negative one holds none (``negative``; every detection is a false accept)."""

    name: str
    audio: np.ndarray = field(repr=False)
    said: tuple[Said, ...] = ()
    negative: bool = False
    source: str = ""

    @property
    def seconds(self) -> float:
        return len(self.audio) / 16000


@dataclass(frozen=True, eq=False)
class Recording:
    """A clip's raw per-step probabilities: ``t`` [steps] (the spotter's step times), ``probs``
    [steps, keywords] float64."""

    clip: Clip
    t: np.ndarray = field(repr=False)
    probs: np.ndarray = field(repr=False)


def record(model, clips, progress=None) -> list[Recording]:
    """Every clip through a :class:`Spotter` (smoothing 1, so ``on_step`` sees the raw
    probabilities), reset between clips as ``listen`` resets between files."""
    steps: list = []
    spotter = Spotter(model, thresholds=1.0, smoothing_steps=1, on_step=lambda t, s: steps.append((t, s.copy())))
    out = []
    for i, clip in enumerate(clips):
        if i:
            spotter.reset()
        steps.clear()
        audio = np.asarray(clip.audio)
        for start in range(0, len(audio), BLOCK_SAMPLES):
            spotter.process(audio[start:start + BLOCK_SAMPLES])
        t = np.array([s[0] for s in steps], np.float64)
        probs = np.array([s[1] for s in steps], np.float64).reshape(len(steps), len(spotter.keywords))
        out.append(Recording(clip, t, probs))
        if progress is not None:
            progress(i + 1, len(clips))
    return out


def smooth(probs: np.ndarray, steps: int, floor: float = -np.inf) -> np.ndarray:
    """The spotter's smoothed scores: 0 before ``steps`` probabilities arrived, then at step n
    ``sum(ring slot 0, 1, ...) / steps`` with Python's own ``sum`` over its ring buffer (slot j
    holds the latest probability of a step m with m % steps == j), as the spotter computes it.
    Scores that a vectorized sum puts below ``floor`` keep that value (a few ulps from the
    spotter's, so the same side of any threshold >= ``floor``)."""
    probs = np.asarray(probs, np.float64)
    if steps == 1:
        return probs.copy()
    out = np.zeros_like(probs)
    n = np.arange(steps - 1, len(probs))
    if len(n) == 0:
        return out
    ring = np.stack([probs[n - ((n - j) % steps)] for j in range(steps)], axis=1)  # [m, slot, K] like the ring
    total = ring[:, 0].copy()
    for j in range(1, steps):
        total += ring[:, j]
    fast = total / steps
    m, k = np.nonzero(fast >= floor - 1e-9)
    fast[m, k] = [sum(column) / steps for column in ring[m, :, k].tolist()]
    out[steps - 1:] = fast
    return out


def detect(t: np.ndarray, scores: np.ndarray, thresholds: np.ndarray, refractory_s: float):
    """Detections for every keyword x threshold column at once: ``thresholds`` [K, T].
    Returns (step, keyword, column) index arrays, in step order."""
    t = np.asarray(t, np.float64)
    thr = np.asarray(thresholds, np.float64)
    k_count, columns = thr.shape
    half = thr * REARM_FRACTION
    armed = np.ones((k_count, columns), bool)
    quiet = np.full((k_count, columns), -np.inf)
    low = float(half.min()) if half.size else 0.0
    # a step where every score lies below every half threshold re-arms all and fires nothing: skipped
    active = np.flatnonzero((scores >= low).any(axis=1)) if len(scores) else np.zeros(0, np.int64)
    steps, keys, cols = [], [], []
    previous = -1
    for n in active:
        if n > previous + 1:
            armed[:] = True
        s = scores[n][:, None]
        armed |= s < half
        fire = (s > thr) & armed & (t[n] >= quiet)
        if fire.any():
            k, c = np.nonzero(fire)
            quiet[k, c] = t[n] + refractory_s
            armed[k, c] = False
            steps.append(np.full(len(k), n))
            keys.append(k)
            cols.append(c)
        previous = n
    if not steps:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    return np.concatenate(steps), np.concatenate(keys), np.concatenate(cols)


@dataclass(frozen=True)
class Tally:
    """Outcome counts per keyword x threshold column: ``hits`` / ``utterances`` on positives,
    ``false_accepts`` on ``negative_hours`` of negatives, ``stray`` (detections in positive clips
    that match no utterance of that keyword) and ``latency_s`` (detection time minus word end of
    each hit, per column: a list of arrays)."""

    keywords: tuple[str, ...]
    utterances: np.ndarray  # [K]
    hits: np.ndarray  # [K, T]
    false_accepts: np.ndarray  # [K, T]
    stray: np.ndarray  # [K, T]
    negative_hours: float
    latency_s: tuple = ()

    @property
    def frr(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return 1.0 - self.hits / self.utterances[:, None]

    @property
    def fa_per_hour(self) -> np.ndarray:
        return self.false_accepts / self.negative_hours if self.negative_hours > 0 else np.full(self.false_accepts.shape, np.nan)


def _cover(rec: Recording, keywords: tuple[str, ...]) -> np.ndarray:
    """[steps, K]: the index (in ``rec.clip.said``) of the utterance of keyword k whose window holds the step, or -1."""
    cover = np.full((len(rec.t), len(keywords)), -1, np.int64)
    for i, said in enumerate(rec.clip.said):
        k = keywords.index(said.keyword)
        inside = (rec.t >= said.start_s) & (rec.t <= said.end_s + MATCH_TOLERANCE_S)
        cover[inside & (cover[:, k] < 0), k] = i  # an earlier word keeps its late detections
    return cover


def tally(recordings, keywords: tuple[str, ...], thresholds: np.ndarray, smoothing_steps: int,
          refractory_s: float) -> Tally:
    """Replay every recording at ``thresholds`` [K, T] and count hits, misses and false accepts."""
    keywords = tuple(keywords)
    k_count, columns = thresholds.shape
    utt_keyword = []
    hit_first = []  # per positive recording: [utterances, T] first detection time (nan: missed)
    fa = np.zeros((k_count, columns), np.int64)
    stray = np.zeros((k_count, columns), np.int64)
    ends = []
    negative_s = 0.0
    for rec in recordings:
        scores = smooth(rec.probs, smoothing_steps, float(thresholds.min()) * REARM_FRACTION)
        n, k, c = detect(rec.t, scores, thresholds, refractory_s)
        if rec.clip.negative:
            negative_s += rec.clip.seconds
            np.add.at(fa, (k, c), 1)
            continue
        utt_keyword += [keywords.index(s.keyword) for s in rec.clip.said]
        ends += [s.end_s for s in rec.clip.said]
        first = np.full((len(rec.clip.said), columns), np.nan)
        u = _cover(rec, keywords)[n, k] if len(n) else np.zeros(0, np.int64)
        matched = u >= 0
        np.add.at(stray, (k[~matched], c[~matched]), 1)
        for ui, ci, ti in zip(u[matched], c[matched], rec.t[n[matched]]):
            if np.isnan(first[ui, ci]):
                first[ui, ci] = ti
        hit_first.append(first)
    firsts = np.concatenate(hit_first) if hit_first else np.zeros((0, columns))
    utt_keyword = np.asarray(utt_keyword, np.int64)
    ends = np.asarray(ends, np.float64)
    hits = np.zeros((k_count, columns), np.int64)
    found = ~np.isnan(firsts)
    for kk in range(k_count):
        hits[kk] = found[utt_keyword == kk].sum(axis=0)
    latency = tuple((firsts[found[:, j], j] - ends[found[:, j]]) for j in range(columns))
    utterances = np.bincount(utt_keyword, minlength=k_count) if len(utt_keyword) else np.zeros(k_count, np.int64)
    return Tally(keywords, utterances, hits, fa, stray, negative_s / 3600.0, latency)


@dataclass(frozen=True)
class KeywordPoint:
    """One keyword's operating point and what it gives on the calibration data."""

    keyword: str
    threshold: float
    frr: float
    fa_per_hour: float
    false_accepts: int
    utterances: int
    misses: int
    target_met: bool

    def to_dict(self) -> dict:
        return {"threshold": self.threshold, "frr": round(self.frr, 4), "fa_per_hour": round(self.fa_per_hour, 3),
                "false_accepts": self.false_accepts, "utterances": self.utterances, "misses": self.misses,
                "target_met": self.target_met}


@dataclass(frozen=True)
class Sweep:
    """Every smoothing window's tally over the same threshold grid."""

    keywords: tuple[str, ...]
    grid: np.ndarray
    tallies: dict  # smoothing steps -> Tally
    refractory_s: float


def sweep(recordings, keywords, refractory_s: float, smoothing=SMOOTHING_STEPS, grid=None, progress=None) -> Sweep:
    grid = threshold_grid() if grid is None else np.asarray(grid, np.float64)
    thresholds = np.tile(grid, (len(keywords), 1))
    tallies = {}
    for i, w in enumerate(smoothing):
        tallies[int(w)] = tally(recordings, tuple(keywords), thresholds, int(w), refractory_s)
        if progress is not None:
            progress(i + 1, len(smoothing))
    return Sweep(tuple(keywords), grid, tallies, refractory_s)


def pick(grid: np.ndarray, frr: np.ndarray, fa_per_hour: np.ndarray, target: float,
         max_frr: float = DEFAULT_MAX_FRR) -> tuple[int, bool]:
    """Column of the lowest FRR with FA/h <= target: the middle of the thresholds reaching that
    FRR (neither rate at its edge). Returns ``(column, target met)``.

    A keyword must stay usable: a point that meets the target only by rejecting more than
    ``max_frr`` of the keyword's utterances (at worst all of them: a keyword that never fires)
    does not count. Then the target is missed, said so, and the point is the lowest FA/h with
    FRR <= ``max_frr`` (then the lowest FRR). When no threshold gets under ``max_frr``, it is
    the lowest FA/h (then the lowest FRR). ``max_frr=1`` accepts any FRR, down to a keyword
    switched off."""
    ok = fa_per_hour <= target + 1e-12
    usable = frr <= max_frr + 1e-12
    if (ok & usable).any():
        best = np.min(frr[ok & usable])
        candidates = np.flatnonzero(ok & usable & (frr <= best + 1e-12))
        return int(candidates[len(candidates) // 2]), True
    pool = np.flatnonzero(usable) if usable.any() else np.arange(len(grid))
    order = np.lexsort((frr[pool], fa_per_hour[pool]))
    return int(pool[order[0]]), False


@dataclass(frozen=True)
class OperatingPoint:
    """The chosen smoothing window and per-keyword thresholds, with their figures."""

    smoothing_steps: int
    refractory_s: float
    target_fa_per_hour: float
    negative_hours: float
    keywords: tuple[KeywordPoint, ...]
    mean_frr_by_smoothing: dict

    @property
    def thresholds(self) -> dict[str, float]:
        return {p.keyword: p.threshold for p in self.keywords}

    @property
    def mean_frr(self) -> float:
        return float(np.mean([p.frr for p in self.keywords]))

    @property
    def fa_per_hour(self) -> float:
        return float(sum(p.fa_per_hour for p in self.keywords))

    def to_dict(self) -> dict:
        return {"smoothing_steps": self.smoothing_steps, "refractory_s": self.refractory_s,
                "target_fa_per_hour": self.target_fa_per_hour, "negative_hours": round(self.negative_hours, 4),
                "mean_frr": round(self.mean_frr, 4), "fa_per_hour_total": round(self.fa_per_hour, 3),
                "thresholds": self.thresholds, "keywords": {p.keyword: p.to_dict() for p in self.keywords},
                "mean_frr_by_smoothing": {str(k): round(v, 4) for k, v in self.mean_frr_by_smoothing.items()}}


def _points(s: Sweep, w: int, target: float, max_frr: float) -> list[KeywordPoint]:
    t = s.tallies[w]
    frr, fah = t.frr, t.fa_per_hour
    out = []
    for k, word in enumerate(s.keywords):
        j, met = pick(s.grid, frr[k], fah[k], target, max_frr)
        out.append(KeywordPoint(word, float(s.grid[j]), float(frr[k, j]), float(fah[k, j]), int(t.false_accepts[k, j]),
                                int(t.utterances[k]), int(t.utterances[k] - t.hits[k, j]), bool(met)))
    return out


def choose(s: Sweep, target_fa_per_hour: float = DEFAULT_TARGET_FA_PER_HOUR,
           max_frr: float = DEFAULT_MAX_FRR) -> OperatingPoint:
    """Per keyword the lowest FRR with FA/h <= target (:func:`pick`, never above ``max_frr``
    FRR); one smoothing window for the model: the one where the fewest keywords miss the target
    (each miss is false accepts the user did not budget for), then the lowest mean FRR over
    keywords, then fewer false accepts, then the shorter window, which answers sooner."""
    for w, t in s.tallies.items():
        if np.any(t.utterances == 0):
            missing = [k for k, n in zip(s.keywords, t.utterances) if n == 0]
            raise ValueError(f"no positive utterances of {missing}; every keyword needs some to calibrate")
    per = {w: _points(s, w, target_fa_per_hour, max_frr) for w in s.tallies}
    mean = {w: float(np.mean([p.frr for p in pts])) for w, pts in per.items()}

    def rank(w):
        pts = per[w]
        return (sum(not p.target_met for p in pts), round(mean[w], 9), sum(p.fa_per_hour for p in pts), w)

    w = min(per, key=rank)
    negative_hours = s.tallies[w].negative_hours
    return OperatingPoint(w, s.refractory_s, float(target_fa_per_hour), negative_hours, tuple(per[w]), mean)
