"""UCF101 (Soomro et al., 2012): 101 classes, three train/test splits.

Official layout under ``--root`` (``UCF101.rar`` and ``UCF101TrainTestSplits-RecognitionTask.zip``
unpacked)::

    ucfTrainTestlist/classInd.txt        "<idx> <Class>", idx 1..101
    ucfTrainTestlist/trainlist0{1,2,3}.txt   "<Class>/<video>.avi <idx>"
    ucfTrainTestlist/testlist0{1,2,3}.txt    "<Class>/<video>.avi"
    UCF-101/<Class>/<video>.avi

Label = classInd index - 1. A test line's class is its folder; a train line's index must agree
with its folder (a disagreement is reported and the line left out, never resolved by guessing).
Class folders are matched case-insensitively as a fallback (the release spells ``HandstandPushups``
in folders but ``HandStandPushups`` in file names). Writes ``train_split{k}.txt`` /
``val_split{k}.txt`` (val = the official test list) and ``train.txt`` / ``val.txt`` = split 1.
"""
from __future__ import annotations

from pathlib import Path

from ffn_core.data.prepare._common import (
    THREE_SPLIT_LISTS, Annotations, Entry, FileIndex, PrepareError, Problems, add_entry, find_file, iter_lines,
    register_preparer, require_dir, where,
)

LIST_DIR = "ucfTrainTestlist"
VIDEO_DIR = "UCF-101"


def read_class_index(path: Path, problems: Problems) -> list:
    """classInd.txt -> class names ordered by index; indices must run 1..C."""
    by_index = {}
    for no, text in iter_lines(path):
        parts = text.split()
        if len(parts) != 2 or not parts[0].isdigit():
            problems.malformed_line("classes", where(path, no), text, "expected '<index> <ClassName>'")
            continue
        i = int(parts[0])
        if i in by_index:
            raise PrepareError(f"{where(path, no)}: index {i} repeated (first {by_index[i][1]})")
        by_index[i] = (parts[1], where(path, no))
    if not by_index:
        raise PrepareError(f"{path}: no '<index> <ClassName>' lines")
    if sorted(by_index) != list(range(1, len(by_index) + 1)):
        raise PrepareError(f"{path}: class indices must be 1..{len(by_index)} without gaps")
    names = [by_index[i][0] for i in range(1, len(by_index) + 1)]
    if len(set(names)) != len(names):
        raise PrepareError(f"{path}: a class name appears twice")
    return names


@register_preparer(
    "ucf101", "UCF101",
    layout=f"{LIST_DIR}/classInd.txt, trainlist0k.txt, testlist0k.txt beside {VIDEO_DIR}/<Class>/<video>.avi",
    list_names=THREE_SPLIT_LISTS,
)
def collect(root: Path, problems: Problems) -> Annotations:
    list_dir = require_dir(root, LIST_DIR, "the UCF101 split lists")
    media_root = require_dir(root, VIDEO_DIR, "the UCF101 videos")
    ind_path = find_file(list_dir, ("classInd.txt",), "classInd.txt")
    classes = read_class_index(ind_path, problems)
    index = {name: i for i, name in enumerate(classes)}
    folded = {name.casefold(): i for i, name in enumerate(classes)}
    if len(classes) != 101:
        problems.notes.append(f"{len(classes)} classes in {ind_path} (UCF101 has 101)")
    videos = FileIndex(media_root)
    entries, seen, sources = [], {}, [ind_path]
    for k in (1, 2, 3):
        for role, stem, has_index in (("train", "trainlist", True), ("val", "testlist", False)):
            split = f"{role}_split{k}"
            path = list_dir / f"{stem}0{k}.txt"
            if not path.is_file():
                problems.malformed_line(split, str(path), "", "split list missing: this list stays empty")
                continue
            sources.append(path)
            for no, text in iter_lines(path):
                w = where(path, no)
                parts = text.split()
                want = 2 if has_index else 1
                rel = parts[0].replace("\\", "/") if parts else ""
                if len(parts) != want or rel.count("/") != 1 or (has_index and not parts[1].isdigit()):
                    form = "'<Class>/<video>.avi <index>'" if has_index else "'<Class>/<video>.avi'"
                    problems.malformed_line(split, w, text, f"expected {form}", video=rel)
                    continue
                folder = rel.split("/")[0]
                label = index.get(folder, folded.get(folder.casefold()))
                if label is None:
                    problems.unknown_label(split, w, rel, folder, f"class folder not in {ind_path.name}")
                    continue
                if has_index:
                    given = int(parts[1]) - 1
                    if not 0 <= given < len(classes):
                        problems.unknown_label(split, w, rel, parts[1], f"index outside 1..{len(classes)}")
                        continue
                    if given != label:
                        problems.unknown_label(split, w, rel, parts[1], f"index names {classes[given]!r} but the "
                                                                  f"video is in folder {folder!r}")
                        continue
                media = videos.find(rel)
                add_entry(entries, seen, problems,
                          Entry(split, rel, label, w, media, expected=str(media_root / rel)))
    splits = [f"{p}_split{k}" for k in (1, 2, 3) for p in ("train", "val")]
    return Annotations(classes, entries, splits, media_root, "video",
                       aliases={"train": "train_split1", "val": "val_split1"}, sources=sources)
