"""Writing converted models: atomically, and never over an existing file without ``force``."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


class OutputExistsError(FileExistsError):
    """An output file exists and ``--force`` was not given."""


def usual_permissions(path: Path | str) -> None:
    """Give a file or folder made by ``tempfile.mkstemp``/``mkdtemp`` (0600/0700, private) the
    permissions an ordinary one gets under the process's umask, before it is moved into place."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~umask)


def check_writable(paths: list[Path], force: bool) -> None:
    """Fail before any work starts if an output exists (nothing is lost, nothing half-done)."""
    existing = [str(p) for p in paths if p.exists()]
    if existing and not force:
        raise OutputExistsError(
            f"output file(s) already exist: {', '.join(existing)}. Pass --force to overwrite them, "
            "or choose another --out directory"
        )


def write_atomic(path: Path, data: bytes | str, force: bool = False) -> Path:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place: a reader
    sees the old file or the whole new one, never a partial write."""
    path = Path(path)
    if path.exists() and not force:
        raise OutputExistsError(f"{path} already exists; pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        usual_permissions(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
