"""The conversion workflow as explicit steps: load -> calibrate -> convert -> validate -> export.

    conversion = Conversion(ConvertOptions(model="model.keras", out_dir="out", calib="calib.npz"))
    conversion.load()        # detect the model kind, export a SavedModel (child process)
    conversion.calibrate()   # calibration / evaluation data through the model's preprocessing
    conversion.convert()     # every target, each in a child process; failures are recorded
    conversion.validate()    # measure each variant through edge_runtime -> ReportCard
    conversion.export()      # write models, sidecars and report.{md,json,png} atomically

:func:`convert_model` runs all five."""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from convert import detection_eval, evaluate
from edge_runtime.errors import EdgeRuntimeError
from convert.data import Dataset, load_dataset
from convert.files import check_writable, write_atomic
from convert.isolation import StepFailed, run_isolated
from convert.metadata_io import embed_onnx, embed_tflite, sidecar_json
from convert.options import ConvertOptions, TFLITE_TARGETS
from convert.produced import Produced, advice_for, summarize
from convert.report import FixStep, ReportCard, VariantResult
from convert.sources import ModelFacts, TensorFacts, detect, export_saved_model, reference_outputs
from convert.tflite_variants import convert_tflite, layer_errors as debugger_layer_errors


POLICY_SEEDS = 10  # episodes per variant for a policy's closed-loop return


class Conversion:
    def __init__(self, options: ConvertOptions, progress=None):
        self.options = options
        self.progress = progress or (lambda message: None)
        self.work = Path(tempfile.mkdtemp(prefix="edgepilot-convert-"))
        self.stem = options.output_stem()
        self.kind = ""
        self.facts: ModelFacts | None = None
        self.saved_model: Path | None = None
        self._fixed_saved_model: Path | None = None
        self.calib: Dataset | None = None
        self.eval: Dataset | None = None
        self.produced: dict[str, Produced] = {}
        self.card: ReportCard | None = None
        self._fix_steps: tuple[FixStep, ...] = ()
        self._notes: list[str] = []
        self._edgetpu = None

    # ----- paths -------------------------------------------------------------------------
    def output_name(self, target: str) -> str:
        """``<stem>_<target>.<format>``: unique per target, so sidecars never collide."""
        return f"{self.stem}_{target}.{'onnx' if target.startswith('onnx') else 'tflite'}"

    def planned_outputs(self) -> list[Path]:
        out = self.options.out_dir
        files = [out / "report.md", out / "report.json", out / "report.png"]
        for target in self.options.targets:
            model = out / self.output_name(target)
            files += [model, model.with_suffix(".json")]
        return files

    # ----- load --------------------------------------------------------------------------
    def load(self) -> ModelFacts:
        check_writable(self.planned_outputs(), self.options.force)
        self.kind = detect(self.options.model)
        self.progress(f"model: {self.options.model} ({self.kind})")
        if self.kind == "tflite":
            import edge_runtime

            model = edge_runtime.load(self.options.model, device="cpu")
            self.facts = ModelFacts(
                tuple(TensorFacts(s.name, s.shape, s.dtype.name) for s in model.inputs),
                tuple(TensorFacts(s.name, s.shape, s.dtype.name) for s in model.outputs))
            return self.facts
        self.saved_model = self.work / "saved_model"
        self.facts = run_isolated("export to SavedModel", export_saved_model, str(self.options.model), self.kind,
                                  str(self.saved_model), batch=self.options.batch,
                                  log_path=self.work / "logs" / "export.log")
        return self.facts

    # ----- calibrate ---------------------------------------------------------------------
    def calibrate(self) -> Dataset | None:
        facts = self._need(self.facts, "load")
        if self.options.calib is None and self.options.eval is None:
            return None  # nothing to read: sizes and latency only
        if len(facts.inputs) != 1:
            raise ValueError(f"{self.options.model}: calibration and evaluation data support single-input models; "
                             f"this one has inputs {[i.name for i in facts.inputs]}")
        shape = tuple(facts.input_shape[1:])
        if any(d < 0 for d in shape):
            raise ValueError(f"{self.options.model}: input shape {facts.input_shape} has open dimensions besides "
                             "the batch; export the model with fixed input sizes")
        pre = self.options.metadata.preprocess
        if self.options.calib is not None:
            self.calib = load_dataset(self.options.calib, shape, pre, limit=self.options.calib_samples,
                                      seed=self.options.seed, what="calibration", progress=self._files("calibration"))
            np.save(self.work / "calib.npy", self.calib.x)
            self.progress(f"calibration: {len(self.calib)} samples from {self.calib.source}")
        if self.options.eval is not None:
            self.eval = load_dataset(self.options.eval, shape, pre, limit=self.options.eval_samples,
                                     seed=self.options.seed, what="evaluation", progress=self._files("evaluation"))
        elif self.calib is not None:
            self.eval = self.calib
        if self.eval is not None:
            np.save(self.work / "eval.npy", self.eval.x)
            self.progress(f"evaluation: {len(self.eval)} samples from {self.eval.source}")
        return self.calib

    def _files(self, what: str):
        """Progress of reading a folder of files, reported every 10%."""
        def report(done: int, total: int) -> None:
            if done == total or done % max(1, total // 10) == 0:
                self.progress(f"reading {what} files: {done}/{total}")
        return report

    # ----- convert -----------------------------------------------------------------------
    def convert(self) -> dict[str, Produced]:
        self._need(self.facts, "load")
        for target in self.options.targets:
            if target not in self.produced:
                self.produced[target] = self._make(target)
        return self.produced

    def _make(self, target: str) -> Produced:
        self.progress(f"converting {target}")
        if target in TFLITE_TARGETS:
            if self.kind == "tflite":
                return Produced(target, None, "the source is already a .tflite file; only ONNX targets apply to it",
                                "convert from the Keras model or SavedModel to get TFLite variants", skipped=True)
            return self._tflite(target)
        if target == "onnx_fp32":
            return self._onnx_fp32()
        if target == "onnx_int8":
            return self._onnx_int8()
        return self._edgetpu_target()

    def _tflite(self, target: str, denylist: tuple[str, ...] = ()) -> Produced:
        variant = target.split("_", 1)[1]
        calib = str(self.work / "calib.npy") if self.calib is not None else None
        path = self.work / (self.output_name(target) if not denylist else f"{self.stem}_{target}_fix{len(denylist)}.tflite")
        content, reason = None, ""
        try:
            content = run_isolated(target, convert_tflite, str(self.saved_model), variant, calib,
                                   self.options.int8_io, denylist, batch=self.options.batch or 1,
                                   log_path=self.work / "logs" / f"{target}.log")
        except StepFailed as failure:
            reason = summarize(failure)
        shape_trouble = self.facts.recurrent or any(w in reason.lower() for w in ("static", "tensorlist", "variable"))
        if content is None and self.facts.inputs[0].shape[0] < 0 and shape_trouble:
            # Recurrent layers need static shapes and frozen weights: retry once that way.
            try:
                content = run_isolated(f"{target} (batch 1, frozen)", convert_tflite, str(self._fixed()), variant,
                                       calib, self.options.int8_io, denylist, freeze=True,
                                       log_path=self.work / "logs" / f"{target}_batch1.log")
            except StepFailed as failure:
                reason = f"{reason}; with the batch fixed to 1 and weights frozen: {summarize(failure)}"
        if content is None:
            return Produced(target, None, reason, advice_for(reason))
        path.write_bytes(embed_tflite(content, self._metadata(target)))
        return Produced(target, path, float_layers=denylist)

    def _fixed(self) -> Path:
        """The model exported again with its batch fixed to 1 (made once, on first need)."""
        if self._fixed_saved_model is None:
            folder = self.work / "saved_model_batch1"
            run_isolated("export with batch 1", export_saved_model, str(self.options.model), self.kind, str(folder),
                         batch=1, log_path=self.work / "logs" / "export_batch1.log")
            self._fixed_saved_model = folder
        return self._fixed_saved_model

    def _onnx_fp32(self) -> Produced:
        from convert.onnx_variants import convert_onnx_fp32

        path = self.work / self.output_name("onnx_fp32")
        source = str(self.options.model) if self.kind == "tflite" else str(self.saved_model)
        try:
            run_isolated("onnx_fp32", convert_onnx_fp32, source, self.kind, str(path),
                         log_path=self.work / "logs" / "onnx_fp32.log")
        except StepFailed as failure:
            return Produced("onnx_fp32", None, failure.reason, advice_for("tf2onnx " + failure.reason))
        path.write_bytes(embed_onnx(path.read_bytes(), self._metadata("onnx_fp32")))
        return Produced("onnx_fp32", path)

    def _onnx_int8(self) -> Produced:
        from convert.onnx_variants import quantize_onnx_int8

        if "onnx_fp32" not in self.produced:  # made once, whether or not it was asked for itself
            self.produced["onnx_fp32"] = self._onnx_fp32()
        fp32 = self.produced["onnx_fp32"]
        if not fp32.ok:
            return Produced("onnx_int8", None, f"needs the ONNX fp32 model, which failed: {fp32.reason}", fp32.advice)
        path = self.work / self.output_name("onnx_int8")
        try:
            run_isolated("onnx_int8", quantize_onnx_int8, str(fp32.path), str(self.work / "calib.npy"), str(path),
                         self.options.onnx_int8, log_path=self.work / "logs" / "onnx_int8.log")
        except StepFailed as failure:
            return Produced("onnx_int8", None, failure.reason, advice_for(failure.reason))
        path.write_bytes(embed_onnx(path.read_bytes(), self._metadata("onnx_int8")))
        return Produced("onnx_int8", path)

    def _edgetpu_target(self) -> Produced:
        from convert.edgetpu import compile_model

        if "tflite_int8" not in self.produced:  # made once, whether or not it was asked for itself
            self.produced["tflite_int8"] = self._make("tflite_int8")
        int8 = self.produced["tflite_int8"]
        if not int8.ok:
            return Produced("edgetpu", None, f"needs the full int8 model, which failed: {int8.reason}", int8.advice)
        report = compile_model(int8.path, self.work / "edgetpu")
        self._edgetpu = report
        if report.compiled_path is None:
            from convert.edgetpu import find_compiler

            if find_compiler() is None:  # the full text, with how to install it, is in the Edge TPU section
                return Produced("edgetpu", None, "edgetpu_compiler is not installed (the report's Edge TPU section "
                                "says how to install it)", "the full int8 model is still produced as tflite_int8",
                                skipped=True)
            return Produced("edgetpu", None, report.error, "the full int8 model is still produced as tflite_int8")
        path = self.work / self.output_name("edgetpu")
        shutil.copyfile(report.compiled_path, path)
        return Produced("edgetpu", path)

    def _metadata(self, target: str):
        meta = self.options.metadata
        labels = meta.labels or (self.calib.labels if self.calib is not None else ())
        pre, layout = meta.preprocess, meta.input_layout
        shape = self.facts.input_shape if self.facts else ()
        if pre.kind == "image" and len(shape) == 4:  # fill in what the model's input shape says
            pre = replace(pre, size=pre.size or (shape[1], shape[2]), color="gray" if shape[3] == 1 else pre.color)
            layout = layout or "NHWC"
        return replace(meta, labels=tuple(labels), preprocess=pre, input_layout=layout,
                       source=str(self.options.model), variant=target)

    # ----- validate ----------------------------------------------------------------------
    def validate(self) -> ReportCard:
        self._need(self.produced or None, "convert")
        reference = self._reference()
        labels = self.eval.y if self.eval is not None else None
        detecting = self.eval is not None and self.eval.detections is not None
        measured, sizes, results = {}, {}, {}
        for target in self.options.targets:
            made = self.produced[target]
            if not made.ok:
                results[target] = VariantResult(target, ok=False, skipped=made.skipped, reason=made.reason,
                                                advice=made.advice)
                continue
            self.progress(f"measuring {target}")
            try:
                row = {"float_ops": evaluate.float_ops(str(made.path))}
                if target != "edgetpu":  # an Edge TPU model cannot run without the TPU
                    row.update(evaluate.latency(str(made.path), self.options.bench_runs))
                    if reference is not None:
                        outputs = evaluate.predict(str(made.path), self.eval.x, self._output_key())
                        row.update(evaluate.compare(outputs, reference, labels))
                    if detecting:
                        row.update(detection_eval.variant_map(str(made.path), self.eval))
                    if self.options.metadata.task == "policy":
                        row["closed_loop_return"] = self._policy_return(str(made.path))
            except (EdgeRuntimeError, KeyError, ValueError) as exc:  # produced, but not usable: not handed over
                reason = f"converted, but the result does not run or match in edge_runtime: {str(exc)[:600]}"
                self.produced[target] = replace(made, path=None, reason=reason)
                results[target] = VariantResult(target, ok=False, reason=reason, advice=advice_for(reason))
                continue
            sizes[target] = evaluate.file_size(str(made.path))
            measured[target] = row
        for target, row in measured.items():
            made = self.produced[target]
            results[target] = VariantResult(
                target, path=str(self.options.out_dir / self.output_name(target)), size_bytes=sizes[target],
                top1=row.get("top1"), agreement=row.get("agreement"), max_abs_diff=row.get("max_abs_diff"),
                mean_abs_diff=row.get("mean_abs_diff"), p50_ms=row.get("p50_ms"), p99_ms=row.get("p99_ms"),
                accelerator=row.get("accelerator", "edgetpu (not measured: no Edge TPU here)"),
                delegated=row.get("delegated", ""), float_layers=made.float_layers,
                traps=evaluate.traps(target, measured, sizes), map50=row.get("map50"), map50_95=row.get("map50_95"),
                closed_loop_return=row.get("closed_loop_return"))
        ref_top1 = None
        if reference is not None and labels is not None and evaluate.is_classifier(reference):
            ref_top1 = float((reference.argmax(axis=1) == labels).mean() * 100)
        ref_map = self._reference_map() if detecting else {}
        notes = list(self._notes)
        if self.eval is not None and self.eval is self.calib:
            notes.append("no --eval data: evaluated on the calibration samples (pass --eval for an honest figure)")
        if reference is None:
            notes.append("no evaluation data: accuracy was not measured")
        self.card = ReportCard(
            source=str(self.options.model), source_kind=self.kind,
            eval_source=self.eval.source if self.eval is not None else "none",
            eval_samples=len(self.eval) if self.eval is not None else 0,
            labelled=labels is not None and ref_top1 is not None, reference_top1=ref_top1,
            results=tuple(results[t] for t in self.options.targets), budget=self.options.budget,
            fix_steps=self._fix_steps, edgetpu_table=self._edgetpu.markdown() if self._edgetpu else "",
            notes=tuple(notes), reference_map50=ref_map.get("map50"), reference_map50_95=ref_map.get("map50_95"))
        return self.card

    def _output_key(self) -> str | None:
        """The output compared with the float model: the first signature key (None for a
        .tflite source, whose first output is used on both sides)."""
        return None if self.kind == "tflite" else self.facts.outputs[0].name

    def _reference(self) -> np.ndarray | None:
        if self.eval is None:
            return None
        path = self.work / "reference.npy"
        if not path.exists():
            if self.kind == "tflite":
                np.save(path, evaluate.predict(str(self.options.model), self.eval.x))
            else:
                run_isolated("float reference", reference_outputs, str(self.saved_model), str(self.work / "eval.npy"),
                             str(path), all_path=str(self.work / "reference_all.npz"),
                             log_path=self.work / "logs" / "reference.log")
        return np.load(path).astype(np.float64)

    def _policy_return(self, path: str) -> float:
        """A policy's worth is its return, not its per-step error: mean over POLICY_SEEDS seeds."""
        from train.policy.evaluate import evaluate_policy

        self.progress(f"closed-loop return of {Path(path).name} over {POLICY_SEEDS} seeds")
        return evaluate_policy(path, episodes=POLICY_SEEDS, seed=0)["return_mean"]

    def _reference_map(self) -> dict:
        """mAP of the float model on the detection set (the source .tflite itself for a .tflite)."""
        if self.kind == "tflite":
            return detection_eval.variant_map(str(self.options.model), self.eval)
        self._reference()
        with np.load(self.work / "reference_all.npz") as archive:
            outputs = {key: archive[key] for key in archive.files}
        return detection_eval.reference_map(outputs, self.eval, self._metadata("float"))

    # ----- quantization debugging and auto-fix --------------------------------------------
    def layer_errors(self) -> list[dict]:
        """Per-layer int8 error from TF's QuantizationDebugger, worst first (needs calibrate())."""
        self._need(self.calib, "calibrate")
        if self.kind == "tflite":
            raise ValueError(f"{self.options.model}: quantization debugging needs the float model "
                             "(SavedModel or Keras), not a .tflite")
        return run_isolated("quantization debugger", debugger_layer_errors, str(self.saved_model), str(self.work / "calib.npy"),
                            batch=self.options.batch or 1, log_path=self.work / "logs" / "debugger.log")

    def auto_fix(self) -> ReportCard:
        """Keep the worst int8 layers in float, one more per step, until int8 is within the
        budget (:func:`convert.auto_fix.auto_fix`)."""
        from convert.auto_fix import auto_fix

        return auto_fix(self)

    # ----- export ------------------------------------------------------------------------
    def export(self) -> ReportCard:
        card = self._need(self.card, "validate")
        out = self.options.out_dir
        for target in self.options.targets:
            made = self.produced[target]
            if made.ok:
                destination = out / self.output_name(target)
                write_atomic(destination, made.path.read_bytes(), self.options.force)
                write_atomic(destination.with_suffix(".json"), sidecar_json(self._metadata(target)), self.options.force)
        write_atomic(out / "report.md", card.markdown(), self.options.force)
        write_atomic(out / "report.json", card.to_json(), self.options.force)
        write_atomic(out / "report.png", card.plot_png(), self.options.force)
        return card

    def close(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)

    @staticmethod
    def _need(value, step: str):
        if value is None:
            raise RuntimeError(f"run .{step}() first")
        return value


def convert_model(options: ConvertOptions, progress=None) -> ReportCard:
    """load -> calibrate -> convert -> validate (-> auto-fix) -> export, and clean up."""
    conversion = Conversion(options, progress)
    try:
        conversion.load()
        conversion.calibrate()
        conversion.convert()
        conversion.validate()
        if options.auto_fix:
            conversion.auto_fix()
        return conversion.export()
    finally:
        conversion.close()
