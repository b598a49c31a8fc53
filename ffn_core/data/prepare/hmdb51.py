"""HMDB51 (Kuehne et al., 2011): 51 classes, three train/test splits.

Official layout under ``--root`` (``test_train_splits.rar`` and ``hmdb51_org.rar`` + the per-class
rars unpacked)::

    testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt   "<video>.avi <id>", id 1 train, 2 test, 0 unused
    hmdb51_org/<class>/<video>.avi

Labels are the sorted class names (0-based; the order of mmaction's and TSM's HMDB51 lists). The
class of a video is the one named by its split file, so a label cannot be "unknown" here; what can
go wrong is a class that lacks one of its three split files, or a bad id, both reported.
Writes ``train_split{k}.txt`` / ``val_split{k}.txt`` (val = the official test set) for k = 1, 2, 3,
and ``train.txt`` / ``val.txt`` = split 1.
"""
from __future__ import annotations

import re
from pathlib import Path

from ffn_core.data.prepare._common import (
    THREE_SPLIT_LISTS, Annotations, Entry, FileIndex, PrepareError, Problems, add_entry, iter_lines, register_preparer,
    require_dir, where,
)

SPLITS_DIR = "testTrainMulti_7030_splits"
VIDEO_DIR = "hmdb51_org"
_SPLIT_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<k>[123])\.txt$")
_IDS = {"1": "train", "2": "val", "0": None}


@register_preparer(
    "hmdb51", "HMDB51",
    layout=f"{SPLITS_DIR}/<class>_test_split<k>.txt beside {VIDEO_DIR}/<class>/<video>.avi",
    list_names=THREE_SPLIT_LISTS,
)
def collect(root: Path, problems: Problems) -> Annotations:
    split_dir = require_dir(root, SPLITS_DIR, "the HMDB51 split files")
    media_root = require_dir(root, VIDEO_DIR, "the HMDB51 videos")
    files = {}
    for p in sorted(split_dir.iterdir()):
        m = _SPLIT_FILE.match(p.name)
        if m and p.is_file():
            files[(m["cls"], int(m["k"]))] = p
        elif p.suffix == ".txt":
            problems.notes.append(f"{p}: ignored (not named <class>_test_split<1|2|3>.txt)")
    classes = sorted({cls for cls, _ in files})
    if not classes:
        raise PrepareError(f"{split_dir}: no files named <class>_test_split<1|2|3>.txt")
    for cls in classes:
        for k in (1, 2, 3):
            if (cls, k) not in files:
                problems.malformed_line(f"train_split{k}", str(split_dir / f"{cls}_test_split{k}.txt"), "",
                                        f"split file missing: class {cls!r} has no videos in split {k}")
    if len(classes) != 51:
        problems.notes.append(f"{len(classes)} classes found in {split_dir} (HMDB51 has 51)")
    videos = FileIndex(media_root)
    entries, seen = [], {}
    for (cls, k), path in sorted(files.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        label = classes.index(cls)
        for no, text in iter_lines(path):
            w = where(path, no)
            parts = text.split()
            if len(parts) != 2 or parts[1] not in _IDS:
                problems.malformed_line(f"train_split{k}", w, text, "expected '<video>.avi <0|1|2>'")
                continue
            role = _IDS[parts[1]]
            if role is None:
                continue
            name = parts[0]
            media = videos.find(f"{cls}/{name}")
            add_entry(entries, seen, problems,
                      Entry(f"{role}_split{k}", name, label, w, media, expected=str(media_root / cls / name)))
    splits = [f"{p}_split{k}" for k in (1, 2, 3) for p in ("train", "val")]
    return Annotations(classes, entries, splits, media_root, "video",
                       aliases={"train": "train_split1", "val": "val_split1"}, sources=sorted(files.values()))
