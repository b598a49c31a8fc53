"""Something-Something V2 (20BN, 2018): 174 classes, WebM videos.

Official layout under ``--root``::

    something-something-v2-labels.json       {"<class name>": "<index>", ...}
    something-something-v2-train.json        [{"id": "78687", "label": ..., "template":
    something-something-v2-validation.json     "Holding [something] next to [something]",
                                               "placeholders": [...]}, ...]
    20bn-something-something-v2/<id>.webm

The class of an entry is its ``template`` with the brackets removed ("Putting [something] on
[something]" -> "Putting something on something"), looked up in the labels JSON, whose index is the
label (as TSM's ``process_dataset.py`` does; ``label`` holds the filled-in placeholders and is not a
class). Entries are located in the JSON by their line so problems are reported as ``file:line``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from ffn_core.data.prepare._common import (
    Annotations, Entry, FileIndex, PrepareError, Problems, add_entry, find_file, register_preparer,
    require_dir, where,
)

LABELS = "something-something-v2-labels.json"
SPLIT_FILES = {"train": "something-something-v2-train.json", "val": "something-something-v2-validation.json"}
VIDEO_DIR = "20bn-something-something-v2"


def template_to_class(template: str) -> str:
    return template.replace("[", "").replace("]", "").strip()


def read_labels(path: Path) -> list:
    """The labels JSON -> class names ordered by index; indices must be 0..C-1, each once."""
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as e:
        raise PrepareError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(data, dict) or not data:
        raise PrepareError(f"{path}: expected a JSON object {{\"class name\": \"index\"}}")
    by_index = {}
    for name, idx in data.items():
        try:
            i = int(idx)
        except (TypeError, ValueError):
            raise PrepareError(f"{path}: class {name!r} has index {idx!r}, expected an integer") from None
        if i in by_index:
            raise PrepareError(f"{path}: index {i} used by both {by_index[i]!r} and {name!r}")
        by_index[i] = name
    if sorted(by_index) != list(range(len(by_index))):
        raise PrepareError(f"{path}: class indices must be 0..{len(by_index) - 1} without gaps")
    return [by_index[i] for i in range(len(by_index))]


def iter_json_array(path: Path, problems: Problems, split: str) -> Iterator[tuple]:
    """``(line, item)`` for each element of the top-level JSON array in ``path``.

    Parses element by element, so a syntax error is reported at its line and the elements before
    it are kept (elements after it cannot be recovered reliably).
    """
    text = path.read_text(encoding="utf-8-sig")
    dec = json.JSONDecoder()
    ws = " \t\r\n"
    pos, line = 0, 1

    def skip(p: int) -> int:
        while p < len(text) and text[p] in ws:
            p += 1
        return p

    def advance(to: int) -> None:
        nonlocal pos, line
        line += text.count("\n", pos, to)
        pos = to

    advance(skip(0))
    if pos >= len(text) or text[pos] != "[":
        problems.malformed_line(split, where(path, line), text[pos:pos + 80], "expected a JSON array of entries")
        return
    advance(skip(pos + 1))
    if pos < len(text) and text[pos] == "]":
        return
    while pos < len(text):
        try:
            item, end = dec.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            problems.malformed_line(split, where(path, e.lineno), text[e.pos:e.pos + 80],
                                    f"invalid JSON ({e.msg}); the rest of the file is skipped")
            return
        yield line, item
        advance(skip(end))
        if pos < len(text) and text[pos] == ",":
            advance(skip(pos + 1))
        elif pos < len(text) and text[pos] == "]":
            return
        else:
            problems.malformed_line(split, where(path, line), text[pos:pos + 80],
                                    "expected ',' or ']' after an entry; the rest of the file is skipped")
            return
    problems.malformed_line(split, where(path, line), "", "the JSON array is not closed (truncated file?)")


@register_preparer(
    "ssv2", "Something-Something V2",
    layout=f"{LABELS}, {SPLIT_FILES['train']}, {SPLIT_FILES['val']} beside {VIDEO_DIR}/<id>.webm",
    list_names=("train", "val"),
)
def collect(root: Path, problems: Problems) -> Annotations:
    labels_path = find_file(root, (LABELS,), "the SSv2 labels JSON")
    media_root = require_dir(root, VIDEO_DIR, "the SSv2 videos")
    classes = read_labels(labels_path)
    index = {name: i for i, name in enumerate(classes)}
    videos = FileIndex(media_root)
    entries, seen, sources = [], {}, [labels_path]
    for split, name in SPLIT_FILES.items():
        path = find_file(root, (name,), f"the SSv2 {split} annotations")
        sources.append(path)
        for no, item in iter_json_array(path, problems, split):
            w = where(path, no)
            shown = json.dumps(item)
            if not isinstance(item, dict):
                problems.malformed_line(split, w, shown, "expected an object with 'id' and 'template'")
                continue
            vid, template = item.get("id"), item.get("template")
            if isinstance(vid, int) and not isinstance(vid, bool):
                vid = str(vid)
            if not isinstance(vid, str) or not vid.strip() or not isinstance(template, str):
                problems.malformed_line(split, w, shown, "expected string fields 'id' and 'template'",
                                        video=vid if isinstance(vid, str) else "")
                continue
            vid, label = vid.strip(), template_to_class(template)
            if label not in index:
                problems.unknown_label(split, w, vid, label, f"(from template {template!r}) not in {LABELS}")
                continue
            media = videos.find(f"{vid}.webm") or videos.find_stem(vid)
            add_entry(entries, seen, problems,
                      Entry(split, vid, index[label], w, media, expected=str(media_root / f"{vid}.webm")))
    return Annotations(classes, entries, list(SPLIT_FILES), media_root, "video", sources=sources)
