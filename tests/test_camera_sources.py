"""Sources by one string: real files decoded by OpenCV, one-line errors for everything else."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from apps.camera.sources import SourceError, open_source, parse_source

cv2 = pytest.importorskip("cv2")
DATA = "/usr/share/doc/opencv-doc/examples/data"


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in (2, 0, 1):  # written out of order: read back sorted by name
        cv2.imwrite(str(folder / f"img_{i}.png"), np.full((20 + i, 30, 3), i * 50, np.uint8))
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.mark.parametrize("text, kind, live", [
    ("0", "camera", True),
    ("rtsp://10.0.0.5:8554/cam", "stream", True),
    ("http://127.0.0.1:8080/video.mjpg", "stream", True),
    (f"{DATA}/vtest.avi", "video", False),
    (f"{DATA}/fruits.jpg", "images", False),
])
def test_kinds(text, kind, live):
    spec = parse_source(text)
    assert (spec.kind, spec.live) == (kind, live)


def test_folder_and_glob_give_images_in_name_order(images):
    for text in (str(images), str(images / "*.png")):
        with open_source(text) as source:
            frames = []
            while (frame := source.read()) is not None:
                frames.append(frame)
        assert [f.name.rsplit("/", 1)[1] for f in frames] == ["img_0.png", "img_1.png", "img_2.png"]
        assert [f.index for f in frames] == [0, 1, 2] and frames[2].image.shape == (22, 30, 3)


@pytest.mark.parametrize("text, message", [
    ("", "--source is empty"),
    ("/nonexistent/clip.mp4", "no such file, folder, camera index or URL"),
    ("/dev/video99", "no such camera device"),
    ("/nonexistent/*.jpg", "matches no image files"),
])
def test_unreadable_sources_are_one_line_errors(text, message):
    with pytest.raises(SourceError, match=message) as info:
        parse_source(text)
    assert "\n" not in str(info.value)


def test_empty_folder_and_non_video_file(tmp_path):
    with pytest.raises(SourceError, match="holds no image files"):
        parse_source(str(tmp_path))
    bogus = tmp_path / "clip.mp4"
    bogus.write_bytes(b"this is not a video" * 100)
    with pytest.raises(SourceError, match=r"clip.mp4: cannot be opened; expected a video file OpenCV can decode"):
        open_source(str(bogus))


def test_an_unreadable_image_in_a_folder_is_skipped_counted_and_named(images):
    (images / "img_1.png").write_bytes(b"garbage")
    notes = []
    with open_source(str(images)) as source:
        source.on_note(notes.append)
        names = []
        while (frame := source.read()) is not None:
            names.append((frame.index, Path(frame.name).name))
    assert names == [(0, "img_0.png"), (2, "img_2.png")]  # indexes stay the files' positions
    assert source.skipped == 1
    assert len(notes) == 1 and "img_1.png: not an image OpenCV can read (1 skipped so far)" in notes[0]
    # looping: the bad file is passed over on every round, but counted and named once
    with open_source(str(images), loop=True) as source:
        source.on_note(notes.append)
        frames = [source.read() for _ in range(6)]
    assert [Path(f.name).name for f in frames] == ["img_0.png", "img_2.png"] * 3
    assert source.skipped == 1 and len(notes) == 2


def test_a_folder_of_nothing_readable_and_an_unreadable_image_file_are_errors(images, tmp_path):
    for path in images.glob("*.png"):
        path.write_bytes(b"garbage")
    with open_source(str(images)) as source, pytest.raises(SourceError, match="none of its 3 images is one OpenCV can read"):
        source.read()
    with open_source(str(images / "img_0.png")) as source, pytest.raises(SourceError, match="img_0.png is not an image"):
        source.read()


def test_video_file_gives_every_frame_in_order_and_ends():
    """tree.avi's header claims 444 frames; 68 decode. The end of the file ends the source."""
    with open_source(f"{DATA}/tree.avi") as source:
        n = 0
        while (frame := source.read()) is not None:
            assert frame.index == n
            n += 1
    assert 60 <= n < 444 and source.reconnects == 0


def test_loop_replays_files_and_folders(images):
    with open_source(f"{DATA}/tree.avi", loop=True) as source:
        frames = [source.read() for _ in range(150)]  # 68 decode per pass
    assert all(f is not None for f in frames) and source.loops == 2 and frames[-1].index == 149
    np.testing.assert_array_equal(frames[0].image, frames[68].image)
    with open_source(str(images), loop=True) as source:
        names = [source.read().name.rsplit("/", 1)[1] for _ in range(7)]
    assert names == ["img_0.png", "img_1.png", "img_2.png"] * 2 + ["img_0.png"]
    with pytest.raises(SourceError, match="--loop replays files"):
        open_source("rtsp://127.0.0.1:1/x", loop=True)
