"""The one typed place for ``edgepilot train kws`` options, checked when built."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

RESERVED = ("_silence_", "_unknown_")


@dataclass(frozen=True)
class KwsOptions:
    """``words``: the command words, exactly as events will name them. ``epochs`` of Adam with a
    cosine learning rate from ``lr``; the weights of the best epoch on held-out voices are kept.
    ``limit`` keeps only that many clips per class (quick runs and tests). ``channels`` widens the
    network (96: about 70k parameters). ``negative_minutes`` of synthetic running speech over
    noise and music (sentences from the training part of the fortunes, training voices only) is
    streamed through the frontend and cut into ``_unknown_`` windows: the hard negatives that keep
    false accepts down in conversation. ``qat``: then ``qat_epochs`` of quantization-aware
    fine-tuning (:mod:`train.kws.qat`) into ``kws_stream_qat_int8.tflite``."""

    words: tuple[str, ...]
    out: Path
    seed: int = 0
    epochs: int = 20
    batch_size: int = 128
    lr: float = 3e-3
    channels: int = 96
    qat: bool = False  # also quantization-aware fine-tuning into kws_stream_qat_int8.tflite
    qat_epochs: int = 3
    force: bool = False
    cache_dir: Path | None = None
    limit: int | None = None
    augment_copies: int | None = None  # None: the data builder's default
    spec_augment: bool = True
    negative_minutes: float = 30.0  # running speech without the words, cut into _unknown_ windows

    def __post_init__(self):
        words = tuple(str(w).strip() for w in self.words)
        object.__setattr__(self, "words", words)
        object.__setattr__(self, "out", Path(self.out))
        if not words:
            raise ValueError("--words: give at least one command word")
        bad = [w for w in words if not re.fullmatch(r"[A-Za-z][A-Za-z' -]*", w)]
        if bad:
            raise ValueError(f"--words: {bad} are not words a speech synthesizer can say; expected letters, "
                             f"spaces, hyphens or apostrophes (e.g. 'stop', 'hey robot')")
        if len({w.lower() for w in words}) != len(words):
            raise ValueError(f"--words: {list(words)} repeats a word")
        if any(w in RESERVED for w in words):
            raise ValueError(f"--words: {RESERVED} are reserved class names")
        for name in ("epochs", "batch_size", "channels", "qat_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.limit is not None and self.limit < 2:
            raise ValueError(f"--limit must be >= 2 clips per class, got {self.limit}")
        if self.negative_minutes < 0:
            raise ValueError(f"--negative-minutes must be >= 0, got {self.negative_minutes}")
        if not self.lr > 0:
            raise ValueError(f"--lr must be > 0, got {self.lr}")

    @property
    def classes(self) -> tuple[str, ...]:
        return RESERVED + self.words

    def to_dict(self) -> dict:
        data = asdict(self)
        data["out"], data["cache_dir"] = str(self.out), str(self.cache_dir) if self.cache_dir else None
        data["words"] = list(self.words)
        return data
