"""Class names from a label file (``edgepilot detect --labels FILE``), for a model that carries
none or the wrong ones.

The formats in use, one class per line:

* one name per line, the line number being the class id (Darknet's ``coco.names``, TensorFlow's
  ``labelmap.txt``);
* ``ID NAME`` or ``ID: NAME`` per line (pycoral's ``coco_labels.txt``), ids in any order, gaps
  allowed (an id without a line has no name: ``label`` null).

``???`` is TensorFlow's placeholder for an id without a class. As the first line of a plain list
it is the background class of TF1's SSD models, whose post-processing op numbers the real classes
from 0 without it (TensorFlow Lite's object detection examples skip it the same way: "label
offset 1"), so it is dropped there; elsewhere it marks an unused id and reads as no name. Blank
lines at the end are ignored; a blank line between names is an error, since it would shift
every id after it.
"""
from __future__ import annotations

import re
from pathlib import Path

MAX_BYTES = 1 << 20  # a label file is a few KB
UNUSED = "???"
_ID_LINE = re.compile(r"^(\d+)\s*[:,]?\s+(\S.*)$|^(\d+):(\S.*)$")


class LabelFileError(ValueError):
    """A label file that cannot be read as class names; the message names the file and line."""


def read_labels(path) -> tuple[str | None, ...]:
    """Class names by id from ``path`` (see the module text); None where an id has no name."""
    path = Path(path)
    if not path.is_file():
        raise LabelFileError(f"--labels {path}: no such file (expected a text file of class names)")
    try:
        if path.stat().st_size > MAX_BYTES:
            raise LabelFileError(f"--labels {path}: {path.stat().st_size} bytes; a label file is one class name per "
                                 f"line (at most {MAX_BYTES} bytes)")
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelFileError(f"--labels {path}: cannot be read as UTF-8 text ({exc})") from None
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise LabelFileError(f"--labels {path}: no class names (expected one per line)")
    matches = [_ID_LINE.match(line) for line in lines]
    if all(matches):
        return _with_ids(path, matches)
    for number, line in enumerate(lines, 1):
        if not line:
            raise LabelFileError(f"--labels {path}: line {number} is empty; each line names the class whose id is "
                                 "the line's number, so a blank line would shift every id after it")
    if lines[0] == UNUSED:
        lines = lines[1:]
    return tuple(None if line == UNUSED else line for line in lines)


def _with_ids(path: Path, matches) -> tuple[str | None, ...]:
    names: dict[int, str] = {}
    for number, match in enumerate(matches, 1):
        class_id = int(match.group(1) or match.group(3))
        name = (match.group(2) or match.group(4)).strip()
        if class_id in names:
            raise LabelFileError(f"--labels {path}: line {number} gives class {class_id} a second name ({name!r} "
                                 f"after {names[class_id]!r})")
        names[class_id] = name
    if max(names) > 100_000:
        raise LabelFileError(f"--labels {path}: class id {max(names)} is not a class id (expected 0 to a few thousand)")
    return tuple(None if names.get(i, UNUSED) == UNUSED else names[i] for i in range(max(names) + 1))


def check_count(labels, classes: int | None, source: str, model: str) -> None:
    """ValueError when the model says how many classes it has and ``labels`` names another number."""
    if classes is not None and len(labels) != classes:
        raise LabelFileError(f"--labels {source}: {len(labels)} class names, but {model} has {classes} classes")
