"""Kinetics-400 (DeepMind, 2017): 400 classes, YouTube clips of about 10 s.

Official layout under ``--root`` (the CVDF release; the older ``kinetics_<split>.csv`` names work too)::

    annotations/train.csv, annotations/val.csv     label,youtube_id,time_start,time_end,split[,is_cc]
    train/<youtube_id>_<start:06d>_<end:06d>.mp4   flat, or in class folders (train/<class>/...)
    val/...

The class list is the sorted set of train labels (the convention of every K400 code base, TSM and
FFN included); a val label outside it is reported, never mapped. Videos are found by file name
anywhere under ``--root`` (any video extension; files named just ``<youtube_id>.<ext>`` by some
downloaders are accepted), preferring the split's own folder.
"""
from __future__ import annotations

import csv
from pathlib import Path

from ffn_core.data.prepare._common import (
    Annotations, Entry, FileIndex, PrepareError, Problems, add_entry, find_file, register_preparer, where,
)

SPLIT_CSV = {
    "train": ("annotations/train.csv", "annotations/kinetics_train.csv", "annotations/kinetics-400_train.csv",
              "kinetics_train/kinetics_train.csv", "kinetics_train.csv"),
    "val": ("annotations/val.csv", "annotations/validate.csv", "annotations/kinetics_val.csv",
            "annotations/kinetics-400_val.csv", "kinetics_val/kinetics_val.csv", "kinetics_val.csv"),
}
COLUMNS = ("label", "youtube_id", "time_start", "time_end")


def clip_name(youtube_id: str, start: int, end: int) -> str:
    return f"{youtube_id}_{start:06d}_{end:06d}"


def _seconds(text: str) -> int:
    value = float(text)
    if not value.is_integer() or value < 0:
        raise ValueError(text)
    return int(value)


def read_split_csv(path: Path, split: str, problems: Problems) -> list:
    """``[(line, label, clip_stem, youtube_id)]`` for the well-formed rows of one split CSV."""
    rows = []
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise PrepareError(f"{path}: empty file (expected a header {','.join(COLUMNS)},split)")
        header = [h.strip() for h in header]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise PrepareError(f"{path}:1: header {header} lacks the column(s) {missing}; "
                               f"expected {','.join(COLUMNS)},split")
        col = {c: header.index(c) for c in COLUMNS}
        for row in reader:
            no = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            w, text = where(path, no), ",".join(row)
            if len(row) != len(header):
                problems.malformed_line(split, w, text, f"expected {len(header)} fields, got {len(row)}")
                continue
            label, yid = row[col["label"]].strip(), row[col["youtube_id"]].strip()
            try:
                start, end = _seconds(row[col["time_start"]]), _seconds(row[col["time_end"]])
            except ValueError:
                problems.malformed_line(split, w, text, "time_start/time_end must be whole seconds >= 0", video=yid)
                continue
            if not label or not yid or end < start:
                problems.malformed_line(split, w, text, "empty label or youtube_id, or time_end < time_start",
                                        video=yid)
                continue
            rows.append((no, label, clip_name(yid, start, end), yid))
    return rows


@register_preparer(
    "k400", "Kinetics-400",
    layout="annotations/{train,val}.csv beside {train,val}/<youtube_id>_<start:06d>_<end:06d>.mp4 "
           "(flat or in class folders)",
    list_names=("train", "val"),
)
def collect(root: Path, problems: Problems) -> Annotations:
    paths = {split: find_file(root, names, f"the Kinetics-400 {split} CSV") for split, names in SPLIT_CSV.items()}
    rows = {split: read_split_csv(p, split, problems) for split, p in paths.items()}
    classes = sorted({label for _, label, _, _ in rows["train"]})
    if not classes:
        raise PrepareError(f"{paths['train']}: no well-formed rows, so there is no class list")
    index = {name: i for i, name in enumerate(classes)}
    videos = FileIndex(root, skip=(root / "annotations",))
    entries, seen = [], {}
    for split, split_rows in rows.items():
        for no, label, stem, yid in split_rows:
            w = where(paths[split], no)
            if label not in index:
                problems.unknown_label(split, w, stem, label, f"not among the {len(classes)} train classes")
                continue
            media = videos.find_stem(stem, prefer_dir=split) or videos.find_stem(yid, prefer_dir=split)
            add_entry(entries, seen, problems,
                      Entry(split, stem, index[label], w, media, expected=f"{root / split}/[<class>/]{stem}.mp4"))
    if len(classes) != 400:
        problems.notes.append(f"{len(classes)} classes in the train CSV (Kinetics-400 has 400)")
    return Annotations(classes, entries, ["train", "val"], root, "video", sources=list(paths.values()))
