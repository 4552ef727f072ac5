"""``edgepilot kws-calibrate MODEL``: argparse only here; the work is
:func:`apps.speech.calibration_run.run_calibration`. Registered by :mod:`edgepilot.cli`."""
from __future__ import annotations

import argparse
import sys

EPILOG = """examples:
  edgepilot kws-calibrate runs/digits                          # held-out voices + 30 min of negatives
  edgepilot kws-calibrate runs/digits --target-fa-per-hour 0.3 --png digits.png
  edgepilot kws-calibrate okay_nabu.tflite --positives said/ --negatives talk/ --json

Streams positives and negatives through the same spotter as `listen` (frontend, model, blocks),
records every keyword's probability at every step, then replays them for smoothing windows x
thresholds with the spotter's own rules (threshold, re-arm at half of it, refractory period).
Per keyword the operating point is the lowest false-reject rate whose false accepts per hour on
the negatives stay <= the target (default 0.5 per keyword: 10 keywords -> 5 per hour); the
smoothing window is the one with the lowest mean false-reject rate. It is written into the
model's metadata (every model file and sidecar of a training folder; a microWakeWord model's
manifest: probability_cutoff, sliding_window_size), which `listen` then uses.

--positives DIR: DIR/<keyword>/*.wav, each file one or more utterances of that keyword with at
least 0.5 s of quiet between them. --negatives DIR: DIR/*.wav with none of the keywords said.
Without them (needs the [train] extra): the model's held-out voices (training.json beside it)
say the keywords inside sentences and alone; the negatives are synthetic sentences without the
keywords over noise, babble and music. With N hours of negatives one false accept is 1/N FA/h."""


def add_parser(sub) -> None:
    p = sub.add_parser("kws-calibrate", help="choose a keyword model's thresholds and smoothing for a false-accept target",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL", help="training folder, one of its model files, or a microWakeWord .tflite")
    p.add_argument("--positives", metavar="DIR", help="DIR/<keyword>/*.wav (default: synthetic, held-out voices)")
    p.add_argument("--negatives", metavar="DIR", help="DIR/*.wav without keywords (default: synthetic speech + noise)")
    p.add_argument("--target-fa-per-hour", type=float, default=0.5, metavar="F",
                   help="false accepts per hour allowed per keyword (default 0.5)")
    p.add_argument("--max-frr", type=float, default=0.5, metavar="F",
                   help="never calibrate a keyword into rejecting more than this fraction of its utterances: where "
                        "the false-accept target would need it, the target is missed and said so (default 0.5; "
                        "1 lets such a keyword be switched off)")
    p.add_argument("--smoothing", type=int, nargs="+", default=[1, 2, 3, 4, 6, 8], metavar="STEPS",
                   help="smoothing windows to try, in steps (default 1 2 3 4 6 8)")
    p.add_argument("--positive-minutes", type=float, default=10.0,
                   help="synthetic positives: minutes of sentences with keywords (default 10), plus isolated words")
    p.add_argument("--negative-minutes", type=float, default=60.0,
                   help="synthetic negatives: minutes of keyword-free speech (default 60: with less, a target of 0.5 per hour allows no false accept at all and the threshold fits the noise of one sample)")
    p.add_argument("--seed", type=int, default=1, help="seed of the synthetic audio (default 1; training uses 0)")
    p.add_argument("--cache", default=None, metavar="DIR", help="speech cache (default ~/.cache/edgepilot/kws)")
    p.add_argument("--png", metavar="PATH", help="draw FA/h against FRR per keyword, operating points marked")
    p.add_argument("--dry-run", action="store_true", help="measure and print; write nothing into the model")
    p.add_argument("--force", action="store_true", help="replace an earlier calibration (and an existing --png)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--threads", type=int, default=1, help="inference threads (default 1)")
    p.set_defaults(func=run_kws_calibrate)


def run_kws_calibrate(args) -> int:
    from apps.speech.calibration_run import (
        CalibrateOptions,
        render,
        run_calibration,
        to_json,
    )

    options = CalibrateOptions(
        positives=args.positives, negatives=args.negatives, target_fa_per_hour=args.target_fa_per_hour,
        max_frr=args.max_frr,
        smoothing=tuple(args.smoothing), positive_minutes=args.positive_minutes,
        negative_minutes=args.negative_minutes, seed=args.seed, cache_dir=args.cache, png=args.png,
        write=not args.dry_run, force=args.force, threads=args.threads)
    result = run_calibration(args.model, options,
                             progress=lambda m: print(f"[edgepilot] {m}", file=sys.stderr, flush=True))
    print(to_json(result) if args.json else render(result))
    return 0
