"""The one typed place for training options, checked when built (``edgepilot train`` fills it)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from train.architectures import HEADS  # no TensorFlow: plain Python

SCHEDULES = ("cosine", "constant", "step")


@dataclass(frozen=True)
class TrainOptions:
    """Options shared by the classifier and detector recipes.

    ``data`` is a folder of class sub-folders, an ``.npz``, ``fashion-mnist`` (classifier), a YOLO
    ``data.yaml`` or a COCO folder (detector). ``input_size`` is (height, width) in pixels (None:
    the recipe's default; a classifier keeps its images' size). ``lr`` is the peak learning rate;
    ``schedule`` cosine decays it to 1% after a linear warm-up over ``warmup_epochs``; step halves
    it every third of the run. ``patience`` epochs without a better validation metric stop early
    (0: never). ``resume`` continues from ``out/checkpoints`` after an interruption."""

    data: str
    out: Path
    epochs: int = 30
    batch_size: int = 32
    input_size: tuple[int, int] | None = None
    lr: float = 2e-3
    schedule: str = "cosine"
    warmup_epochs: float = 1.0
    augment: bool = True
    flip: bool = True
    average_weights: bool = False  # detector: keep a moving average of the weights (train/detector.py)
    seed: int = 0
    resume: bool = False
    patience: int = 8
    tensorboard: Path | None = None
    qat: bool = False
    qat_epochs: int = 3
    width: float = 1.0
    head: str = "shared"  # detector: "shared" or "decoupled" (train/architectures.py)
    limit: int | None = None  # use only this many training samples (quick runs)
    val_fraction: float = 0.1  # held out for validation when the data has no validation split
    distribute: str = "auto"  # "auto", "none", "mirrored", "multiworker"
    force: bool = False
    verbose: int = 1  # Keras' progress: 0 silent, 1 bar, 2 one line per epoch

    def __post_init__(self):
        object.__setattr__(self, "out", Path(self.out))
        if self.tensorboard is not None:
            object.__setattr__(self, "tensorboard", Path(self.tensorboard))
        if self.input_size is not None:
            object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
        checks = [
            (self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"--lr must be > 0, got {self.lr}"),
            (self.schedule in SCHEDULES, f"--schedule must be one of {SCHEDULES}, got {self.schedule!r}"),
            (self.warmup_epochs >= 0, f"--warmup-epochs must be >= 0, got {self.warmup_epochs}"),
            (self.patience >= 0, f"--patience must be >= 0, got {self.patience}"),
            (self.qat_epochs >= 1, f"--qat-epochs must be >= 1, got {self.qat_epochs}"),
            (0 < self.width <= 4, f"--width must be in (0, 4], got {self.width}"),
            (self.head in HEADS, f"--head must be one of {', '.join(HEADS)}, got {self.head!r}"),
            (self.limit is None or self.limit >= 1, f"--limit must be >= 1, got {self.limit}"),
            (0 < self.val_fraction < 1, f"--val-fraction must be in (0, 1), got {self.val_fraction}"),
            (self.distribute in ("auto", "none", "mirrored", "multiworker"),
             f"--distribute must be auto, none, mirrored or multiworker, got {self.distribute!r}"),
            (self.input_size is None or (len(self.input_size) == 2 and min(self.input_size) >= 8),
             f"--input-size must be HEIGHT WIDTH (or one size), got {self.input_size}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def to_dict(self) -> dict:
        data = asdict(self)
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in data.items()}
