"""Leave-voices-out: validation speech comes only from voices (speakers) training never heard.

espeak-ng voices are accent x variant, and two voices sharing either are close relatives, so whole
accents and whole variants are held out: a val voice has an accent or a variant (or both) that no
train voice has. flite and festival voices are held out by the person behind them (flite kal16 and
festival kal_diphone are both Kal, flite slt and festival's HTS voice are both SLT), so the same
speaker is never on both sides. Every engine is represented in val.

Among those natural-sounding speakers, one who is the only man or the only woman is held out
last: flite and festival have one female speaker (SLT) and four male ones, and a model that never
heard a natural female voice in training does poorly on half of its real users, whatever the
validation says. (Measured on the digits: with SLT held out, SLT's clips scored 32-46% while the
held-out espeak-ng voices scored 74-97%.)"""
from __future__ import annotations

import itertools

import numpy as np

from train.speech.engines import Voice

# The sex of the natural-sounding speakers (train.speech.engines.SPEAKERS), for the holdout order.
SPEAKER_SEX = {"kal": "m", "slt": "f", "awb": "m", "rms": "m", "ked": "m"}
# Part of the data builder's cache key: a change of the rule never reuses an old split.
SPLIT_RULE = "leave-speakers-out, sole speaker of a sex last (2)"


def _espeak_holdout(voices: list[Voice], fraction: float, rng: np.random.Generator) -> set[Voice]:
    accents = sorted({v.name for v in voices})
    variants = sorted({v.variant for v in voices})
    best = None
    for a, b in itertools.product(range(len(accents)), range(len(variants))):
        if (a == 0 and len(accents) > 1) or (b == 0 and len(variants) > 1):
            continue  # hold out at least one accent and one variant where there are several
        held = 1.0 - (1.0 - a / len(accents)) * (1.0 - b / len(variants))
        score = (abs(held - fraction), abs(a / len(accents) - b / len(variants)))
        if best is None or score < best[0]:
            best = (score, a, b)
    if best is None:  # one accent and one variant: one voice, which can only be held out
        return set(voices)
    _, a, b = best
    held_accents = set(rng.choice(accents, size=a, replace=False).tolist()) if a else set()
    held_variants = set(rng.choice(variants, size=b, replace=False).tolist()) if b else set()
    return {v for v in voices if v.name in held_accents or v.variant in held_variants}


def _speaker_holdout(voices: list[Voice], fraction: float, rng: np.random.Generator) -> set[Voice]:
    """Whole speakers, until every engine has a val voice and the val share reaches ``fraction``,
    keeping at least one train voice per engine where the engine has more than one speaker."""
    speakers = sorted({v.speaker for v in voices})
    shuffled = [speakers[i] for i in rng.permutation(len(speakers))]
    sexes = [SPEAKER_SEX.get(s, "") for s in speakers]
    sole = {s for s in speakers if SPEAKER_SEX.get(s, "") and sexes.count(SPEAKER_SEX[s]) == 1}
    order = [s for s in shuffled if s not in sole] + [s for s in shuffled if s in sole]
    engines = {v.engine for v in voices}
    held: set[Voice] = set()

    def covered() -> set[str]:
        return {v.engine for v in held}

    def leaves_train(group: set[Voice]) -> bool:
        rest = [v for v in voices if v not in held and v not in group]
        return {v.engine for v in rest} >= {v.engine for v in group}

    for speaker in order:  # first: cover each engine
        group = {v for v in voices if v.speaker == speaker}
        if {v.engine for v in group} - covered() and leaves_train(group):
            held |= group
    for engine in sorted(engines - covered()):  # an engine with a single speaker: val only
        held |= {v for v in voices if v.engine == engine}
    for speaker in order:  # drop a speaker whose engines the others cover already
        group = {v for v in voices if v.speaker == speaker}
        if group <= held and {v.engine for v in held - group} == covered():
            held -= group
    for speaker in order:  # then: the requested share
        group = {v for v in voices if v.speaker == speaker}
        if len(held) >= fraction * len(voices):
            break
        if not group <= held and leaves_train(group) and len(held | group) <= fraction * len(voices) + 0.5:
            held |= group
    return held


def split_voices(voices, *, val_fraction: float = 0.2, seed: int = 0) -> tuple[tuple[Voice, ...], tuple[Voice, ...]]:
    """(train, val) voices, disjoint, in the given order. About ``val_fraction`` of the espeak-ng
    voices and of the other voices go to val; the choice depends only on ``seed`` and the voice set."""
    voices = list(dict.fromkeys(voices))
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction {val_fraction}: expected a number between 0 and 1 (exclusive)")
    if not voices:
        raise ValueError("split_voices: expected some voices, got none")
    rng = np.random.default_rng(seed)
    espeak = sorted((v for v in voices if v.engine == "espeak-ng"), key=lambda v: v.id)
    others = sorted((v for v in voices if v.engine != "espeak-ng"), key=lambda v: v.id)
    held = (_espeak_holdout(espeak, val_fraction, rng) if espeak else set()) | \
        (_speaker_holdout(others, val_fraction, rng) if others else set())
    return tuple(v for v in voices if v not in held), tuple(v for v in voices if v in held)
