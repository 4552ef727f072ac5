"""``edgepilot train classifier|detector|policy|kws``, ``edgepilot data make-scenes`` and
``edgepilot eval``: argument parsing and output only. Registered by :mod:`edgepilot.cli`;
TensorFlow is imported only when a command runs."""
from __future__ import annotations

import argparse
import json
import sys

TRAIN_EPILOG = """examples:
  edgepilot data make-scenes --out scenes
  edgepilot train detector --data scenes/data.yaml --out runs/det --epochs 40
  edgepilot train classifier --data fashion-mnist --out runs/fmnist --epochs 30 --qat
  edgepilot convert runs/det --out runs/det/converted     (finds the model, metadata and calibration data)
  edgepilot eval runs/det/converted/det_tflite_int8.tflite --data scenes/data.yaml   (files are named FOLDER_TARGET)
cluster: set TF_CONFIG on every machine and run the same command (see docs/training.md)"""


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().replace("x", " ").replace(",", " ").split()
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH or one size in pixels, got {text!r}") from None
    if len(values) == 1:
        return values[0], values[0]
    if len(values) == 2:
        return values[0], values[1]
    raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH or one size in pixels, got {text!r}")


def _train_arguments(p, epochs: int, batch: int, lr: float) -> None:
    p.add_argument("--data", required=True, help="training data (see the command's description)")
    p.add_argument("--out", required=True, help="output folder (model.keras, saved_model/, training.json ...)")
    p.add_argument("--epochs", type=int, default=epochs, help=f"epochs (default {epochs})")
    p.add_argument("--batch-size", type=int, default=batch, help=f"images per step and device (default {batch})")
    p.add_argument("--input-size", type=_size, default=None, metavar="HxW", help="model input in pixels, e.g. 192x256")
    p.add_argument("--lr", type=float, default=lr, help=f"peak learning rate (default {lr})")
    p.add_argument("--schedule", choices=("cosine", "constant", "step"), default="cosine",
                   help="learning-rate schedule (default cosine with a 1-epoch warm-up)")
    p.add_argument("--no-augment", dest="augment", action="store_false", help="train without augmentation")
    p.add_argument("--no-flip", dest="flip", action="store_false", help="no horizontal flips (text, digits, arrows)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint (an interrupted run, or a finished one "
                        "to a larger --epochs)")
    p.add_argument("--force", action="store_true", help="start over in a non-empty --out")
    p.add_argument("--patience", type=int, default=8, help="epochs without a better validation metric before "
                   "stopping early; the best weights are kept (0: never stop early; default 8)")
    p.add_argument("--tensorboard", default=None, metavar="DIR", help="write TensorBoard logs to DIR")
    p.add_argument("--qat", action="store_true", help="then quantization-aware fine-tuning and an int8 model "
                   "with the learned ranges (model_qat_int8.tflite)")
    p.add_argument("--qat-epochs", type=int, default=3, help="QAT epochs (default 3)")
    p.add_argument("--width", type=float, default=1.0, help="channel width multiplier (default 1.0)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N training samples")
    p.add_argument("--distribute", choices=("auto", "none", "mirrored", "multiworker"), default="auto",
                   help="auto: every local GPU (MirroredStrategy), or the cluster TF_CONFIG describes "
                        "(MultiWorkerMirroredStrategy)")
    p.add_argument("--quiet", action="store_true", help="one line per epoch instead of progress bars")
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's own start-up logs")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout (out, metrics, "
                   "qat); progress and Keras' output always go to stderr")


def add_parsers(sub) -> None:
    train = sub.add_parser("train", help="train a classifier, detector or policy designed for int8",
                           epilog=TRAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    recipes = train.add_subparsers(dest="recipe", metavar="RECIPE")
    p = recipes.add_parser("classifier", help="MobileNet-style image classifier",
                           description="DATA: a folder with one sub-folder of images per class, an .npz with x "
                                       "and y, or fashion-mnist.",
                           epilog="example: edgepilot train classifier --data fashion-mnist --out runs/fmnist")
    _train_arguments(p, epochs=30, batch=128, lr=3e-3)
    p.set_defaults(func=run_train, recipe="classifier")
    p = recipes.add_parser("detector", help="single-shot int8-friendly object detector",
                           description="DATA: a YOLO data.yaml (or its folder) or a COCO folder "
                                       "(annotations/instances_<split>.json and <split>/ images, or "
                                       "Roboflow's <split>/_annotations.coco.json beside them).",
                           epilog="example: edgepilot train detector --data scenes/data.yaml --out runs/det")
    _train_arguments(p, epochs=40, batch=32, lr=3e-3)
    p.add_argument("--average-weights", action="store_true",
                   help="keep a moving average of the weights over the last ~200 steps (as Ultralytics' EMA); "
                        "off by default: on the built-in scenes it scored lower (docs/training.md)")
    from train.architectures import HEADS

    p.add_argument("--head", choices=HEADS, default="shared",
                   help="shared: one block feeds the box and class outputs of each level; decoupled: one "
                        "block each (more accurate per parameter in YOLOX's study, slower; default shared)")
    p.set_defaults(func=run_train, recipe="detector", average_weights=False)
    try:
        from train.policy.cli import add_policy_parser
    except ImportError:  # the policy recipe's extra is not installed: its command is absent
        pass
    else:
        add_policy_parser(recipes)
    from train.kws.cli import add_kws_parser

    add_kws_parser(recipes)
    train.set_defaults(func=lambda args: _missing(train, "a recipe: classifier, detector, policy or kws"))

    data = sub.add_parser("data", help="built-in data sets")
    data_sub = data.add_subparsers(dest="data_command", metavar="COMMAND")
    from train.scenes import add_parser as add_scenes_parser

    add_scenes_parser(data_sub)
    data.set_defaults(func=lambda args: _missing(data, "a command: make-scenes"))

    p = sub.add_parser("eval", help="top-1 or COCO mAP of any model on a data set",
                       epilog="example: edgepilot eval runs/det/model.keras --data scenes/data.yaml --json")
    p.add_argument("model", help=".tflite, .onnx, .keras file or SavedModel folder")
    p.add_argument("--data", required=True, help="image folder, .npz, YOLO data.yaml, COCO folder or fashion-mnist")
    p.add_argument("--split", default=None, help="split of the data set (default: test when it has one, else val)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N images")
    p.add_argument("--device", default="cpu", help="device for .tflite/.onnx files (default cpu)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default 1)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_eval)


def _missing(parser, what: str) -> int:
    parser.print_help(sys.stderr)
    print(f"\nedgepilot: choose {what}", file=sys.stderr)
    return 2


def _progress(message: str) -> None:
    print(f"[edgepilot] {message}", file=sys.stderr, flush=True)


def run_train(args) -> int:
    import os

    from convert.quiet import VERBOSE_ENV, import_tensorflow
    from train.allocator import tune_allocator
    from train.options import TrainOptions

    if args.verbose:
        os.environ[VERBOSE_ENV] = "1"
    tune_allocator()  # before TensorFlow starts its threads
    import_tensorflow()  # now, quietly, rather than with its start-up lines inside the recipe

    options = TrainOptions(
        data=args.data, out=args.out, epochs=args.epochs, batch_size=args.batch_size, input_size=args.input_size,
        lr=args.lr, schedule=args.schedule, augment=args.augment, flip=args.flip, seed=args.seed,
        average_weights=getattr(args, "average_weights", False), head=getattr(args, "head", "shared"),
        resume=args.resume, force=args.force, patience=args.patience, tensorboard=args.tensorboard, qat=args.qat,
        qat_epochs=args.qat_epochs, width=args.width, limit=args.limit, distribute=args.distribute,
        verbose=2 if args.quiet or not sys.stderr.isatty() else 1)
    if args.recipe == "classifier":
        from train.classifier import train_classifier as recipe
    else:
        from train.detector import train_detector as recipe
    import contextlib

    with contextlib.redirect_stdout(sys.stderr):  # Keras prints its progress on stdout: keep that for the result
        result = recipe(options, progress=_progress)
    qat = result.record.get("qat")
    if args.json:
        print(json.dumps({"out": str(result.out), "metrics": result.metrics, "qat": qat}))
    else:
        print(result.summary())
        if qat:
            from train.outputs import metrics_text

            print(f"QAT int8: {metrics_text(qat)}")
    return 0


def run_eval(args) -> int:
    from train.evaluate import evaluate

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty() and (done == total or done % 20 == 0):
            sys.stderr.write(f"\r[edgepilot] eval: {done}/{total} images")
            sys.stderr.write("\n" if done == total else "")

    result = evaluate(args.model, args.data, split=args.split, limit=args.limit, device=args.device,
                      threads=args.threads, progress=progress)
    if "label_mismatch" in result:
        pairs = [f"{i}: {m} / {d}" for i, (m, d) in enumerate(zip(*result["label_mismatch"].values())) if m != d]
        print(f"[edgepilot] eval: warning: the model's labels differ from the data set's, and classes are matched by "
              f"id (model / data): {'; '.join(pairs)}", file=sys.stderr)
    if args.json:
        print(json.dumps(result))
        return 0
    if result["task"] == "detection":
        print(f"{result['model']} on {result['data']} ({result['split']}, {result['images']} images, "
              f"{result['instances']} boxes): mAP@0.5 {result['map50']:.3f}, mAP@0.5:0.95 {result['map50_95']:.3f}")
        print(f"decoder {result['decoder']}, resize {result['resize']}, {result['accelerator']}")
        print("| class | AP@0.5 | AP@0.5:0.95 | boxes |\n|---|---|---|---|")
        for name, row in result["per_class"].items():
            ap50 = "-" if row["ap50"] is None else f"{row['ap50']:.3f}"
            ap = "-" if row["ap50_95"] is None else f"{row['ap50_95']:.3f}"
            print(f"| {name} | {ap50} | {ap} | {row['instances']} |")
    else:
        print(f"{result['model']} on {result['data']} ({result['images']} images): top-1 {result['top1']:.2f}%")
    return 0
