"""convert.edgetpu: reading edgetpu_compiler logs, and running the compiler (or its absence).

The logs below are real compiler output quoted from public sources (each says where); their
text is verbatim except where a comment says it was cut. The compiler itself is a closed x86_64
Debian package from Coral's own apt repository that this machine cannot install, so the
compile_model tests put a small shell script named ``edgetpu_compiler`` first on PATH instead.
"""
from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from convert import edgetpu
from convert.edgetpu import INSTALL_HINT, EdgeTpuReport, OpMapping, compile_model, find_compiler, parse_log

# v16 stdout with -s (and -a: two TPU subgraphs), partial mapping.
# From jveitchmichaelis/edgetpu-yolo, export.md ("edgetpu_compiler -sa yolov5s-int8-224.tflite").
V16_PARTIAL_S = """\
Edge TPU Compiler version 16.0.384591198
Started a compilation timeout timer of 180 seconds.

Model compiled successfully in 3173 ms.

Input model: yolov5s-int8-224.tflite
Input size: 7.37MiB
Output model: yolov5s-int8-224_edgetpu.tflite
Output size: 8.34MiB
On-chip memory used for caching model parameters: 6.08MiB
On-chip memory remaining for caching model parameters: 0.00B
Off-chip memory used for streaming uncached model parameters: 1.70MiB
Number of Edge TPU subgraphs: 2
Total number of operations: 294
Operation log: yolov5s-int8-224_edgetpu.log

Model successfully compiled but not all operations are supported by the Edge TPU. A percentage of the model will instead run on the CPU, which is slower. If possible, consider updating your model to use only operations supported by the Edge TPU. For details, visit g.co/coral/model-reqs.
Number of operations that will run on Edge TPU: 289
Number of operations that will run on CPU: 5

Operator                       Count      Status

RESIZE_NEAREST_NEIGHBOR        2          Mapped to Edge TPU
CONCATENATION                  1          Operation is otherwise supported, but not mapped due to some unspecified limitation
CONCATENATION                  17         Mapped to Edge TPU
STRIDED_SLICE                  13         Mapped to Edge TPU
TRANSPOSE                      1          Operation is otherwise supported, but not mapped due to some unspecified limitation
TRANSPOSE                      2          Mapped to Edge TPU
MAX_POOL_2D                    3          Mapped to Edge TPU
LOGISTIC                       62         Mapped to Edge TPU
QUANTIZE                       2          Operation is otherwise supported, but not mapped due to some unspecified limitation
QUANTIZE                       24         Mapped to Edge TPU
SUB                            3          Mapped to Edge TPU
PAD                            6          Mapped to Edge TPU
RESHAPE                        1          Operation is otherwise supported, but not mapped due to some unspecified limitation
RESHAPE                        5          Mapped to Edge TPU
ADD                            10         Mapped to Edge TPU
MUL                            80         Mapped to Edge TPU
CONV_2D                        62         Mapped to Edge TPU
Compilation child process completed within timeout period.
Compilation succeeded!
"""

# v16 stdout with -s -d (delegate search), every op mapped; the first line is yolov7's own print.
# From WongKinYiu/yolov7 pull request #1672. The stored copy of the thread ends inside the row
# after QUANTIZE, so the table is cut there; everything above is verbatim.
V16_ALL_MAPPED_D = """\
Edge TPU: starting export with Edge TPU compiler 16.0.384591198...
Edge TPU Compiler version 16.0.384591198
Searching for valid delegate with step 10
Try to compile segment with 246 ops
Started a compilation timeout timer of 180 seconds.

Model compiled successfully in 3133 ms.

Input model: runs/train/exp8/weights/best-int8.tflite
Input size: 6.00MiB
Output model: runs/train/exp8/weights/best-int8_edgetpu.tflite
Output size: 6.47MiB
On-chip memory used for caching model parameters: 5.90MiB
On-chip memory remaining for caching model parameters: 1.16MiB
Off-chip memory used for streaming uncached model parameters: 41.75KiB
Number of Edge TPU subgraphs: 1
Total number of operations: 246
Operation log: runs/train/exp8/weights/best-int8_edgetpu.log

Operator                       Count      Status

ADD                            3          Mapped to Edge TPU
RESHAPE                        6          Mapped to Edge TPU
MAX_POOL_2D                    4          Mapped to Edge TPU
CONCATENATION                  18         Mapped to Edge TPU
PAD                            4          Mapped to Edge TPU
LOGISTIC                       64         Mapped to Edge TPU
RESIZE_NEAREST_NEIGHBOR        2          Mapped to Edge TPU
QUANTIZE                       5          Mapped to Edge TPU
"""

# v16 stdout without -s (no table: "See the operation log file"), then that operation log file.
# Both from JinRhim/gitbook, readme/coral-tpu-train-efficientdet.md (trailing space as printed).
V16_STDOUT_NO_TABLE = """\
Edge TPU Compiler version 16.0.384591198
Started a compilation timeout timer of 180 seconds.

Model compiled successfully in 1524 ms.

Input model: efficientdet_coral_v2.tflite
Input size: 4.24MiB
Output model: efficientdet_coral_v2_edgetpu.tflite
Output size: 5.57MiB
On-chip memory used for caching model parameters: 4.21MiB
On-chip memory remaining for caching model parameters: 3.29MiB
Off-chip memory used for streaming uncached model parameters: 0.00B
Number of Edge TPU subgraphs: 1
Total number of operations: 267
Operation log: efficientdet_coral_v2_edgetpu.log

Model successfully compiled but not all operations are supported by the Edge TPU. A percentage of the model will instead run on the CPU, which is slower. If possible, consider updating your model to use only operations supported by the Edge TPU. For details, visit g.co/coral/model-reqs.
Number of operations that will run on Edge TPU: 264
Number of operations that will run on CPU: 3
See the operation log file for individual operation details.
Compilation child process completed within timeout period.
Compilation succeeded! 
"""
V16_OPLOG = """\
Edge TPU Compiler version 16.0.384591198
Input: efficientdet_coral_v2.tflite
Output: efficientdet_coral_v2_edgetpu.tflite

Operator                       Count      Status

ADD                            42         Mapped to Edge TPU
CUSTOM                         1          Operation is working on an unsupported data type
RESHAPE                        10         Mapped to Edge TPU
CONCATENATION                  2          Mapped to Edge TPU
RESIZE_NEAREST_NEIGHBOR        12         Mapped to Edge TPU
DEPTHWISE_CONV_2D              80         Mapped to Edge TPU
DEQUANTIZE                     2          Operation is working on an unsupported data type
CONV_2D                        102        Mapped to Edge TPU
QUANTIZE                       1          Mapped to Edge TPU
LOGISTIC                       1          Mapped to Edge TPU
MAX_POOL_2D                    14         Mapped to Edge TPU
"""

# v15 (or earlier) summary and table with an unsupported op splitting the graph; the issue quotes
# the output from the summary lines on. From google-coral/edgetpu issue #342.
V15_SPLIT = """\
Number of operations that will run on Edge TPU: 2
Number of operations that will run on CPU: 153

Operator                       Count      Status


TRANSPOSE                      70         Operation not supported
FULLY_CONNECTED                1          More than one subgraph is not supported
PAD                            1          Mapped to Edge TPU
PAD                            17         More than one subgraph is not supported
ADD                            10         More than one subgraph is not supported
MEAN                           2          More than one subgraph is not supported
CONV_2D                        35         More than one subgraph is not supported
QUANTIZE                       1          Mapped to Edge TPU
QUANTIZE                       1          Operation is otherwise supported, but not mapped due to some unspecified limitation
DEPTHWISE_CONV_2D              17         More than one subgraph is not supported
"""

# v14.1 operation log file. From rajansaini691/retinanet-model-tflite, tiny_yolo_edgetpu.log.
V14_OPLOG = """\
Edge TPU Compiler version 14.1.317412892
Input: tiny_yolo.tflite
Output: tiny_yolo_edgetpu.tflite

Operator                       Count      Status

CONCATENATION                  1          More than one subgraph is not supported
MAX_POOL_2D                    6          Mapped to Edge TPU
RESIZE_NEAREST_NEIGHBOR        1          Operation version not supported
CONV_2D                        11         Mapped to Edge TPU
CONV_2D                        2          More than one subgraph is not supported
QUANTIZE                       1          Operation is otherwise supported, but not mapped due to some unspecified limitation
QUANTIZE                       1          More than one subgraph is not supported
QUANTIZE                       2          Mapped to Edge TPU
"""

# v14.1 stdout tail where nothing maps (the issue quotes it from the warning on).
# From google-coral/edgetpu issue #219.
V14_NONE_MAPPED = """\
Model successfully compiled but not all operations are supported by the Edge TPU. A percentage of the model will instead run on the CPU, which is slower. If possible, consider updating your model to use only operations supported by the Edge TPU. For details, visit g.co/coral/model-reqs.
Number of operations that will run on Edge TPU: 0
Number of operations that will run on CPU: 2

Operator                       Count      Status

MUL                            1          Operation is otherwise supported, but not mapped due to some unspecified limitation
SPLIT                          1          Operation is otherwise supported, but not mapped due to some unspecified limitation
"""

# v2.0 operation log, every op mapped, as indented in guichristmann/edge-tpu-tiny-yolo README.md.
V2_OPLOG_ALL_MAPPED = """\
    Edge TPU Compiler version 2.0.267685300
    Input: quantized.tflite
    Output: quantized_edgetpu.tflite
    Operator                       Count      Status
    RESIZE_NEAREST_NEIGHBOR        1          Mapped to Edge TPU
    MAX_POOL_2D                    6          Mapped to Edge TPU
    CONCATENATION                  1          Mapped to Edge TPU
    QUANTIZE                       4          Mapped to Edge TPU
    CONV_2D                        13         Mapped to Edge TPU
"""

# Failures.
# google-coral/edgetpu issue #378 (the same two lines in #47, #157, #189, #211 with v2.0-v15).
V14_INTERNAL_ERROR = """\
edgetpu_compiler tiny_yolov4_540_960.tflite
Edge TPU Compiler version 14.1.317412892

Internal compiler error. Aborting!
"""
# tensorflow/tensorflow issue #46806 (the same in google-coral/edgetpu #168, #213, #313).
V15_NOT_QUANTIZED = """\
Edge TPU Compiler version 15.0.340273435
Invalid model: heehoo.tflite
Model not quantized
"""
# google-coral/edgetpu issue #829.
V16_DYNAMIC_SHAPES = """\
Edge TPU Compiler version 16.0.384591198
Started a compilation timeout timer of 180 seconds.
ERROR: Attempting to use a delegate that only supports static-sized tensors with a graph that has dynamic-sized tensors.
Compilation failed: Model failed in Tflite interpreter. Please ensure model can be loaded/run in Tflite interpreter.
Compilation child process completed within timeout period.
Compilation failed! 
"""
# google-coral/edgetpu issue #512 (quoted there with '> '; yolov5's own lines left out).
V16_LARGE_ACTIVATIONS = """\
Edge TPU Compiler version 16.0.384591198
Started a compilation timeout timer of 180 seconds.
ERROR: Restored original execution plan after delegate application failure.
Compilation failed: Compilation failed due to large activation tensors in model.
Compilation child process completed within timeout period.
Compilation failed! 
"""
# google-coral/edgetpu issue #800 (an LSTM model; the compiler says nothing more).
V16_BARE_FAILURE = """\
Edge TPU Compiler version 16.0.384591198
Started a compilation timeout timer of 180 seconds.
Compilation child process completed within timeout period.
Compilation failed!
"""


@pytest.mark.parametrize(
    "text, version, rows, on_tpu, total, subgraphs, fully, error_has",
    [
        # v16 -s: the common case, a few QUANTIZE/RESHAPE/TRANSPOSE rows left on the CPU
        pytest.param(V16_PARTIAL_S, "16.0.384591198", 17, 289, 294, 2, False, None, id="v16-partial-s"),
        # v16 -d: delegate-search preamble before the result; all rows mapped
        pytest.param(V16_ALL_MAPPED_D, "16.0.384591198", 8, 106, 106, 1, True, None, id="v16-all-mapped-d"),
        # v16 without -s: success, subgraph count, but no table in stdout
        pytest.param(V16_STDOUT_NO_TABLE, "16.0.384591198", 0, 0, 0, 1, False, None, id="v16-stdout-no-table"),
        # v16 operation log file: no success line (it is not stdout), CUSTOM/DEQUANTIZE on CPU
        pytest.param(V16_OPLOG, "16.0.384591198", 11, 264, 267, None, False, None, id="v16-oplog"),
        # v15: an unsupported op early sends the rest of the graph to the CPU; blank lines twice
        pytest.param(V15_SPLIT, "", 10, 2, 155, None, False, None, id="v15-split"),
        # v14 operation log with "Operation version not supported"
        pytest.param(V14_OPLOG, "14.1.317412892", 8, 19, 25, None, False, None, id="v14-oplog"),
        # v14: compiled, but nothing maps
        pytest.param(V14_NONE_MAPPED, "", 2, 0, 2, None, False, None, id="v14-none-mapped"),
        # v2.0 operation log, indented, no blank line after the header
        pytest.param(V2_OPLOG_ALL_MAPPED, "2.0.267685300", 5, 25, 25, None, True, None, id="v2-oplog-all-mapped"),
        # failures: error text carries the compiler's words and a next step
        pytest.param(V14_INTERNAL_ERROR, "14.1.317412892", 0, 0, 0, None, False, "Internal compiler error. Aborting!", id="v14-internal-error"),
        pytest.param(V15_NOT_QUANTIZED, "15.0.340273435", 0, 0, 0, None, False, "Model not quantized", id="v15-not-quantized"),
        pytest.param(V16_DYNAMIC_SHAPES, "16.0.384591198", 0, 0, 0, None, False, "dynamic-sized tensors", id="v16-dynamic-shapes"),
        pytest.param(V16_LARGE_ACTIVATIONS, "16.0.384591198", 0, 0, 0, None, False, "large activation tensors", id="v16-large-activations"),
        pytest.param(V16_BARE_FAILURE, "16.0.384591198", 0, 0, 0, None, False, "Compilation failed!", id="v16-bare-failure"),
    ],
)
def test_parse_log_real_formats(text, version, rows, on_tpu, total, subgraphs, fully, error_has):
    report = parse_log(text)
    assert report.compiler_version == version
    assert len(report.ops) == rows
    assert report.tpu_op_count == on_tpu
    assert report.total_op_count == total
    assert report.subgraphs_on_tpu == subgraphs
    assert report.fully_mapped is fully
    assert report.compiled_path is None and report.log == text
    if error_has is None:
        assert report.error == ""
    else:
        assert error_has in report.error
        assert not report.ok


def test_parse_log_rows_keep_order_and_status():
    report = parse_log(V16_PARTIAL_S)
    assert report.ops[:2] == (
        OpMapping("RESIZE_NEAREST_NEIGHBOR", 2, "Mapped to Edge TPU"),
        OpMapping(
            "CONCATENATION", 1,
            "Operation is otherwise supported, but not mapped due to some unspecified limitation",
        ),
    )
    assert [(o.op, o.count) for o in report.cpu_ops] == [
        ("CONCATENATION", 1), ("TRANSPOSE", 1), ("QUANTIZE", 2), ("RESHAPE", 1)]
    assert report.mapped_fraction == pytest.approx(289 / 294)


def test_failure_errors_name_the_cause_and_next_step():
    # "Compilation failed!" only repeats the specific line, so it is dropped when there is one
    err = parse_log(V16_DYNAMIC_SHAPES).error
    assert err.startswith("ERROR: Attempting to use a delegate")
    assert "Compilation failed: Model failed in Tflite interpreter." in err
    assert "Compilation failed!" not in err
    assert "fixed input shape" in err
    assert "fully int8-quantized" in parse_log(V15_NOT_QUANTIZED).error
    assert "Invalid model: heehoo.tflite" in parse_log(V15_NOT_QUANTIZED).error


@pytest.mark.parametrize(
    "text",
    [
        "",  # nothing printed
        "   \n\n",
        "Segmentation fault (core dumped)",
        "\x00\x01\xff binary \ufffd garbage",
        "Operator Count Status\nnot a row\nCONV_2D lots Mapped",  # a header, then no rows
        V16_PARTIAL_S[:700],  # cut off mid-run: version, no result yet
        "Operator                       Count      Status\n\nCONV_2D 99999999999999999999 Mapped to Edge TPU",
    ],
)
def test_parse_log_never_raises_on_odd_text(text):
    report = parse_log(text)
    assert isinstance(report, EdgeTpuReport)
    report.markdown()  # renders too


def test_parse_log_reports_text_that_is_not_a_compiler_log():
    assert "printed nothing" in parse_log("").error
    assert "no Edge TPU compiler result" in parse_log("Segmentation fault (core dumped)").error


def test_markdown_partial():
    md = parse_log(V16_PARTIAL_S).markdown()
    assert "| op | count | on TPU? | reason |" in md
    assert "| CONV_2D | 62 | yes |  |" in md
    assert ("| QUANTIZE | 2 | no | Operation is otherwise supported, but not mapped due to some "
            "unspecified limitation |") in md
    assert "**Verdict:** 289 of 294 ops (98.3%) run on the Edge TPU in 2 Edge TPU subgraphs" in md
    assert "compiler 16.0.384591198" in md
    assert "shape or size" in md  # the hint for "otherwise supported ... unspecified limitation"


@pytest.mark.parametrize(
    "text, verdict",
    [
        (V2_OPLOG_ALL_MAPPED, "All 25 ops run on the Edge TPU"),
        (V14_NONE_MAPPED, "None of the 2 ops runs on the Edge TPU"),
        (V16_STDOUT_NO_TABLE, "no per-op table"),
        (V14_INTERNAL_ERROR, "Not compiled for the Edge TPU (compiler 14.1.317412892): Internal compiler error"),
    ],
)
def test_markdown_verdicts(text, verdict):
    assert verdict in parse_log(text).markdown()


# --------------------------------------------------------------------------- compile_model


@pytest.fixture
def int8_model(tmp_path) -> Path:
    # The fake compiler never reads it; the real one would need a full-int8 .tflite.
    path = tmp_path / "model_int8.tflite"
    path.write_bytes(b"\x1c\x00\x00\x00TFL3 placeholder")
    return path


FAKE_COMPILER = """\
#!/bin/sh
# Stands in for Coral's edgetpu_compiler, which this machine cannot install (an x86_64 Debian
# package from Coral's own apt repository, not on PyPI). Prints a canned log and writes what the
# real compiler writes into --out_dir.
here=$(dirname "$0")
printf '%s\\n' "$@" > "$here/argv.txt"
out=.
while [ $# -gt 1 ]; do
  case "$1" in
    --out_dir|-o) out=$2; shift 2 ;;
    *) shift ;;
  esac
done
model=$1
stem=$(basename "$model" .tflite)
cat "$here/stdout.txt"
if [ -f "$here/oplog.txt" ]; then cp "$here/oplog.txt" "$out/${stem}_edgetpu.log"; fi
if [ -f "$here/write_model" ]; then cp "$model" "$out/${stem}_edgetpu.tflite"; fi
if [ -f "$here/hang" ]; then sleep 30 & echo $! > "$here/child.pid"; wait; fi
exit $(cat "$here/rc")
"""


@pytest.fixture
def fake_compiler(tmp_path, monkeypatch):
    """``fake_compiler(stdout, rc=0, write_model=True, oplog=None, hang=False) -> bin dir``:
    puts a fake ``edgetpu_compiler`` first on PATH."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()

    def make(stdout: str, rc: int = 0, write_model: bool = True, oplog: str | None = None,
             hang: bool = False) -> Path:
        script = bin_dir / "edgetpu_compiler"
        script.write_text(FAKE_COMPILER)
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        (bin_dir / "stdout.txt").write_text(stdout)
        (bin_dir / "rc").write_text(str(rc))
        if write_model:
            (bin_dir / "write_model").touch()
        if oplog is not None:
            (bin_dir / "oplog.txt").write_text(oplog)
        if hang:
            (bin_dir / "hang").touch()
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
        return bin_dir

    return make


def test_compile_model_without_compiler(tmp_path, monkeypatch, int8_model):
    empty = tmp_path / "empty_bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # a PATH with no edgetpu_compiler on it
    assert find_compiler() is None
    report = compile_model(int8_model, tmp_path / "out")
    assert report.compiled_path is None
    assert "edgetpu_compiler is not installed" in report.error
    assert INSTALL_HINT in report.error
    assert "edgetpu-compiler" in INSTALL_HINT and "x86_64" in INSTALL_HINT
    assert not (tmp_path / "out").exists()  # nothing made when nothing can run
    assert "Not compiled" in report.markdown()


def test_compile_model_with_fake_compiler(tmp_path, fake_compiler, int8_model):
    bin_dir = fake_compiler(V16_PARTIAL_S)
    out = tmp_path / "out"
    report = compile_model(int8_model, out)
    assert report.error == ""
    assert report.compiled_path == out.resolve() / "model_int8_edgetpu.tflite"
    assert report.compiled_path.read_bytes() == int8_model.read_bytes()
    assert report.compiler_version == "16.0.384591198"
    assert report.subgraphs_on_tpu == 2
    assert (report.tpu_op_count, report.total_op_count) == (289, 294)
    assert (bin_dir / "argv.txt").read_text().split("\n")[:-1] == [
        "--show_operations", "--out_dir", str(out.resolve()), str(int8_model.resolve())]
    assert find_compiler() == str(bin_dir / "edgetpu_compiler")


def test_compile_model_reads_operation_log_when_stdout_has_no_table(tmp_path, fake_compiler, int8_model):
    fake_compiler(V16_STDOUT_NO_TABLE, oplog=V16_OPLOG)
    report = compile_model(int8_model, tmp_path / "out")
    assert report.ok and report.compiled_path is not None
    assert (report.tpu_op_count, report.total_op_count) == (264, 267)
    assert [o.op for o in report.cpu_ops] == ["CUSTOM", "DEQUANTIZE"]
    assert report.log == V16_STDOUT_NO_TABLE


def test_compile_model_internal_compiler_error(tmp_path, fake_compiler, int8_model):
    fake_compiler(V14_INTERNAL_ERROR, rc=1, write_model=False)
    report = compile_model(int8_model, tmp_path / "out")
    assert report.compiled_path is None
    assert report.error.startswith("edgetpu_compiler exited with status 1: Internal compiler error. Aborting!")
    assert report.error.rstrip().endswith("Internal compiler error. Aborting!")  # the log tail
    assert report.compiler_version == "14.1.317412892"
    md = report.markdown()  # the log tail goes into a code block, not the verdict line
    assert md.startswith("**Verdict:** Not compiled for the Edge TPU") and "\n```\n" in md


def test_compile_model_failure_with_exit_zero_and_no_output_file(tmp_path, fake_compiler, int8_model):
    fake_compiler(V16_PARTIAL_S, rc=0, write_model=False)
    report = compile_model(int8_model, tmp_path / "out")
    assert report.compiled_path is None
    assert "exited 0 but did not write" in report.error
    assert report.total_op_count == 294  # what was parsed is kept


def test_compile_model_timeout_stops_the_compiler_and_its_children(tmp_path, fake_compiler, int8_model):
    bin_dir = fake_compiler("Edge TPU Compiler version 16.0.384591198\n", hang=True, write_model=False)
    start = time.monotonic()
    report = compile_model(int8_model, tmp_path / "out", timeout_s=0.5)
    assert time.monotonic() - start < 5
    assert report.compiled_path is None
    assert "did not finish within 0.5 s" in report.error
    assert report.compiler_version == "16.0.384591198"
    child = int((bin_dir / "child.pid").read_text())
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    """Running (a zombie awaiting its reaper counts as stopped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_compile_model_compiler_that_will_not_start(tmp_path, monkeypatch, int8_model):
    bin_dir = tmp_path / "badbin"
    bin_dir.mkdir()
    bad = bin_dir / "edgetpu_compiler"
    bad.write_bytes(b"\x7fELF\x02\x01\x01 not really an executable")
    bad.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    report = compile_model(int8_model, tmp_path / "out")
    assert report.compiled_path is None
    assert "could not be started" in report.error and INSTALL_HINT in report.error


def test_compile_model_missing_input_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="int8 .tflite"):
        compile_model(tmp_path / "nope.tflite", tmp_path / "out")


def test_reports_are_frozen():
    report = parse_log(V16_PARTIAL_S)
    with pytest.raises(AttributeError):
        report.error = "x"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        report.ops[0].count = 1  # type: ignore[misc]
    assert edgetpu.OpMapping("X", 1, "Mapped to Edge TPU").mapped
