"""A fingerprint of a dataset folder: the bytes of its lists and of every video they name.

Two runs trained on data with the same fingerprint saw byte-identical inputs, so their numbers can
be compared (the report prints it; ``python -m ffn_core synth`` output is meant to give the same
fingerprint on every machine and in every process). Videos are hashed in list order, a frame folder
as its sorted file names and bytes; a missing video is hashed as its name plus a marker.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence

__all__ = ["data_fingerprint"]

_CHUNK = 1 << 20


def _file(h, path: Path) -> int:
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            n += len(chunk)
    return n


def data_fingerprint(root: str | os.PathLike, lists: Sequence[str] = ("train.txt", "val.txt", "calib.txt")) -> dict:
    """``{"sha256", "lists": {name: sha256}, "videos", "bytes", "missing"}`` of ``root``'s lists
    (those present) and every video they name, each video once."""
    root = Path(root)
    total, out_lists, seen, missing, size = hashlib.sha256(), {}, set(), 0, 0
    for name in lists:
        path = root / name
        if not path.is_file():
            continue
        data = path.read_bytes()
        out_lists[name] = hashlib.sha256(data).hexdigest()
        total.update(name.encode() + b"\0" + data)
        for line in data.decode("utf-8", errors="replace").splitlines():
            parts = line.rsplit(None, 2)
            if len(parts) != 3 or parts[0] in seen:
                continue
            seen.add(parts[0])
            video = root / parts[0]
            total.update(b"\0" + parts[0].encode() + b"\0")
            if video.is_file():
                size += _file(total, video)
            elif video.is_dir():
                for f in sorted(video.iterdir()):
                    if f.is_file():
                        total.update(f.name.encode())
                        size += _file(total, f)
            else:
                total.update(b"<missing>")
                missing += 1
    return {"sha256": total.hexdigest(), "lists": out_lists, "videos": len(seen), "bytes": size, "missing": missing}
