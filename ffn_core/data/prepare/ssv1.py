"""Something-Something V1 (20BN, 2017): 174 classes, released as JPEG frame folders.

Official layout under ``--root``::

    something-something-v1-labels.csv        one class name per line (line order = label order)
    something-something-v1-train.csv         <id>;<class name>
    something-something-v1-validation.csv    <id>;<class name>
    20bn-something-something-v1/<id>/00001.jpg ...

Labels are the 0-based line index in the labels CSV, as in TSM's ``category.txt`` (the official
lists). The test CSV has no labels and is not listed. Frames are already extracted, so
``--extract-frames`` does nothing here; the lists point at ``frames/<id>`` (a link to the release).
"""
from __future__ import annotations

import os
from pathlib import Path

from ffn_core.data.prepare._common import (
    Annotations, Entry, Problems, add_entry, find_file, iter_lines, label_map, register_preparer,
    require_dir, where,
)

LABELS = "something-something-v1-labels.csv"
SPLIT_FILES = {"train": "something-something-v1-train.csv", "val": "something-something-v1-validation.csv"}
FRAMES_DIR = "20bn-something-something-v1"


def read_class_list(path: Path, problems: Problems) -> list:
    """One class name per line; a repeated name is reported (and kept once) so labels stay unique."""
    classes, seen = [], {}
    for no, text in iter_lines(path):
        if text in seen:
            problems.malformed_line("classes", where(path, no), text, f"class repeated (first at line {seen[text]})")
            continue
        seen[text] = no
        classes.append(text)
    return classes


@register_preparer(
    "ssv1", "Something-Something V1",
    layout=f"{LABELS}, {SPLIT_FILES['train']}, {SPLIT_FILES['val']} beside {FRAMES_DIR}/<id>/00001.jpg",
    list_names=("train", "val"),
)
def collect(root: Path, problems: Problems) -> Annotations:
    labels_path = find_file(root, (LABELS,), "the SSv1 label list")
    media_root = require_dir(root, FRAMES_DIR, "the SSv1 frame folders")
    classes = read_class_list(labels_path, problems)
    index = label_map(classes)
    folders = {d.name for d in os.scandir(media_root) if d.is_dir()}
    entries, seen, sources = [], {}, [labels_path]
    for split, name in SPLIT_FILES.items():
        path = find_file(root, (name,), f"the SSv1 {split} annotations")
        sources.append(path)
        for no, text in iter_lines(path):
            w = where(path, no)
            vid, sep, label = text.partition(";")
            vid, label = vid.strip(), label.strip()
            if not sep or not vid or not label or ";" in label or any(c.isspace() for c in vid):
                problems.malformed_line(split, w, text, "expected '<id>;<class name>'", video=vid)
                continue
            if label not in index:
                problems.unknown_label(split, w, vid, label, f"not in {LABELS}")
                continue
            media = vid if vid in folders else None
            add_entry(entries, seen, problems,
                      Entry(split, vid, index[label], w, media, expected=f"{media_root / vid}/"))
    return Annotations(classes, entries, list(SPLIT_FILES), media_root, "frames", sources=sources)
