"""Compile an int8 TFLite model for the Coral Edge TPU with ``edgetpu_compiler``, and read its log.

The compiler is a closed-source x86_64 Linux binary from Coral's Debian repository; it is not on
PyPI and cannot be installed by this package. Everything here therefore degrades to a report:
:func:`compile_model` never raises because the compiler is missing or fails, it returns an
:class:`EdgeTpuReport` whose ``error`` says why, and the caller still ships the int8 model.

Log formats handled by :func:`parse_log` (compiler versions 14-16, as pasted in Coral's issue
tracker and in projects that call the compiler):

* the stdout summary: ``Edge TPU Compiler version 16.0.384591198``, ``Started a compilation
  timeout timer of 180 seconds.`` (v16 only), ``Model compiled successfully in 3173 ms.``,
  ``Number of Edge TPU subgraphs: 1``, ``Total number of operations: 294``, and on partial
  mapping ``Number of operations that will run on Edge TPU: 289`` / ``... on CPU: 5``;
* the per-op table printed by ``--show_operations`` (and written to ``<stem>_edgetpu.log``)::

      Operator                       Count      Status

      CONV_2D                        62         Mapped to Edge TPU
      QUANTIZE                       2          Operation is otherwise supported, but not mapped ...

* failures: ``Internal compiler error. Aborting!``; ``Invalid model: m.tflite`` + ``Model not
  quantized``; and in v16 ``ERROR: ...`` / ``Compilation failed: <reason>`` / ``Compilation
  failed!`` around ``Compilation child process completed within timeout period.``
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

COMPILER = "edgetpu_compiler"

INSTALL_HINT = (
    "To compile for the Edge TPU, install Coral's Edge TPU Compiler: the Debian package "
    "'edgetpu-compiler' from Coral's apt repository (add the repository and its key as described "
    "at coral.ai/docs/edgetpu/compiler, then 'sudo apt-get install edgetpu-compiler'). It runs on "
    "x86_64 Linux only and is not on PyPI; on other machines, compile on an x86_64 Linux host or "
    "in Coral's Colab notebook, then copy the *_edgetpu.tflite file back."
)

MAPPED = "Mapped to Edge TPU"

# What each status the compiler prints means for the user, and what to try next.
STATUS_HINTS = {
    MAPPED: "",
    "More than one subgraph is not supported": (
        "the op comes after one that fell back to the CPU; by default only the first TPU segment is "
        "compiled, so fix the first unmapped op (or try the compiler's -a / -d options)"
    ),
    "Operation is otherwise supported, but not mapped due to some unspecified limitation": (
        "the op type is supported but this instance is not (often its shape or size, or an "
        "input/output QUANTIZE at the model's float boundary)"
    ),
    "Operation is working on an unsupported data type": (
        "the op sees float or int32 tensors; quantize the whole model to int8 (int8 or uint8 "
        "inputs and outputs), and keep float pre/post-processing out of the model"
    ),
    "Operation not supported": "the Edge TPU has no kernel for this op; replace it or run it outside the model",
    "Operation version not supported": (
        "the TFLite op version is newer than this compiler knows; use the newest compiler or an "
        "older TensorFlow converter"
    ),
}

# Failure lines the compiler prints, with what to do about them.
_FAILURE_HINTS = (
    ("Model not quantized", "the compiler needs a fully int8-quantized model (full-integer post-training "
     "quantization or QAT, every op int8)"),
    ("dynamic-sized tensors", "give the model a fixed input shape (batch size 1) before conversion"),
    ("large activation tensors", "reduce the input resolution or split the model"),
    ("Compilation timeout", "reduce the input resolution, or raise the compiler's --timeout_sec"),
    ("Internal compiler error", "the compiler gives no detail; check the model runs in the TFLite "
     "interpreter, uses only Edge TPU ops, and try a smaller input size"),
)

_VERSION = re.compile(r"Edge TPU Compiler version\s+(\S+)")
_SUBGRAPHS = re.compile(r"Number of Edge TPU subgraphs:\s*(\d+)")
_TABLE_HEADER = re.compile(r"^\s*Operator\s+Count\s+Status\s*$", re.MULTILINE)
_ROW = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_]*)\s+(\d+)\s+(\S.*?)\s*$")
_SUCCESS = re.compile(r"Model compiled successfully|Model successfully compiled|Compilation succeeded!")
_FAILURE = re.compile(
    r"Internal compiler error|Invalid model:|Model not quantized|Compilation failed|"
    r"Compilation timeout|^ERROR:",
    re.MULTILINE,
)
_FAILURE_LINE = re.compile(
    r"^\s*(Internal compiler error.*|Invalid model:.*|Model not quantized.*|Compilation failed.*|"
    r"Compilation timeout.*|ERROR:.*)$"
)


@dataclass(frozen=True)
class OpMapping:
    """One row of the compiler's per-op table: ``count`` ops of type ``op`` with ``status``."""

    op: str
    count: int
    status: str

    @property
    def mapped(self) -> bool:
        return self.status == MAPPED

    @property
    def hint(self) -> str:
        """What the status means and what to try (empty when mapped or the status is unknown)."""
        return STATUS_HINTS.get(self.status, "")


@dataclass(frozen=True)
class EdgeTpuReport:
    """What one ``edgetpu_compiler`` run produced.

    ``compiled_path`` is the ``*_edgetpu.tflite`` written (None when nothing was compiled);
    ``ops`` the per-op table rows in the compiler's order (an op type may appear on several rows,
    one per status); ``subgraphs_on_tpu`` the "Number of Edge TPU subgraphs" (None when the log
    does not say); ``log`` the compiler's full output; ``error`` empty on success, otherwise
    what went wrong and what to do.
    """

    compiled_path: Path | None
    compiler_version: str
    ops: tuple[OpMapping, ...]
    subgraphs_on_tpu: int | None
    log: str
    error: str

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def cpu_ops(self) -> tuple[OpMapping, ...]:
        """The rows whose ops run on the CPU instead of the Edge TPU."""
        return tuple(o for o in self.ops if not o.mapped)

    @property
    def tpu_op_count(self) -> int:
        return sum(o.count for o in self.ops if o.mapped)

    @property
    def total_op_count(self) -> int:
        return sum(o.count for o in self.ops)

    @property
    def mapped_fraction(self) -> float | None:
        """Share of ops (by count) mapped to the Edge TPU, 0..1; None when there is no op table."""
        total = self.total_op_count
        return self.tpu_op_count / total if total else None

    @property
    def fully_mapped(self) -> bool:
        """True when compilation succeeded and every op in the table runs on the Edge TPU."""
        return self.ok and bool(self.ops) and all(o.mapped for o in self.ops)

    def verdict(self) -> str:
        version = f" (compiler {self.compiler_version})" if self.compiler_version else ""
        if self.error:
            return f"Not compiled for the Edge TPU{version}: {self.error}"
        if not self.ops:
            return (f"Compiled{version}, but the log has no per-op table, so the mapping is unknown "
                    "(run the compiler with --show_operations).")
        total, on_tpu = self.total_op_count, self.tpu_op_count
        subgraphs = "" if self.subgraphs_on_tpu is None else (
            f" in {self.subgraphs_on_tpu} Edge TPU subgraph{'s' if self.subgraphs_on_tpu != 1 else ''}")
        if on_tpu == total:
            return f"All {total} ops run on the Edge TPU{subgraphs}{version}."
        if on_tpu == 0:
            return (f"None of the {total} ops runs on the Edge TPU{version}: the compiled model would "
                    "run entirely on the CPU; use the int8 model on the CPU instead.")
        return (f"{on_tpu} of {total} ops ({on_tpu / total:.1%}) run on the Edge TPU{subgraphs}; "
                f"{total - on_tpu} run on the CPU{version}.")

    def markdown(self) -> str:
        """A per-op table (op, count, on TPU?, reason) followed by the verdict and hints."""
        lines = []
        if self.ops:
            lines += ["| op | count | on TPU? | reason |", "|---|---:|:---:|---|"]
            for o in self.ops:
                reason = "" if o.mapped else _cell(o.status)
                lines.append(f"| {_cell(o.op)} | {o.count} | {'yes' if o.mapped else 'no'} | {reason} |")
            lines.append("")
        head, _, detail = self.verdict().partition("\n")  # a compiler error carries its log tail
        lines.append(f"**Verdict:** {head}")
        if detail:
            lines += ["", "```", detail, "```"]
        hints = {o.status: o.hint for o in self.cpu_ops if o.hint}
        if hints and not self.error:
            lines.append("")
            lines += [f"- *{status}*: {hint}." for status, hint in hints.items()]
        return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def find_compiler() -> str | None:
    """The path of ``edgetpu_compiler`` on PATH, or None."""
    return shutil.which(COMPILER)


def parse_log(text: str) -> EdgeTpuReport:
    """Read the compiler's stdout (or its ``*_edgetpu.log``) into a report. Never raises: text
    that is not a compiler log gives a report whose ``error`` says so."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    m = _VERSION.search(text)
    version = m.group(1) if m else ""
    subgraphs = [int(n) for n in _SUBGRAPHS.findall(text)]
    return EdgeTpuReport(
        compiled_path=None,
        compiler_version=version,
        ops=_parse_table(text),
        subgraphs_on_tpu=subgraphs[-1] if subgraphs else None,
        log=text,
        error=_parse_error(text),
    )


def _parse_table(text: str) -> tuple[OpMapping, ...]:
    """Rows of the last ``Operator Count Status`` table (with ``-d`` the compiler may print
    several attempts; the last one is the result)."""
    rows: list[OpMapping] = []
    in_table = False
    for line in text.splitlines():
        if _TABLE_HEADER.match(line):
            rows, in_table = [], True
            continue
        if not in_table or not line.strip():
            continue
        m = _ROW.match(line)
        if m is None:
            in_table = False
            continue
        rows.append(OpMapping(op=m.group(1), count=int(m.group(2)), status=m.group(3)))
    return tuple(rows)


def _parse_error(text: str) -> str:
    if not text.strip():
        return "the compiler printed nothing"
    last_ok = max((m.start() for m in _SUCCESS.finditer(text)), default=-1)
    last_fail = max((m.start() for m in _FAILURE.finditer(text)), default=-1)
    if last_ok > last_fail:
        return ""
    if last_fail < 0:
        if _TABLE_HEADER.search(text) or _VERSION.search(text):
            return ""  # an operation log file (<stem>_edgetpu.log) carries no success line
        return ("no Edge TPU compiler result in this text (expected 'Model compiled successfully' "
                "or a failure message such as 'Internal compiler error')")
    messages: list[str] = []
    for line in text.splitlines():
        m = _FAILURE_LINE.match(line)
        if m and m.group(1).strip() not in messages:
            messages.append(m.group(1).strip())
    # "Compilation failed!" only repeats a more specific line when there is one
    if len(messages) > 1:
        messages = [s for s in messages if s != "Compilation failed!"]
    error = " ".join(s if s.endswith((".", "!")) else s + "." for s in messages)
    hints = [hint for key, hint in _FAILURE_HINTS if key in text]
    if hints:
        error += " Next: " + "; ".join(hints) + "."
    return error


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def compile_model(int8_tflite: Path, out_dir: Path, timeout_s: float = 180) -> EdgeTpuReport:
    """Run ``edgetpu_compiler --show_operations --out_dir OUT_DIR MODEL`` and report.

    Returns a report in every case except a missing input file (FileNotFoundError): when the
    compiler is not installed, cannot start, fails, times out after ``timeout_s`` seconds, or
    exits 0 without writing ``<stem>_edgetpu.tflite``, ``compiled_path`` is None and ``error``
    says why. The compiler's own 180 s per-attempt limit (v16 ``--timeout_sec``) is left at its
    default so that v14/v15 compilers, which lack the flag, work too.
    """
    model = Path(int8_tflite).resolve()
    if not model.is_file():
        raise FileNotFoundError(f"Edge TPU compilation needs an int8 .tflite file; {model} does not exist")
    out = Path(out_dir).resolve()
    compiler = find_compiler()
    if compiler is None:
        return EdgeTpuReport(None, "", (), None, "", (
            f"{COMPILER} is not installed (not found on PATH), so {model.name} was not compiled for "
            f"the Edge TPU; the int8 model still runs on the CPU. {INSTALL_HINT}"))
    out.mkdir(parents=True, exist_ok=True)
    cmd = [compiler, "--show_operations", "--out_dir", str(out), str(model)]
    try:
        # A new session so that a timeout can stop the compiler's own child process too.
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", start_new_session=True)
    except OSError as exc:  # present but will not start: wrong architecture, not executable
        return EdgeTpuReport(None, "", (), None, "", (
            f"{compiler} is installed but could not be started ({exc}); it runs on x86_64 Linux "
            f"only. {INSTALL_HINT}"))
    try:
        log, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the group this call started, nothing else
        except ProcessLookupError:
            pass
        log, _ = proc.communicate()
        report = parse_log(log or "")
        return _with(report, error=(
            f"{COMPILER} did not finish within {timeout_s:g} s and was stopped; "
            f"last output:\n{_tail(log or '')}"))

    report = parse_log(log)
    if not report.ops:  # without a table on stdout, fall back to the operation log file
        op_log = out / f"{model.stem}_edgetpu.log"
        if op_log.is_file():
            ops = parse_log(op_log.read_text(errors="replace")).ops
            report = _with(report, ops=ops)
    if proc.returncode != 0:
        reason = report.error or "no failure message was recognised"
        return _with(report, error=(
            f"{COMPILER} exited with status {proc.returncode}: {reason}\nlast output:\n{_tail(log)}"))
    compiled = out / f"{model.stem}_edgetpu.tflite"
    if report.error:
        return _with(report, error=f"{report.error}\nlast output:\n{_tail(log)}")
    if not compiled.is_file():
        return _with(report, error=(
            f"{COMPILER} exited 0 but did not write {compiled}; last output:\n{_tail(log)}"))
    return _with(report, compiled_path=compiled)


def _with(report: EdgeTpuReport, **changes) -> EdgeTpuReport:
    return replace(report, **changes)
