"""The report card: what each variant kept of the float model's accuracy, and what it costs."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class VariantResult:
    """One produced (or failed) variant, measured through edge_runtime on this machine.

    ``top1`` and ``agreement`` are percentages; ``agreement`` is the share of samples where the
    variant's top class equals the float model's (or, for non-class outputs, where every value
    is within 1% of the float output's range). ``map50`` / ``map50_95`` (fractions, as COCO
    reports them) are measured when the evaluation data is a detection set; the card's metric is
    then mAP@0.5 in points (x100), so ``--budget`` reads in points of mAP."""

    target: str
    path: str = ""
    ok: bool = True
    skipped: bool = False  # not produced for a reason outside the model (e.g. no edgetpu_compiler)
    reason: str = ""
    advice: str = ""
    size_bytes: int = 0
    top1: float | None = None
    agreement: float | None = None
    max_abs_diff: float | None = None
    mean_abs_diff: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    accelerator: str = ""
    delegated: str = ""
    float_layers: tuple[str, ...] = ()
    traps: tuple[str, ...] = ()
    map50: float | None = None
    map50_95: float | None = None
    closed_loop_return: float | None = None  # a policy's mean return in its simulator (what it is worth)

    def metric(self, labelled: bool) -> float | None:
        if self.map50 is not None:
            return 100.0 * self.map50
        return self.top1 if labelled else self.agreement


@dataclass(frozen=True)
class FixStep:
    """One step of --auto-fix: the layers kept in float and what the int8 model then measured."""

    float_layers: tuple[str, ...]
    metric: float
    size_bytes: int
    p50_ms: float | None


@dataclass(frozen=True)
class ReportCard:
    source: str
    source_kind: str
    eval_source: str
    eval_samples: int
    labelled: bool
    reference_top1: float | None
    results: tuple[VariantResult, ...]
    budget: float | None = None
    fix_steps: tuple[FixStep, ...] = ()
    edgetpu_table: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)
    reference_map50: float | None = None  # the float model's, on a detection set
    reference_map50_95: float | None = None

    @property
    def detection(self) -> bool:
        return self.reference_map50 is not None

    @property
    def metric_name(self) -> str:
        if self.detection:
            return "mAP@0.5 (x100)"
        return "top-1 %" if self.labelled else "agreement %"

    def reference_metric(self) -> float:
        if self.detection:
            return 100.0 * self.reference_map50
        return self.reference_top1 if self.labelled and self.reference_top1 is not None else 100.0

    def drop(self, result: VariantResult) -> float | None:
        """Percentage points lost against the float model (positive = worse)."""
        value = result.metric(self.labelled)
        return None if value is None else self.reference_metric() - value

    def budget_misses(self) -> list[tuple[VariantResult, float]]:
        """(variant, points over the budget) for each requested variant that misses it; a
        variant that failed to convert misses it too."""
        if self.budget is None:
            return []
        misses = []
        for r in self.results:
            if r.skipped:
                continue
            if not r.ok:
                misses.append((r, float("inf")))
                continue
            drop = self.drop(r)
            if drop is not None and drop > self.budget + 1e-9:
                misses.append((r, drop - self.budget))
        return misses

    def to_dict(self) -> dict:
        data = asdict(self)
        data["metric"] = self.metric_name
        data["budget_misses"] = [{"target": r.target, "over_by_points": over} for r, over in self.budget_misses()]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    def markdown(self) -> str:
        def fmt(value, digits=2):
            return "n/a" if value is None else f"{value:.{digits}f}"

        ref = f"{self.reference_top1:.2f}%" if self.reference_top1 is not None else "n/a (no labels)"
        if self.detection:
            ref = (f"mAP@0.5 {self.reference_map50:.3f}, mAP@0.5:0.95 "
                   f"{fmt(self.reference_map50_95, 3)} (COCO, pycocotools)")
        lines = [
            f"# Report card: {self.source}",
            "",
            f"Source kind: {self.source_kind}. Evaluated on {self.eval_samples} samples of {self.eval_source}. "
            f"Float model {'top-1: ' if not self.detection else ''}{ref}. Metric: {self.metric_name}"
            + (f"; budget: {self.budget} points." if self.budget is not None else "."),
            "",
            f"| variant | size KiB | {self.metric_name} | drop (points) |{' mAP@0.5:0.95 |' if self.detection else ''} "
            "max abs diff | mean abs diff | p50 ms | p99 ms | accelerator | delegated | status |",
            "|---|---|---|---|" + ("---|" if self.detection else "") + "---|---|---|---|---|---|---|",
        ]
        for r in self.results:
            status = "ok" if r.ok else ("skipped (see below)" if r.skipped else "FAILED (see below)")
            coco = f" {fmt(r.map50_95, 3)} |" if self.detection else ""
            lines.append(
                f"| {r.target} | {r.size_bytes / 1024:.1f} | {fmt(r.metric(self.labelled))} | {fmt(self.drop(r))} |{coco} "
                f"{fmt(r.max_abs_diff, 4)} | {fmt(r.mean_abs_diff, 5)} | {fmt(r.p50_ms, 3)} | {fmt(r.p99_ms, 3)} | "
                f"{r.accelerator} | {r.delegated} | {status} |"
            )
        returns = [r for r in self.results if r.closed_loop_return is not None]
        if returns:
            lines += ["", "## Closed-loop return (policy in its simulator, mean over seeds)", "",
                      "| variant | return | max abs action diff |", "|---|---|---|"]
            lines += [f"| {r.target} | {r.closed_loop_return:.2f} | {fmt(r.max_abs_diff, 4)} |" for r in returns]
        traps = [(r.target, t) for r in self.results for t in r.traps]
        if traps:
            lines += ["", "## Traps the measurements show", ""]
            lines += [f"- **{target}**: {text}" for target, text in traps]
        failed = [r for r in self.results if not r.ok]
        if failed:
            lines += ["", "## Failed or skipped variants", ""]
            lines += [f"- **{r.target}**: {r.reason}" + (f" Advice: {r.advice}" if r.advice else "") for r in failed]
        if self.fix_steps:
            lines += ["", "## --auto-fix: layers kept in float", "",
                      f"| step | float layers | {self.metric_name} | size KiB | p50 ms |", "|---|---|---|---|---|"]
            for i, step in enumerate(self.fix_steps):
                lines.append(f"| {i} | {', '.join(step.float_layers) or '(none)'} | {step.metric:.2f} | "
                             f"{step.size_bytes / 1024:.1f} | {fmt(step.p50_ms, 3)} |")
        if self.edgetpu_table:
            lines += ["", "## Edge TPU", "", self.edgetpu_table]
        misses = self.budget_misses()
        if misses:
            lines += ["", "## Over budget", ""]
            lines += [f"- {r.target}: " + ("failed to convert" if over == float("inf") else f"{over:.2f} points over the {self.budget}-point budget")
                      for r, over in misses]
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def plot_png(self) -> bytes:
        """Accuracy against latency, marker area proportional to file size."""
        import io

        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        points = [r for r in self.results if r.ok and r.p50_ms is not None and r.metric(self.labelled) is not None]
        fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
        if points:
            largest = max(r.size_bytes for r in points) or 1
            for r in points:
                ax.scatter(r.p50_ms, r.metric(self.labelled), s=40 + 900 * r.size_bytes / largest, alpha=0.55)
                ax.annotate(r.target, (r.p50_ms, r.metric(self.labelled)), fontsize=8, xytext=(4, 4),
                            textcoords="offset points")
            ax.set_xscale("log")
        if self.detection or (self.labelled and self.reference_top1 is not None):
            ax.axhline(self.reference_metric(), linestyle="--", linewidth=1, color="gray", label="float model")
            ax.legend(loc="lower right", fontsize=8)
        ax.set_xlabel("p50 latency, ms (log scale, this machine, 1 thread)")
        ax.set_ylabel(self.metric_name)
        ax.set_title("accuracy vs latency (marker area = file size)")
        ax.grid(True, alpha=0.3)
        buffer = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buffer, format="png")
        plt.close(fig)
        return buffer.getvalue()
