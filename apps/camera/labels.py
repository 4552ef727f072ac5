"""Class names from a label file (``edgepilot detect --labels FILE``), for a model that carries
none or the wrong ones.

The formats in use, one class per line:

* one name per line, the line number being the class id (Darknet's ``coco.names``, TensorFlow's
  ``labelmap.txt``);
* ``ID NAME``, ``ID: NAME`` or ``ID,NAME`` per line (pycoral's ``coco_labels.txt``), ids in any
  order, gaps allowed (an id without a line has no name: ``label`` null). A file is read this way
  when every line has that form. An id or a name given twice is then an error rather than a
  guess (``1 cent``, ``5 cent``, ``10 cent`` may be names: number such lines, ``0 1 cent``);
  where most lines have the form and some do not, the first that does not is an error.

Lines starting with ``#`` before the first name are a header and skipped, as are blank lines at
the end (and anywhere in an ``ID NAME`` file). A blank line between the names of a plain list is
an error, since it would shift every id after it.

``???`` is TensorFlow's placeholder for an id without a class. As the first line of a plain list
it is the background class of TF1's SSD models, whose post-processing op numbers the real classes
from 0 without it (TensorFlow Lite's object detection examples skip it the same way: "label
offset 1"), so it is dropped there; elsewhere it marks an unused id and reads as no name.
"""
from __future__ import annotations

import re
from pathlib import Path

MAX_BYTES = 1 << 20  # a label file is a few KB
UNUSED = "???"
_ID_LINE = re.compile(r"^(\d+)\s*(?:[:,]\s*|\s+)(\S.*)$")


class LabelFileError(ValueError):
    """A label file that cannot be read as class names; the message names the file and line."""


def read_labels(path) -> tuple[str | None, ...]:
    """Class names by id from the file ``path`` (see the module text); None where an id has no name."""
    path = Path(path)
    return parse_labels(_text(path), f"--labels {path}")


def parse_labels(text: str, where: str) -> tuple[str | None, ...]:
    """Class names by id from a label file's ``text``; ``where`` begins each error message."""
    lines = _lines(text, where)
    matches = [(number, _ID_LINE.match(line)) for number, line in lines if line]
    matched = [(number, m) for number, m in matches if m]
    if matched and len(matched) == len(matches):
        return _with_ids(where, matched)
    if 2 * len(matched) > len(matches):
        number = next(number for number, m in matches if m is None)
        raise LabelFileError(f"{where}: line {number} is not 'ID NAME' like the other lines; write every "
                             "line as ID NAME, or one plain name per line")
    for number, line in lines:
        if not line:
            raise LabelFileError(f"{where}: line {number} is empty; each line names the class whose id is "
                                 "the line's number, so a blank line would shift every id after it")
    plain = [line for _, line in lines]
    if plain[0] == UNUSED:
        plain = plain[1:]
    if not plain:
        raise LabelFileError(f"{where}: no class names (only the ??? background line)")
    return tuple(None if line == UNUSED else line for line in plain)


def _with_ids(where: str, matched) -> tuple[str | None, ...]:
    """Names by id from ``(line number, match)`` pairs. An id or a name given twice means the
    numbers may belong to the names (``1 cent``, ``5 cent``): an error, never a guess."""
    by_id: dict[int, str] = {}
    for number, match in matched:
        class_id, name = int(match.group(1)), match.group(2).strip()
        twice = (f"class id {class_id}" if class_id in by_id else
                 f"the name {name!r}" if name != UNUSED and name in by_id.values() else None)
        if twice:
            raise LabelFileError(f"{where}: line {number} gives {twice} a second time; if the numbers "
                                 "belong to the names, number the lines: '0 1 cent', '1 5 cent', ...")
        by_id[class_id] = name
    if max(by_id) > 100_000:
        raise LabelFileError(f"{where}: class id {max(by_id)} is not a class id (expected 0 to a few thousand)")
    return tuple(None if by_id.get(i, UNUSED) == UNUSED else by_id[i] for i in range(max(by_id) + 1))


def _text(path: Path) -> str:
    if not path.is_file():
        raise LabelFileError(f"--labels {path}: no such file (expected a text file of class names)")
    try:
        if path.stat().st_size > MAX_BYTES:
            raise LabelFileError(f"--labels {path}: {path.stat().st_size} bytes; a label file is one class name per "
                                 f"line (at most {MAX_BYTES} bytes)")
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelFileError(f"--labels {path}: cannot be read as UTF-8 text ({exc})") from None


def _lines(text: str, where: str) -> list[tuple[int, str]]:
    """(line number, stripped text), without a ``#`` header and trailing blank lines."""
    lines = [(number, line.strip()) for number, line in enumerate(text.lstrip("\ufeff").splitlines(), 1)]
    while lines and (not lines[0][1] or lines[0][1].startswith("#")):
        lines.pop(0)
    while lines and not lines[-1][1]:
        lines.pop()
    if not lines:
        raise LabelFileError(f"{where}: no class names (expected one per line)")
    return lines


def check_count(labels, classes: int | None, source: str | None, model: str) -> None:
    """LabelFileError when the model's outputs say how many classes there are and ``labels``
    (read from the file ``source``, or given in Python: None) names another number."""
    if classes is None or len(labels) == classes:
        return
    if source is not None:
        where = f"--labels {source}"
        skipped = _lines(_text(Path(source)), where)[0][1] == UNUSED
        note = " (its leading ??? line, TF1 SSD's background class, is not counted)" if skipped else ""
    else:
        where, note = "labels", ""
    raise LabelFileError(f"{where}: {len(labels)} class names{note}, but {model} has {classes} classes")
