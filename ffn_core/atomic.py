"""Atomic file writes: every file the package writes appears whole or not at all.

One helper for checkpoints, exported models, metrics, configs, the synthetic videos and the decoded
video cache: the content goes to a temporary file in the destination's folder (same file system),
which ``os.replace`` renames over the destination only after the writer returned. A crash, a kill or
an exception mid-write leaves the previous file untouched and no temporary file behind (except after
SIGKILL, whose ``.<name>.*.tmp`` file is harmless and never read).
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path", "atomic_write_text"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """``with atomic_path(dest) as tmp: write(tmp)``: on normal exit ``tmp`` replaces ``dest``
    atomically (with the permissions of a newly created file); on any exception it is removed and
    ``dest`` is left as it was. The folder of ``dest`` is created. OSErrors (unwritable folder, full
    disk) propagate unchanged, for the caller to phrase."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # gone after the rename


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
