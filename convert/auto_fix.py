"""``edgepilot convert --auto-fix``: keep the int8 layers with the largest quantization error in
float, one more per step, until the int8 model is back within ``--budget`` of the float one.

Layers are ranked once by TF's QuantizationDebugger (:meth:`Conversion.layer_errors`); each step
converts again with a longer denylist and measures it on the evaluation data. The steps tried go
into the report card (``FixStep``), and the first one within the budget replaces the int8 model.
This is a step of :class:`convert.workflow.Conversion` kept in a file of its own, so it uses the
conversion's internal steps (``_tflite``, ``_reference``) as a method would.
"""
from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

from convert import evaluate
from convert.produced import Produced
from convert.report import FixStep, ReportCard

if TYPE_CHECKING:
    from convert.workflow import Conversion


def auto_fix(conversion: Conversion) -> ReportCard:
    """Keep the worst int8 layers in float, one more per step, until int8 is within the budget."""
    card = conversion._need(conversion.card, "validate")
    result = next((r for r in card.results if r.target == "tflite_int8"), None)
    if result is None or not result.ok or card.drop(result) is None or card.drop(result) <= card.budget:
        return card
    conversion.progress("auto-fix: ranking layers by quantization error")
    ranked = [r["tensor"] for r in conversion.layer_errors() if r["tensor"]]
    steps = [FixStep((), result.metric(card.labelled), result.size_bytes, result.p50_ms)]
    reference, labels = conversion._reference(), conversion.eval.y
    best = None
    for count in range(1, min(conversion.options.max_fix_steps, len(ranked)) + 1):
        denylist = tuple(ranked[:count])
        conversion.progress(f"auto-fix step {count}: float layers {list(denylist)}")
        made = conversion._tflite("tflite_int8", denylist)
        if not made.ok:
            conversion._notes.append(f"auto-fix step {count} ({len(denylist)} float layers) failed to convert: {made.reason}")
            continue
        scores = evaluate.compare(evaluate.predict(str(made.path), conversion.eval.x, conversion._output_key()),
                                  reference, labels)
        metric = scores.get("top1") if card.labelled else scores["agreement"]
        timing = evaluate.latency(str(made.path), conversion.options.bench_runs)
        steps.append(FixStep(denylist, metric, evaluate.file_size(str(made.path)), timing["p50_ms"]))
        if card.reference_metric() - metric <= card.budget:
            best = made
            break
    conversion._fix_steps = tuple(steps)
    if best is None:
        conversion._notes.append(f"auto-fix: no denylist of up to {len(steps) - 1} layers brought int8 within the budget")
    else:
        final = conversion.work / conversion.output_name("tflite_int8")
        shutil.copyfile(best.path, final)
        conversion.produced["tflite_int8"] = Produced("tflite_int8", final, float_layers=best.float_layers)
    return conversion.validate()
