"""`edgepilot detect` through main(argv) and the Python API, on real video and images."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from edgepilot.cli import main

cv2 = pytest.importorskip("cv2")

SUMMARY_KEYS = {"frames", "dropped", "fps", "resize", "decoder", "reconnects", "latency_ms_p50", "latency_ms_p99"}


@pytest.fixture(scope="module")
def model(asset):
    return str(asset("blazeface_short_range.tflite"))


def lines(capsys):
    captured = capsys.readouterr()
    return [json.loads(line) for line in captured.out.splitlines()], captured.err


def test_json_frames_events_summary_and_saved_video(model, face_video, tmp_path, capsys):
    out = tmp_path / "annotated.mp4"
    assert main(["detect", model, "--source", str(face_video), "--json", "--save", str(out)]) == 0
    rows, err = lines(capsys)
    frames, summary = rows[:-1], rows[-1]["summary"]
    assert [r["frame"] for r in frames] == list(range(45))  # a file: every frame, in order
    for r in frames[:30]:
        (face,) = r["detections"]
        assert face["label"] == "face" and face["class_id"] == 0 and 0.5 <= face["score"] <= 1
        x1, y1, x2, y2 = face["box"]
        assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 480 and len(face["keypoints"]) == 6
    assert all(r["detections"] == [] for r in frames[30:])
    events = [(e["event"], e["track_id"], e["frame"]) for r in frames for e in r.get("events", [])]
    assert events == [("appear", 1, 2), ("leave", 1, 40)]  # confirmed after 3 frames, gone after 10 missed
    assert SUMMARY_KEYS <= set(summary)
    assert (summary["frames"], summary["dropped"], summary["reconnects"]) == (45, 0, 0)
    assert (summary["resize"], summary["decoder"], summary["stopped"]) == ("letterbox", "blazeface", "end")
    assert summary["detections"] == {"face": 30} and summary["tracks"] == 1 and summary["fps"] > 0
    assert summary["saved"] == str(out)
    video = cv2.VideoCapture(str(out))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 45
    ok, first = video.read()
    assert ok and first.shape == (480, 640, 3)
    assert "45 frames" in err  # progress on stderr only


def test_image_folder_and_max_frames(model, tmp_path, capsys):
    from skimage import data

    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.jpg"), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    assert main(["detect", model, "--source", str(tmp_path), "--json", "--max-frames", "2", "--quiet"]) == 0
    rows, err = lines(capsys)
    assert [r["file"].rsplit("/", 1)[1] for r in rows[:-1]] == ["0.jpg", "1.jpg"]
    assert rows[-1]["summary"]["stopped"] == "max_frames" and err == ""
    # an unreadable image is skipped and counted; the run goes on to its summary
    (tmp_path / "1.jpg").write_bytes(b"not a jpeg")
    assert main(["detect", model, "--source", str(tmp_path), "--json"]) == 0
    rows, err = lines(capsys)
    assert [r["file"].rsplit("/", 1)[1] for r in rows[:-1]] == ["0.jpg", "2.jpg"]
    assert rows[-1]["summary"]["skipped"] == 1 and rows[-1]["summary"]["frames"] == 2
    assert "1.jpg: not an image OpenCV can read" in err and "1 unreadable images skipped" in err


@pytest.mark.parametrize("args, message", [
    (["--source", "/nonexistent.mp4"], "--source /nonexistent.mp4: no such file"),
    (["--source", "0", "--show"], "--show needs a display"),
    (["--source", "IMAGES", "--score", "1.5"], "--score must lie in [0, 1]"),
    (["--source", "IMAGES", "--serve", "localhost"], "expected HOST:PORT"),
    (["--source", "IMAGES", "--mqtt", "tcp://x/y"], "expected mqtt://HOST[:PORT]/TOPIC"),
    (["--source", "IMAGES", "--save", "out.gif"], "expected a video file ending in"),
    (["--source", "IMAGES", "--streams", "0"], "--streams must be a positive integer or 'auto', got 0"),
])
def test_errors_are_one_line_and_exit_1(model, tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "IMAGES").mkdir()
    cv2.imwrite(str(tmp_path / "IMAGES" / "a.png"), np.zeros((8, 8, 3), np.uint8))
    if "--show" in args:  # no camera here: the display check must come first, so use the images
        args = ["--source", "IMAGES", "--show"]
    assert main(["detect", model, *args]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("edgepilot detect: error:") and message in err[0]


def test_two_streams_give_the_same_rows_in_the_same_order(model, face_video, capsys):
    def rows(streams):
        assert main(["detect", model, "--source", str(face_video), "--json", "--quiet", "--streams", streams]) == 0
        out, _ = lines(capsys)
        for row in out[:-1]:  # leave out the fields that depend on timing
            del row["latency_ms"], row["t"]
            for event in row.get("events", []):
                event.pop("t", None), event.pop("duration_s", None)
        return out[:-1], out[-1]["summary"]

    one, summary_one = rows("1")
    two, summary_two = rows("2")
    auto, summary_auto = rows("auto")
    assert len(two) == 45 and two == one == auto  # detections, track ids and events frame by frame
    assert (summary_one["streams"], summary_two["streams"]) == (1, 2)
    assert summary_two["frames"] == 45 and summary_two["dropped"] == 0
    # a number asked for leaves nothing to explain; auto says what it did (45 frames: too few to measure)
    assert summary_one["streams_auto"] is None and summary_two["streams_auto"] is None
    assert summary_auto["streams_auto"] == f"auto: {summary_auto['streams']} (too few frames to measure)"


def test_save_refuses_to_overwrite_without_force(model, face_video, tmp_path, capsys):
    out = tmp_path / "o.mp4"
    out.write_bytes(b"keep me")
    assert main(["detect", model, "--source", str(face_video), "--save", str(out), "--quiet"]) == 1
    assert out.read_bytes() == b"keep me" and "--force" in capsys.readouterr().err
    assert main(["detect", model, "--source", str(face_video), "--save", str(out), "--force", "--max-frames", "3",
                 "--quiet"]) == 0
    assert out.stat().st_size > 1000 and not list(tmp_path.glob(".o.*"))  # no temporary file left
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # as any file the user writes, not private to them


def test_missing_model_names_it(tmp_path, face_video, capsys):
    assert main(["detect", str(tmp_path / "none.tflite"), "--source", str(face_video)]) == 1
    assert "none.tflite: no such model file" in capsys.readouterr().err


def test_python_api(model, face_video):
    from apps.camera import DetectOptions, RunSummary, detect_stream, run

    summary = run(model, str(face_video), DetectOptions(max_frames=10, progress=False))
    assert isinstance(summary, RunSummary) and summary.frames == 10 and summary.decoder == "blazeface"
    results = list(detect_stream(model, str(face_video), track=True))
    assert len(results) == 45 and results[2].events[0].event == "appear"
    assert results[5].detections.track_ids.tolist() == [1]


def test_detect_runs_without_importing_tensorflow(model, face_video):
    """Apps use edge_runtime only: a whole run in a fresh interpreter imports no TensorFlow."""
    import subprocess
    import sys

    code = ("import sys; from edgepilot.cli import main; "
            f"rc = main(['detect', {model!r}, '--source', {str(face_video)!r}, '--max-frames', '5', '--quiet']); "
            "assert rc == 0; assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TF imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_a_camera_index_without_a_camera_is_one_line(model, capfd):
    """No camera on this machine (checked, not assumed): the index fails cleanly, without
    OpenCV's own warnings on the terminal."""
    import os

    if os.path.exists("/dev/video0"):
        pytest.skip("a camera is attached here: /dev/video0 exists")
    assert main(["detect", model, "--source", "0"]) == 1
    err = capfd.readouterr().err  # the process's own stderr, where OpenCV's C++ warnings would go
    assert "edgepilot detect: error: --source 0: cannot be opened; expected a camera OpenCV can open (V4L2)\n" in err
    assert "WARN" not in err


def test_streams_takes_a_number_or_auto(model, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["detect", model, "--source", "x.mp4", "--streams", "two"])
    assert stopped.value.code == 2
    assert "argument --streams: expected a positive integer or 'auto', got 'two'" in capsys.readouterr().err


def test_pin_no_pin_and_the_default_say_what_was_done(model, face_video, capsys):
    """--no-pin never pins; the default pins only while --streams auto runs one stream; --pin
    also with --streams 1. The summary's pinning says which."""
    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("pinning needs Linux and two usable CPUs")
    last = max(os.sched_getaffinity(0))

    def pinning(*options):
        assert main(["detect", model, "--source", str(face_video), "--json", "--quiet", *options]) == 0
        return lines(capsys)[0][-1]["summary"]["pinning"]

    assert pinning() == f"auto: inference on CPU {last}; capture, prepare and decoding on CPU " \
        f"{','.join(map(str, sorted(os.sched_getaffinity(0) - {last})))} while one stream runs"
    assert pinning("--no-pin") == "not requested"
    assert pinning("--streams", "1") == "not requested"
    assert pinning("--streams", "1", "--pin").startswith(f"inference on CPU {last}; ")
