"""``edgepilot train kws --words ... --out DIR``: argument parsing only; the work is
:func:`train.kws.recipe.train_kws`. Nothing heavy is imported until the command runs."""
from __future__ import annotations

import json
import sys

EXAMPLE = "edgepilot train kws --words zero one two three four five six seven eight nine --out runs/digits"


def add_kws_parser(train_subparsers) -> None:
    p = train_subparsers.add_parser(
        "kws", help="keyword spotter for spoken commands, trained on synthetic voices (offline)",
        description="Trains a small streaming keyword spotter on the words given, spoken by the speech "
                    "synthesizers of Debian main (espeak-ng, flite, festival) and augmented with noise, music, "
                    "reverberation and band-limiting; whole voices are held out for validation.",
        epilog=f"example: {EXAMPLE}\nthen: edgepilot kws-calibrate DIR; edgepilot listen DIR --mic")
    p.add_argument("--words", nargs="+", required=True, metavar="WORD",
                   help="command words; events are named by them exactly (quote phrases: 'hey robot')")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--epochs", type=int, default=20, help="epochs (default 20)")
    p.add_argument("--batch-size", type=int, default=128, help="clips per step (default 128)")
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (default 3e-3)")
    p.add_argument("--channels", type=int, default=96, help="network width (default 96: about 70k parameters)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and the training (default 0)")
    p.add_argument("--limit", type=int, default=None, help="at most N clips per class and split (quick runs)")
    p.add_argument("--augment-copies", type=int, default=None, help="augmented copies of each utterance (default 3)")
    p.add_argument("--negative-minutes", type=float, default=30.0,
                   help="minutes of synthetic running speech without the words, as hard negatives (default 30)")
    p.add_argument("--qat", action="store_true",
                   help="then quantization-aware fine-tuning (tfmot) into kws_stream_qat_int8.tflite, measured "
                        "on the held-out voices next to the post-training int8 model")
    p.add_argument("--qat-epochs", type=int, default=None, help="epochs of quantization-aware fine-tuning (default 3)")
    p.add_argument("--cache", default=None, metavar="DIR", help="speech cache (default ~/.cache/edgepilot/kws)")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's own start-up logs")
    p.set_defaults(func=run_train_kws)


def run_train_kws(args) -> int:
    import os

    from convert.quiet import VERBOSE_ENV, import_tensorflow
    from train.allocator import tune_allocator
    from train.kws.options import KwsOptions

    if args.qat_epochs is not None and not args.qat:
        raise ValueError("--qat-epochs: only with --qat")
    options = KwsOptions(words=tuple(args.words), out=args.out, seed=args.seed, epochs=args.epochs,
                         batch_size=args.batch_size, lr=args.lr, channels=args.channels, force=args.force,
                         cache_dir=args.cache, limit=args.limit, augment_copies=args.augment_copies,
                         negative_minutes=args.negative_minutes, qat=args.qat,
                         qat_epochs=3 if args.qat_epochs is None else args.qat_epochs)
    if args.verbose:
        os.environ[VERBOSE_ENV] = "1"
    tune_allocator()  # before TensorFlow starts its threads
    import_tensorflow()
    from train.kws.recipe import train_kws

    result = train_kws(options, progress=lambda m: print(f"[edgepilot] {m}", file=sys.stderr, flush=True))
    print(json.dumps(result.metrics) if args.json else result.summary())
    return 0
