"""``edgepilot train policy --env ENV --out DIR``: argument parsing only; the work is
:func:`train.policy.train_policy`. ``add_policy_parser(train_subparsers)`` is called by the
``edgepilot train`` command's parser; nothing heavy is imported until the command runs."""
from __future__ import annotations

import json
import sys

EXAMPLE = "edgepilot train policy --env InvertedPendulum-v5 --out runs/pendulum"
ENVS = ("InvertedPendulum-v5", "InvertedDoublePendulum-v5", "Pendulum-v1", "Reacher-v5")


def add_policy_parser(train_subparsers) -> None:
    p = train_subparsers.add_parser(
        "policy", help="a control policy by behaviour cloning + DAgger from an expert controller",
        epilog=f"environments with an expert: {', '.join(ENVS)}\n"
               f"then: edgepilot convert DIR/saved_model --out DIR/out --calib DIR/calib.npz ...; see README\n"
               f"example: {EXAMPLE}")
    p.add_argument("--env", required=True, choices=ENVS, help="the gymnasium environment")
    p.add_argument("--out", required=True, help="training folder: saved_model/, model.keras, calib.npz, training.json")
    p.add_argument("--rate", type=float, default=None, help="control rate to train at in Hz (default: the env's own)")
    p.add_argument("--rounds", type=int, default=None, help="DAgger rounds after the expert round")
    p.add_argument("--epochs", type=int, default=None, help="epochs per round")
    p.add_argument("--expert-episodes", type=int, default=None, help="expert episodes in round 0")
    p.add_argument("--dagger-episodes", type=int, default=None, help="student episodes per DAgger round")
    p.add_argument("--eval-episodes", type=int, default=10, help="seeds the expert and the student are compared on (10)")
    p.add_argument("--qat", action="store_true",
                   help="also quantization-aware fine-tuning (tfmot) into model_qat_int8.tflite, with its return")
    p.add_argument("--qat-epochs", type=int, default=None, help="epochs of quantization-aware fine-tuning (10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="replace an existing training folder")
    p.add_argument("--json", action="store_true", help="print training.json's content on stdout")
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's own start-up logs")
    p.set_defaults(func=run_train_policy)


def run_train_policy(args) -> int:
    import os

    from convert.quiet import VERBOSE_ENV, import_tensorflow

    overrides = {k: v for k, v in (("dagger_rounds", args.rounds), ("epochs", args.epochs),
                                   ("expert_episodes", args.expert_episodes),
                                   ("dagger_episodes", args.dagger_episodes)) if v is not None}
    from train.policy.workflow import QAT_EPOCHS

    if args.qat_epochs is not None and not args.qat:
        raise ValueError("--qat-epochs: only with --qat")
    if args.qat_epochs is not None and args.qat_epochs < 1:
        raise ValueError(f"--qat-epochs must be >= 1, got {args.qat_epochs}")
    if args.verbose:
        os.environ[VERBOSE_ENV] = "1"
    import_tensorflow()  # now, quietly: TensorFlow's C++ start-up lines stay off the terminal
    from train.policy import train_policy

    report = train_policy(args.env, args.out, rate_hz=args.rate, eval_episodes=args.eval_episodes, seed=args.seed,
                          force=args.force, qat=args.qat,
                          qat_epochs=QAT_EPOCHS if args.qat_epochs is None else args.qat_epochs,
                          progress=lambda m: print(f"[edgepilot] {m}", file=sys.stderr, flush=True), **overrides)
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{args.env}: expert return {report['expert']['return_mean']:.2f}, student {report['student']['return_mean']:.2f} "
              f"({report['samples']} samples, {report['train_s']} s) -> {args.out}")
        if report["qat"]:
            print(f"{args.env}: int8 after QAT {report['qat']['return_mean']:.2f} -> {args.out}/model_qat_int8.tflite")
    return 0
