"""Shared pieces of the dataset preparers: registry, annotation records, problem log, file lookup.

A preparer (one module per dataset) only *reads the official annotation files*: it returns an
:class:`Annotations` (class names + one :class:`Entry` per annotated video, with its 0-based label
and the video's path under the release's media folder, or ``None`` when the file is not there)
and logs every bad annotation line in a :class:`Problems` with ``file:line``. Probing, frame
extraction, list writing and the report are shared (``_pipeline.py``), so every dataset gets the
same checks and the same report.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from ffn_core.data.prepare._media import VIDEO_EXTENSIONS

__all__ = [
    "THREE_SPLIT_LISTS",
    "PrepareError", "Entry", "Annotations", "Problems", "Preparer", "register_preparer",
    "get_preparer", "list_preparers", "iter_lines", "find_file", "require_dir", "FileIndex", "where",
    "label_map", "add_entry",
]


class PrepareError(ValueError):
    """The release cannot be prepared at all (e.g. the label file is missing): the message names
    the file and what was expected. Problems with single lines or videos are reported instead."""


@dataclass
class Entry:
    """One annotated video of one split."""

    split: str            # list name without .txt: "train", "val", "train_split2", ...
    key: str              # the annotation's id for the video (SSv2 id, K400 file stem, ...)
    label: int            # 0-based index into Annotations.classes
    where: str            # "annotation file:line" it came from
    media: str | None     # path relative to Annotations.media_root; None: not found on disk
    expected: str = ""    # where the video was looked for (for the "missing" report)


@dataclass
class Annotations:
    classes: list
    entries: list
    splits: list                      # list names in output order
    media_root: Path                  # folder the Entry.media paths are relative to
    media_kind: str = "video"         # "video" files or "frames" folders (SSv1)
    aliases: dict = field(default_factory=dict)   # {"train": "train_split1", ...}: copies
    sources: list = field(default_factory=list)   # annotation files read


@dataclass
class Problems:
    """Everything that is wrong with the release, each item naming where it was found."""

    malformed: list = field(default_factory=list)       # {split, where, text, reason, video}
    unknown_labels: list = field(default_factory=list)  # {split, where, video, label, reason}
    duplicates: list = field(default_factory=list)      # {split, where, key, first}
    notes: list = field(default_factory=list)           # free text about the release

    def malformed_line(self, split: str, where_: str, text: str, reason: str, video: str = "") -> None:
        """A line that cannot be parsed; ``video``: its video id when one can still be read off it."""
        self.malformed.append({"split": split, "where": where_, "text": _clip(text), "reason": reason,
                               "video": _clip(video)})

    def unknown_label(self, split: str, where_: str, video: str, label: str,
                      reason: str = "not in the class list") -> None:
        """A well-formed line left out because of its label; ``video`` is the id it would have listed."""
        self.unknown_labels.append({"split": split, "where": where_, "video": _clip(video), "label": _clip(label),
                                    "reason": reason})

    def duplicate(self, split: str, where_: str, key: str, first: str) -> None:
        self.duplicates.append({"split": split, "where": where_, "key": key, "first": first})


def _clip(text: str, n: int = 200) -> str:
    text = text.rstrip("\r\n")
    return text if len(text) <= n else text[: n - 3] + "..."


def where(path: Path | str, line: int) -> str:
    return f"{path}:{line}"


# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Preparer:
    name: str
    title: str
    collect: Callable[[Path, Problems], Annotations]
    layout: str       # one line: the official layout expected under --root
    list_names: tuple  # the list files written


_REGISTRY: dict = {}


# List files of a dataset with the three official splits (HMDB51, UCF101): per split, plus
# train.txt / val.txt = split 1.
THREE_SPLIT_LISTS = tuple(f"{p}_split{k}" for k in (1, 2, 3) for p in ("train", "val")) + ("train", "val")


def register_preparer(name: str, title: str, layout: str, list_names: tuple):
    """Decorator registering ``collect(root, problems) -> Annotations`` under ``name``."""

    def wrap(fn):
        if name in _REGISTRY:
            raise ValueError(f"preparer {name!r} registered twice")
        _REGISTRY[name] = Preparer(name, title, fn, layout, tuple(list_names))
        return fn

    return wrap


def get_preparer(name: str) -> Preparer:
    if name not in _REGISTRY:
        raise PrepareError(f"unknown dataset {name!r}: expected one of {', '.join(list_preparers())}")
    return _REGISTRY[name]


def list_preparers() -> list:
    return sorted(_REGISTRY)


# ---------------------------------------------------------------------------------------------
def iter_lines(path: Path) -> Iterator[tuple]:
    """``(line_number, stripped_text)`` for the non-blank lines of a text annotation file
    (UTF-8, BOM and CRLF tolerated: UCF101's official lists use CRLF)."""
    with open(path, encoding="utf-8-sig", errors="replace", newline=None) as f:
        for i, line in enumerate(f, 1):
            text = line.strip()
            if text:
                yield i, text


def find_file(root: Path, candidates: tuple, what: str) -> Path:
    """The first of ``candidates`` (relative to ``root``) that exists, or a clear PrepareError."""
    for c in candidates:
        p = root / c
        if p.is_file():
            return p
    tried = ", ".join(str(root / c) for c in candidates)
    raise PrepareError(f"{what} not found under --root {root}: looked for {tried}")


def require_dir(root: Path, name: str, what: str) -> Path:
    p = root / name
    if not p.is_dir():
        raise PrepareError(f"{what} not found: expected the folder {p} (the official archive unpacked under --root)")
    return p


class FileIndex:
    """All video files under ``root`` (symlinks not followed, hidden folders skipped), looked up by
    relative path (exact, then case-insensitive), by unique file name, or by file stem."""

    def __init__(self, root: Path, extensions: tuple = VIDEO_EXTENSIONS, skip: tuple = ()):
        self.root = Path(root)
        skip_real = {os.path.realpath(s) for s in skip}
        self.paths: list = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                                 and os.path.realpath(os.path.join(dirpath, d)) not in skip_real)
            rel_dir = os.path.relpath(dirpath, self.root)
            for fn in sorted(filenames):
                if fn.lower().endswith(extensions) and not fn.startswith("."):
                    rel = fn if rel_dir == "." else f"{rel_dir}/{fn}".replace(os.sep, "/")
                    self.paths.append(rel)
        self._exact = set(self.paths)
        self._fold: dict = {}
        self._name: dict = {}
        self._stem: dict = {}
        for rel in self.paths:
            self._fold.setdefault(rel.casefold(), rel)
            name = rel.rsplit("/", 1)[-1]
            self._name.setdefault(name.casefold(), []).append(rel)
            self._stem.setdefault(name.rsplit(".", 1)[0], []).append(rel)

    def __len__(self) -> int:
        return len(self.paths)

    def find(self, rel: str) -> str | None:
        """``rel`` itself, else a case-insensitive match, else the one file with that name."""
        rel = rel.replace("\\", "/").lstrip("/")
        if rel in self._exact:
            return rel
        if rel.casefold() in self._fold:
            return self._fold[rel.casefold()]
        same_name = self._name.get(rel.rsplit("/", 1)[-1].casefold(), [])
        return same_name[0] if len(same_name) == 1 else None

    def find_stem(self, stem: str, prefer_dir: str = "") -> str | None:
        """A file named ``stem.<any video extension>``; with several, the one under ``prefer_dir``."""
        hits = self._stem.get(stem, [])
        if len(hits) > 1 and prefer_dir:
            preferred = [h for h in hits if h.startswith(prefer_dir.rstrip("/") + "/")]
            hits = preferred or hits
        return hits[0] if hits else None


def label_map(classes: list) -> dict:
    return {name: i for i, name in enumerate(classes)}


def add_entry(entries: list, seen: dict, problems: Problems, entry: Entry) -> None:
    """Append ``entry`` unless its key already appeared in the same split (reported, first kept)."""
    k = (entry.split, entry.key)
    if k in seen:
        problems.duplicate(entry.split, entry.where, entry.key, seen[k])
        return
    seen[k] = entry.where
    entries.append(entry)
