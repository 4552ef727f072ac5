"""Offline synthetic speech for keyword spotting: keywords, other words and running text spoken by
the text-to-speech engines in Debian main (espeak-ng, flite, festival), augmented into many
speakers and rooms, cut into labelled clips with leave-voices-out validation, plus long streams
for false-accept and latency measurements. Deterministic for a seed, cached on disk.

- :func:`voices`, :func:`split_voices`, :func:`synthesize` (:mod:`.engines`, :mod:`.split`, :mod:`.synth`)
- :func:`build_clips` -> :class:`KwsClips` (:mod:`.clips`)
- :func:`augment`, :func:`make_backgrounds` (:mod:`.augment`, :mod:`.backgrounds`)
- :func:`running_speech`, :func:`negative_stream` (:mod:`.streams`)
"""
from train.speech.augment import augment, background_clip, perturb
from train.speech.backgrounds import Backgrounds, make_backgrounds
from train.speech.clips import KwsClips, build_clips
from train.speech.engines import EngineMissing, Request, Voice, voices
from train.speech.split import split_voices
from train.speech.streams import SpokenWord, negative_stream, running_speech
from train.speech.synth import SAMPLE_RATE_HZ, Utterance, synthesize, synthesize_requests

__all__ = [
    "Backgrounds", "EngineMissing", "KwsClips", "Request", "SAMPLE_RATE_HZ", "SpokenWord", "Utterance", "Voice",
    "augment", "background_clip", "build_clips", "make_backgrounds", "negative_stream", "perturb",
    "running_speech", "split_voices", "synthesize", "synthesize_requests", "voices",
]
