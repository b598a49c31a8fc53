"""From :class:`Annotations` to ready-to-train files: probe or extract every video once (in
worker processes), then write the TSN lists, ``classes.txt``, ``dataset.json`` and the report.

Output layout (everything relative to ``--out``, which is the ``data_root`` to train with)::

    out/train.txt, val.txt, [train_split{k}.txt, val_split{k}.txt]   <path> <num_frames> <label>
    out/classes.txt                      one class name per line, line i = label i
    out/dataset.json                     {kind, template, start_index, num_classes, lists, ...}
    out/prepare_report.json, .md         counts and every problem with file:line
    out/videos -> <release video folder> symlink (lists point at videos/<...>), or
    out/frames/<video path without extension>/00001.jpg ...   with --extract-frames, or
    out/frames -> <release frame folder> symlink (SSv1, which is released as JPEG frames)

The link keeps list paths relative to ``--out`` without copying the release; when the release's
media folder is ``--out`` itself or inside it, no link is made and paths go straight to it.
"""
from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ffn_core.config import atomic_write_text
from ffn_core.data.datasets import VideoRecord, write_list_file
from ffn_core.data.prepare._common import Annotations, PrepareError, Preparer, Problems
from ffn_core.data.prepare._media import (
    FRAME_START, FRAME_TEMPLATE, MediaResult, MediaTask, pool_chunksize, process_media,
)
from ffn_core.data.prepare._report import build_report, write_reports

__all__ = ["PrepareOptions", "run_preparation"]


@dataclass
class PrepareOptions:
    extract_frames: bool = False
    short_side: int = 256
    workers: int = 1
    min_frames: int = 16         # the largest frame count trained (paper: 4/8/16)
    drop_short: bool = False     # leave videos with < min_frames out of the lists (default: report only)
    probe: str = "decode"        # decode | header
    jpeg_quality: int = 90
    quiet: bool = False

    def validate(self) -> "PrepareOptions":
        if self.workers < 1:
            raise PrepareError(f"--workers {self.workers}: expected an integer >= 1")
        if self.short_side < 0:
            raise PrepareError(f"--short-side {self.short_side}: expected an integer >= 0 (0 keeps the size)")
        if self.min_frames < 1:
            raise PrepareError(f"--min-frames {self.min_frames}: expected an integer >= 1")
        if self.probe not in ("decode", "header"):
            raise PrepareError(f"--probe {self.probe!r}: expected decode or header")
        if not 1 <= self.jpeg_quality <= 100:
            raise PrepareError(f"--jpeg-quality {self.jpeg_quality}: expected 1..100")
        return self


def run_preparation(preparer: Preparer, root: Path, out: Path, options: PrepareOptions) -> dict:
    """Prepare one release; returns the report dict (also written to ``out``)."""
    options.validate()
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise PrepareError(f"--root {root}: not a folder (expected the folder holding the unpacked release)")
    out.mkdir(parents=True, exist_ok=True)
    problems = Problems()
    ann = preparer.collect(root, problems)
    extract = options.extract_frames and ann.media_kind == "video"
    if options.extract_frames and not extract:
        problems.notes.append("--extract-frames ignored: this release already consists of JPEG frame folders")

    prefix = _media_prefix(ann, out, extract)
    tasks = _make_tasks(ann, out, prefix, extract, options)
    _log(options, f"{preparer.name}: {len(ann.entries)} annotated entries, {len(tasks)} distinct "
                  f"{'videos' if ann.media_kind == 'video' else 'frame folders'} to "
                  f"{'extract' if extract else 'probe'} with {options.workers} worker(s)")
    results = _run_tasks(list(tasks.values()), options)

    lists, listed_problems = _build_lists(ann, results, prefix, extract, options)
    kind = "frames" if (extract or ann.media_kind == "frames") else "video"
    files = {}
    for name, lines in lists.items():
        files[name] = _write_list(out / f"{name}.txt", lines)
    for alias, target in ann.aliases.items():
        files[alias] = _write_list(out / f"{alias}.txt", lists[target])
    atomic_write_text(out / "classes.txt", "".join(f"{c}\n" for c in ann.classes))
    description = {
        "format": "ffn-prepared-v1",
        "dataset": preparer.name,
        "kind": kind,
        "template": FRAME_TEMPLATE if kind == "frames" else None,
        "start_index": FRAME_START if kind == "frames" else 0,
        "num_classes": len(ann.classes),
        "classes_file": "classes.txt",
        "lists": {name: f"{name}.txt" for name in files},
        "train_list": "train.txt",
        "val_list": "val.txt",
        "frames_extracted": extract,
        "short_side": options.short_side if extract else None,
    }
    atomic_write_text(out / "dataset.json", json.dumps(description, indent=2) + "\n")
    report = build_report(preparer, root, out, ann, problems, listed_problems, lists, description,
                          options, results)
    write_reports(out, report)
    _log(options, f"{preparer.name}: wrote {', '.join(sorted(files))} to {out} "
                  f"(see {out / 'prepare_report.md'})")
    return report


def _log(options: PrepareOptions, msg: str) -> None:
    if not options.quiet:
        print(msg, file=sys.stderr, flush=True)


def _media_prefix(ann: Annotations, out: Path, extract: bool) -> str:
    """The list-path prefix (relative to ``out``) under which ``ann.media_root`` is reached."""
    if extract:
        return "frames"
    media, out_real = Path(os.path.realpath(ann.media_root)), Path(os.path.realpath(out))
    if media == out_real or out_real in media.parents:
        return media.relative_to(out_real).as_posix() if media != out_real else ""
    link_name = "frames" if ann.media_kind == "frames" else "videos"
    link = out / link_name
    if link.is_symlink():
        if Path(os.path.realpath(link)) != media:
            link.unlink()  # ours, from a run on another --root
    elif link.exists():
        if Path(os.path.realpath(link)) != media:
            raise PrepareError(f"{link} exists and is not a link to {media}: remove it or choose another --out")
        return link_name
    if not link.is_symlink():
        try:
            os.symlink(media, link, target_is_directory=True)
        except OSError as e:
            raise PrepareError(f"cannot create the link {link} -> {media} ({e}); prepare into an --out "
                               f"that contains the media folder, or on a file system with symlinks") from None
    return link_name


def _frame_dir(rel: str) -> str:
    p = PurePosixPath(rel)
    return str(p.with_suffix("")) if p.suffix else str(p)


def _make_tasks(ann: Annotations, out: Path, prefix: str, extract: bool, options: PrepareOptions) -> dict:
    tasks = {}
    for e in ann.entries:
        if e.media is None or e.media in tasks:
            continue
        source = str(ann.media_root / e.media)
        if ann.media_kind == "frames":
            tasks[e.media] = MediaTask(e.media, source, "frames")
        elif extract:
            dest = str(out / prefix / _frame_dir(e.media))
            tasks[e.media] = MediaTask(e.media, source, "extract", dest, options.short_side,
                                       options.jpeg_quality)
        else:
            tasks[e.media] = MediaTask(e.media, source, "probe", probe=options.probe)
    return tasks


def _run_tasks(tasks: list, options: PrepareOptions) -> dict:
    results: dict = {}
    n = len(tasks)
    step = max(200, n // 20)
    t0 = time.monotonic()

    def note(i: int) -> None:
        if i % step == 0 or i == n:
            rate = i / max(time.monotonic() - t0, 1e-6)
            _log(options, f"  {i}/{n} done ({rate:.1f}/s)")

    if options.workers == 1 or n <= 1:
        for i, task in enumerate(tasks, 1):
            r = process_media(task)
            results[r.key] = r
            note(i)
        return results
    with ProcessPoolExecutor(max_workers=min(options.workers, n)) as pool:
        for i, r in enumerate(pool.map(process_media, tasks, chunksize=pool_chunksize(n, options.workers)), 1):
            results[r.key] = r
            note(i)
    return results


def _build_lists(ann: Annotations, results: dict, prefix: str, extract: bool, options: PrepareOptions):
    """Lines per split, plus the per-video problems: missing / undecodable / short / truncated."""
    lists = {name: [] for name in ann.splits}
    found = {"missing": [], "undecodable": [], "short": [], "truncated": []}
    for e in ann.entries:
        if e.media is None:
            found["missing"].append({"split": e.split, "where": e.where, "key": e.key, "expected": e.expected})
            continue
        r: MediaResult = results[e.media]
        rel = _frame_dir(e.media) if extract else e.media
        path = f"{prefix}/{rel}" if prefix else rel
        if r.error:
            found["undecodable"].append({"split": e.split, "where": e.where, "path": path,
                                         "source": str(ann.media_root / e.media), "error": r.error})
            continue
        for text in r.notes:
            found["truncated"].append({"split": e.split, "path": path, "num_frames": r.num_frames, "note": text})
        short = r.num_frames < options.min_frames
        if short:
            found["short"].append({"split": e.split, "path": path, "num_frames": r.num_frames,
                                   "dropped": options.drop_short})
            if options.drop_short:
                continue
        lists[e.split].append((path, r.num_frames, e.label))
    return lists, found


def _write_list(path: Path, lines: list) -> str:
    """One ``<path> <num_frames> <label>`` line per video, through the loader's own writer."""
    try:
        write_list_file(path, [VideoRecord(p, n, label) for p, n, label in lines])
    except ValueError as e:
        raise PrepareError(f"{path}: {e}") from None
    return path.name
