"""``edgepilot listen MODEL (--wav FILE... | --mic [DEVICE])``: argparse only here; the spotter
and its libraries are imported when the command runs. Registered by :mod:`edgepilot.cli`."""
from __future__ import annotations

import argparse

EPILOG = """examples:
  edgepilot listen kws/ --mic                                   # a folder from `edgepilot train kws`
  edgepilot listen kws/kws_window_fp32.onnx --wav a.wav b.wav --json
  edgepilot listen hey_jarvis.tflite --mic --mqtt mqtt://broker:1883/home/kitchen --vad
  edgepilot listen kws/ --wav meeting.wav --threshold "hey edge=0.8" --refractory 2

MODEL: a training folder (its kws_stream_int8.tflite), one of its .tflite/.onnx files, or a
microWakeWord model (NAME.tflite with its manifest NAME.json beside it).
WAV files of any rate, channel count and PCM/float format are mixed to mono and resampled to
16 kHz. A keyword fires when its smoothed probability exceeds its threshold (default: the
calibrated one in the model's metadata, or the microWakeWord manifest's cut-off), then stays
quiet for the refractory period and until its score falls below half the threshold.
--json prints {"keyword", "score", "t"} per detection (t: seconds from the start of the stream
to the end of the audio that fired; "file" too for several files), then {"summary": {...}}.
Ctrl-C ends a microphone run; the summary still comes."""


def add_parser(sub) -> None:
    p = sub.add_parser("listen", help="keyword spotting on WAV files or a microphone",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL", help="training folder, .tflite/.onnx keyword model, or microWakeWord .tflite")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--wav", nargs="+", metavar="FILE", help="one or more WAV files (each a separate stream)")
    src.add_argument("--mic", nargs="?", const="default", metavar="DEVICE",
                     help="listen to a microphone: the default input, or a PortAudio device index or name")
    p.add_argument("--threshold", action="append", metavar="P | KEYWORD=P",
                   help="detection threshold for every keyword, or for one (repeatable); default: the model's")
    p.add_argument("--refractory", type=float, default=None, metavar="SECONDS",
                   help="quiet period of a keyword after it fired (default: the model's, else 1.0)")
    p.add_argument("--smoothing", type=int, default=None, metavar="STEPS",
                   help="average the probability over this many steps (default: the model's)")
    p.add_argument("--vad", nargs="?", const="", metavar="SILERO.onnx",
                   help="skip the keyword model on non-speech (Silero VAD; default: the cached asset)")
    p.add_argument("--vad-threshold", type=float, default=0.5, help="speech probability of the voice gate (0.5)")
    p.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                   help="--mic: stop after this much audio (default: until Ctrl-C)")
    p.add_argument("--block-ms", type=float, default=100.0, help="audio block size in milliseconds (100)")
    p.add_argument("--json", action="store_true", help="one JSON object per detection on stdout, then a summary")
    p.add_argument("--mqtt", metavar="mqtt://HOST:PORT/TOPIC", help="publish detections (TOPIC/keyword) and the summary")
    p.add_argument("--threads", type=int, default=1, help="inference threads (default 1)")
    p.add_argument("--device", default="cpu", help="cpu (default), auto, gpu, ... as edgepilot inspect takes it")
    p.set_defaults(func=run_listen)


def parse_thresholds(values: list[str] | None):
    """None, one probability, or ``{keyword: probability}`` (keywords may hold spaces)."""
    if not values:
        return None
    overall, per = None, {}
    for value in values:
        keyword, sep, number = value.rpartition("=")
        try:
            probability = float(number)
        except ValueError:
            raise ValueError(f"--threshold {value!r}: expected a probability or KEYWORD=PROBABILITY") from None
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"--threshold {value!r}: the probability must lie in 0..1")
        if sep:
            per[keyword] = probability
        else:
            overall = probability
    if overall is not None and per:
        raise ValueError("--threshold: give one probability for all keywords or KEYWORD=P values, not both")
    return per or overall


def run_listen(args) -> int:
    from apps.speech.runner import ListenOptions, listen
    from apps.speech.sources import Microphone, WavFiles

    if args.block_ms <= 0:
        raise ValueError(f"--block-ms must be > 0, got {args.block_ms}")
    if args.duration is not None and args.duration <= 0:
        raise ValueError(f"--duration must be > 0 seconds, got {args.duration}")
    if args.duration is not None and args.wav:
        raise ValueError("--duration is for --mic (a WAV file ends by itself)")
    options = ListenOptions(
        thresholds=parse_thresholds(args.threshold), refractory_s=args.refractory, smoothing_steps=args.smoothing,
        vad=args.vad, vad_threshold=args.vad_threshold, json=args.json, mqtt=args.mqtt, threads=args.threads,
        device=args.device)
    if options.mqtt:
        from apps.common.mqtt import MqttUrl

        MqttUrl.parse(options.mqtt)  # a bad URL is refused before any audio is read
    from apps.speech.models import open_model

    model = open_model(args.model, threads=args.threads, device=args.device)  # refused before the mic opens
    if args.wav:
        source = WavFiles(args.wav, block_samples=max(1, round(args.block_ms * 16)))
    else:
        source = Microphone(args.mic, block_s=args.block_ms / 1000, duration_s=args.duration)
    listen(model, source, options)
    return 0
