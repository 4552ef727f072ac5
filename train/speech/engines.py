"""The text-to-speech engines from Debian main this data is spoken by, and what they can do here.

- espeak-ng: the English accents it ships (``gmw/`` voices; the mbrola ``mb/`` ones are not in
  Debian main and are left out) x a set of its voice variants (``-v en-us+f3``); speed ``-s`` in
  words per minute, pitch ``-p`` 0-99; 22050 Hz.
- flite: kal16, awb, rms, slt; speed through ``duration_stretch``; 16 kHz.
- festival: kal_diphone, ked_diphone (16 kHz) and cmu_us_slt_arctic_hts (32 kHz), all requests of
  one call in one ``festival --batch`` process (~70x faster than a process per word); speed through
  ``Duration_Stretch`` (diphone) or the HTS engine's ``-r`` (made linear in the word's duration).

A request's ``pitch`` is in semitones from the voice's own. espeak-ng shifts it natively (about 4.5
``-p`` steps a semitone, measured); flite and festival have no pitch control common to their voices,
so they render at speed ``speed / r`` and the audio is resampled by ``r = 2 ** (pitch / 12)``: the
pitch and the formants move by ``r`` (a shorter or longer vocal tract) and the duration ends at
``1 / speed``. Audio comes back as (sample rate, float32 mono) for :mod:`train.speech.synth`."""
from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ENGINES = ("espeak-ng", "flite", "festival")
PACKAGES = {"espeak-ng": "espeak-ng", "flite": "flite", "festival": "festival"}
FLITE_VOICES = ("kal16", "awb", "rms", "slt")
FESTIVAL_VOICES = {  # voice -> the Debian package that ships it
    "kal_diphone": "festvox-kallpc16k",
    "ked_diphone": "festvox-kdlpc16k",
    "cmu_us_slt_arctic_hts": "festvox-us-slt-hts",
}
# espeak-ng variants that sound like people (not whisper, croak, robots or "Demonic"): male, female.
ESPEAK_VARIANTS = ("", "m1", "m2", "m3", "m4", "m6", "m7", "Andy", "f1", "f2", "f3", "f4", "f5", "Annie", "steph")
ESPEAK_WPM = 175  # espeak-ng's default speed
ESPEAK_PITCH_STEPS_PER_SEMITONE = 4.5  # -p 35 -> 66 Hz, 50 -> 80 Hz, 99 -> 149 Hz (en-us, measured)
# festival's HTS engine rate "-r" stretches pauses more than speech: a word lasts about rate^-0.6
# (measured: "seven" 0.72 s at -r 0.7, 0.60 s at 1.0, 0.46 s at 1.5), so -r = speed^(1/0.6).
HTS_RATE_EXPONENT = 1.0 / 0.6
# The same person behind voices of different engines: held out together (see train.speech.split).
SPEAKERS = {"flite:kal16": "kal", "festival:kal_diphone": "kal", "flite:slt": "slt",
            "festival:cmu_us_slt_arctic_hts": "slt", "flite:awb": "awb", "flite:rms": "rms",
            "festival:ked_diphone": "ked"}


class EngineMissing(RuntimeError):
    """A text-to-speech engine (or every voice of it) is not installed."""


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker: engine + voice + variant (speed and pitch are augmentation)."""

    engine: str
    name: str
    variant: str = ""

    def __post_init__(self):
        if self.engine not in ENGINES:
            raise ValueError(f"Voice engine {self.engine!r}: expected one of {', '.join(ENGINES)}")

    @property
    def id(self) -> str:
        """``"espeak-ng:en-us+f3"``, ``"flite:slt"``."""
        return f"{self.engine}:{self.name}" + (f"+{self.variant}" if self.variant else "")

    @classmethod
    def parse(cls, voice_id: str) -> "Voice":
        engine, _, rest = voice_id.partition(":")
        name, _, variant = rest.partition("+")
        return cls(engine, name, variant)

    @property
    def speaker(self) -> str:
        """The person behind the voice: an espeak-ng voice is its own, flite and festival share some."""
        return SPEAKERS.get(self.id, self.id)


@dataclass(frozen=True)
class Request:
    """One utterance to render: ``speed`` is a rate factor (1.0 = the voice's own, 1.2 = faster),
    ``pitch`` semitones from the voice's own."""

    voice: Voice
    text: str
    speed: float = 1.0
    pitch: float = 0.0

    @property
    def key_parts(self) -> tuple:
        return (self.voice.engine, self.voice.name, self.voice.variant, repr(float(self.speed)),
                repr(float(self.pitch)), self.text, engine_version(self.voice.engine))


def _require(engine: str) -> str:
    path = shutil.which(engine)
    if path is None:
        raise EngineMissing(f"{engine} is not installed (no '{engine}' on PATH): "
                            f"apt-get install {PACKAGES[engine]}")
    return path


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, **kwargs)
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        errors = [ln for ln in lines if "error" in ln.lower()] or lines[-1:] or ["(no message)"]
        raise RuntimeError(f"{cmd[0]} exited with {done.returncode}: {errors[0]}")
    return done


@functools.lru_cache(maxsize=None)
def engine_version(engine: str) -> str:
    """The engine's version line (part of every cache key: an upgraded engine re-renders)."""
    _require(engine)
    args = {"espeak-ng": ["espeak-ng", "--version"], "flite": ["flite", "--version"],
            "festival": ["festival", "--version"]}[engine]
    done = subprocess.run(args, capture_output=True)  # flite --version exits 1
    lines = [line.strip() for line in done.stdout.decode("utf-8", "replace").splitlines()]
    found = [line for line in lines if "version" in line.lower() or engine in line.lower()]
    if not found:
        raise RuntimeError(f"{' '.join(args)} printed no version: {done.stdout[:80]!r}")
    return found[-1]


@functools.lru_cache(maxsize=None)
def _espeak_accents() -> dict[str, str]:
    """Accent (language code) -> voice file. The file, not the code, goes to ``-v``: espeak-ng 1.51
    ignores the variant of ``-v en-gb+f3`` and speaks en-us-nyc as en-us."""
    _require("espeak-ng")
    accents = {}
    for line in _run(["espeak-ng", "--voices=en"]).stdout.decode().splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 5 and cols[4].startswith("gmw/"):
            accents.setdefault(cols[1], cols[4])
    return accents


@functools.lru_cache(maxsize=None)
def _espeak_voices() -> tuple[Voice, ...]:
    accents = _espeak_accents()
    files = {line.split()[4].split("/", 1)[1] for line in
             _run(["espeak-ng", "--voices=variant"]).stdout.decode().splitlines()[1:] if len(line.split()) >= 5}
    variants = [v for v in ESPEAK_VARIANTS if v == "" or v in files]
    return tuple(Voice("espeak-ng", accent, variant) for accent in accents for variant in variants)


@functools.lru_cache(maxsize=None)
def _flite_voices() -> tuple[Voice, ...]:
    _require("flite")
    listed = _run(["flite", "-lv"]).stdout.decode().split(":", 1)[-1].split()
    return tuple(Voice("flite", name) for name in FLITE_VOICES if name in listed)


@functools.lru_cache(maxsize=None)
def _festival_voices() -> tuple[Voice, ...]:
    _require("festival")
    with tempfile.TemporaryDirectory(prefix="edgepilot-festival-") as tmp:
        script = Path(tmp) / "list.scm"
        script.write_text("(print (voice.list))\n")
        listed = _run(["festival", "--batch", str(script)]).stdout.decode().strip("()\n ").split()
    found = tuple(Voice("festival", name) for name in FESTIVAL_VOICES if name in listed)
    if not found:
        raise EngineMissing(f"festival has none of the voices {', '.join(FESTIVAL_VOICES)}: "
                            f"apt-get install {' '.join(FESTIVAL_VOICES.values())}")
    return found


def voices(engines=ENGINES) -> tuple[Voice, ...]:
    """The voices this machine has for ``engines``; a missing engine raises :class:`EngineMissing`
    (one line naming the Debian package)."""
    listers = {"espeak-ng": _espeak_voices, "flite": _flite_voices, "festival": _festival_voices}
    unknown = [e for e in engines if e not in listers]
    if unknown:
        raise ValueError(f"engines {unknown}: expected some of {', '.join(ENGINES)}")
    for engine in engines:  # checked on every call: the listings below are remembered
        _require(engine)
    return tuple(v for engine in engines for v in listers[engine]())


def read_wav(data: bytes, source: str) -> tuple[int, np.ndarray]:
    """(sample rate, float32 mono) from WAV bytes, decoded by the one WAV reader the app uses
    (it tolerates the unknown data length espeak-ng writes when streaming to stdout)."""
    from apps.speech.audio import decode_wav, mono, to_float

    wav = decode_wav(data, source)
    return wav.rate_hz, mono(to_float(wav.samples)).astype(np.float32)


def _speak_text(text: str) -> str:
    text = " ".join(text.split())
    if not text or not any(c.isalnum() for c in text):
        raise ValueError(f"text {text!r}: expected something to speak")
    return text


def _ratio(request: Request) -> float:
    return 1.0 if request.voice.engine == "espeak-ng" else float(2.0 ** (request.pitch / 12.0))


def _espeak(request: Request) -> tuple[int, np.ndarray]:
    voice = request.voice
    pitch = int(round(np.clip(50 + ESPEAK_PITCH_STEPS_PER_SEMITONE * request.pitch, 0, 99)))
    accents = _espeak_accents()
    if voice.name not in accents:
        raise ValueError(f"voice {voice.id}: espeak-ng has no English accent {voice.name!r} here "
                         f"(expected one of {', '.join(accents)})")
    cmd = ["espeak-ng", "-v", accents[voice.name] + (f"+{voice.variant}" if voice.variant else ""),
           "-s", str(int(round(ESPEAK_WPM * request.speed))), "-p", str(pitch), "--stdout", "--stdin"]
    return read_wav(_run(cmd, input=_speak_text(request.text).encode("utf-8")).stdout, voice.id)


def _flite(request: Request, folder: Path, index: int) -> tuple[int, np.ndarray]:
    out, text = folder / f"flite{index}.wav", folder / f"flite{index}.txt"
    text.write_text(_speak_text(request.text) + "\n")
    stretch = _ratio(request) / request.speed
    _run(["flite", "-voice", request.voice.name, "--setf", f"duration_stretch={stretch:.6f}",
          "-f", str(text), "-o", str(out)])
    return read_wav(out.read_bytes(), request.voice.id)


def _scheme_string(text: str) -> str:
    return '"' + _speak_text(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _festival(requests: list[Request], folder: Path) -> list[tuple[int, np.ndarray]]:
    """All ``requests`` in one festival process, grouped by voice."""
    order = sorted(range(len(requests)), key=lambda i: requests[i].voice.name)
    lines, current = [], None
    for i in order:
        request = requests[i]
        if request.voice.name != current:
            current = request.voice.name
            lines += [f"(voice_{current})", "(set! edgepilot_stretch (Parameter.get 'Duration_Stretch))"]
            if current.endswith("_hts"):
                lines.append("(set! edgepilot_hts hts_engine_params)")
        rate = request.speed / _ratio(request)
        if current.endswith("_hts"):
            hts_rate = rate ** HTS_RATE_EXPONENT
            lines.append(f'(set! hts_engine_params (append edgepilot_hts (list (list "-r" {hts_rate:.6f}))))')
        else:
            lines.append(f"(Parameter.set 'Duration_Stretch (* edgepilot_stretch {1.0 / rate:.6f}))")
        lines.append(f"(utt.save.wave (SynthText {_scheme_string(request.text)}) \"{folder}/fest{i}.wav\" 'riff)")
    script = folder / "batch.scm"
    script.write_text("\n".join(lines) + "\n")
    _run(["festival", "--batch", str(script)])
    results = []
    for i, request in enumerate(requests):
        path = folder / f"fest{i}.wav"
        if not path.exists():
            raise RuntimeError(f"festival wrote no audio for {request.text!r} in voice {request.voice.id}")
        results.append(read_wav(path.read_bytes(), request.voice.id))
    return results


def render(requests: list[Request], *, jobs: int = 2, progress=None) -> list[tuple[int, np.ndarray]]:
    """Speak each request: (sample rate, float32 mono) in request order. espeak-ng and flite run
    ``jobs`` processes at a time, festival takes all its requests in one process alongside.
    ``progress(done, total)`` is called as they finish. The audio of a flite/festival request with a
    pitch shift is still at the engine's speed: :func:`pitch_rate` says the rate to resample from."""
    for engine in {r.voice.engine for r in requests}:
        _require(engine)
    results: list = [None] * len(requests)
    done = [0]

    def finished(n: int) -> None:
        done[0] += n
        if progress is not None:
            progress(done[0], len(requests))

    with (tempfile.TemporaryDirectory(prefix="edgepilot-tts-") as tmp, ThreadPoolExecutor(max(1, jobs)) as pool,
          ThreadPoolExecutor(1) as own):
        folder = Path(tmp)
        festival = [i for i, r in enumerate(requests) if r.voice.engine == "festival"]
        batch = own.submit(_festival, [requests[i] for i in festival], folder) if festival else None
        singles = {pool.submit(_espeak, r) if r.voice.engine == "espeak-ng" else pool.submit(_flite, r, folder, i): i
                   for i, r in enumerate(requests) if r.voice.engine != "festival"}
        for future, i in singles.items():
            results[i] = future.result()
            finished(1)
        if batch is not None:
            for i, audio in zip(festival, batch.result()):
                results[i] = audio
            finished(len(festival))
    return results


def pitch_rate(request: Request, rate_hz: int) -> float:
    """The sample rate to read a rendered request's audio at so that resampling it to the target
    rate applies the request's pitch shift (flite, festival); espeak-ng's is already applied."""
    return rate_hz * _ratio(request)
