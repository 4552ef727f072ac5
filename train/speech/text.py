"""What else gets said: other words from Debian ``wamerican`` (the ``_unknown_`` class) and running
text from Debian ``fortunes`` (negative streams, babble, filler around keywords), with anything that
contains a keyword left out."""
from __future__ import annotations

import functools
import re
import zlib
from pathlib import Path

import numpy as np

WORDS_FILE = Path("/usr/share/dict/words")
FORTUNES_DIR = Path("/usr/share/games/fortunes")
FORTUNE_SKIP = {"ascii-art", "perl", "translate-me"}  # pictures, code, other languages
# Words spoken like a keyword: never in unknown words or negative text. "to" and "for" are left in
# (spoken reduced, /tə/ /fɚ/, in running speech); a model firing on them is a real false accept.
HOMOPHONES = {"one": ("won",), "two": ("too", "tu"), "four": ("fore",), "eight": ("ate",), "no": ("know",),
              "right": ("write", "rite"), "here": ("hear",), "there": ("their",)}
SENTENCE_CHARS = re.compile(r"^[A-Za-z][A-Za-z ,;:'!?.\-]*$")
WORD_CHARS = re.compile(r"^[a-z]+$")


def spoken(word: str) -> str:
    """A keyword as text to speak: ``hey_jarvis`` -> ``hey jarvis``."""
    return word.replace("_", " ").strip()


def _forbidden(keywords) -> tuple[tuple[str, ...], frozenset[str]]:
    """(keyword spellings no token may contain, tokens that sound like a keyword)."""
    parts = tuple(sorted({p for w in keywords for p in spoken(w).lower().split()}))
    sounds = frozenset(h for p in parts for h in HOMOPHONES.get(p, ()))
    return parts, sounds


def _clean_token(token: str, parts, sounds) -> bool:
    return token not in sounds and not any(p in token for p in parts)


@functools.lru_cache(maxsize=1)
def _dictionary() -> tuple[str, ...]:
    if not WORDS_FILE.exists():
        raise FileNotFoundError(f"{WORDS_FILE} is missing: apt-get install wamerican")
    words = {w.strip() for w in WORDS_FILE.read_text(encoding="utf-8", errors="replace").splitlines()}
    return tuple(sorted(w for w in words if WORD_CHARS.match(w) and 2 <= len(w) <= 12 and set(w) & set("aeiouy")))


def unknown_words(keywords, count: int, rng: np.random.Generator) -> list[str]:
    """``count`` other words (lower-case alphabetic, none equal to, containing or sounding like a
    keyword): ~30% sharing a keyword's first letters (``several`` for seven, ``forty`` for four),
    ~30% short (2-4 letters), the rest any word. Distinct while the pools last."""
    parts, sounds = _forbidden(keywords)
    pool = [w for w in _dictionary() if _clean_token(w, parts, sounds)]
    prefixes = {p[:3] if len(p) >= 3 else p for p in parts}
    similar = [w for w in pool if any(w.startswith(p) for p in prefixes)]
    short = [w for w in pool if len(w) <= 4]
    chosen: list[str] = []
    for group, share in ((similar, 0.3), (short, 0.3), (pool, 1.0)):
        taken = set(chosen)
        group = [w for w in group if w not in taken]
        want = min(len(group), int(round(share * count)), count - len(chosen))
        if want > 0:
            chosen += [group[i] for i in rng.choice(len(group), size=want, replace=False)]
    while len(chosen) < count:  # small pools: repeat
        chosen.append(pool[int(rng.integers(len(pool)))])
    return [chosen[i] for i in rng.permutation(len(chosen))]


@functools.lru_cache(maxsize=1)
def _fortune_sentences() -> tuple[str, ...]:
    if not FORTUNES_DIR.is_dir():
        raise FileNotFoundError(f"{FORTUNES_DIR} is missing: apt-get install fortunes")
    sentences = set()
    for path in sorted(FORTUNES_DIR.iterdir()):
        if path.suffix or path.name in FORTUNE_SKIP or not path.is_file():
            continue
        for fortune in path.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            lines = [ln for ln in fortune.splitlines() if not ln.strip().startswith("--")]
            text = " ".join(" ".join(lines).split())
            for sentence in re.split(r"(?<=[.!?])\s+", text):
                words = sentence.split()
                if (4 <= len(words) <= 25 and SENTENCE_CHARS.match(sentence) and not sentence.isupper()
                        and all(any(c.isalpha() for c in w) for w in words)):
                    sentences.add(sentence)
    return tuple(sorted(sentences))


def tokens(sentence: str) -> list[str]:
    return [t for t in re.split(r"[^a-z']+", sentence.lower()) if t]


# Which sentences may train a model (a quarter, by a hash of the text) and which are kept for
# measuring false accepts: the two never share a sentence, whatever the seeds.
PARTS = ("train", "heldout")


def sentence_part(sentence: str) -> str:
    return "train" if zlib.crc32(sentence.encode("utf-8")) % 4 == 0 else "heldout"


def fortune_sentences(keywords, part: str | None = None) -> tuple[str, ...]:
    """Sentences of the fortunes (4-25 words, letters and punctuation only, no digits: a number
    would be spoken as words) with no token containing or sounding like a keyword; ``part``
    "train" or "heldout" keeps only that part (see :data:`PARTS`), None all."""
    if part is not None and part not in PARTS:
        raise ValueError(f"sentence part {part!r}: expected one of {PARTS} or None")
    parts, sounds = _forbidden(keywords)
    return tuple(s for s in _fortune_sentences()
                 if (part is None or sentence_part(s) == part)
                 and all(_clean_token(t.strip("'"), parts, sounds) for t in tokens(s)))


def pick(items, count: int, rng: np.random.Generator) -> list:
    """``count`` items drawn without replacement while they last, then with."""
    items = list(items)
    if not items:
        raise ValueError("pick: nothing to choose from")
    order = list(rng.permutation(len(items)))
    while len(order) < count:
        order += list(rng.permutation(len(items)))
    return [items[i] for i in order[:count]]
