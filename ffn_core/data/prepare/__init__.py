"""Official dataset releases -> ready-to-train TSN lists, frames and a preparation report.

``python -m ffn_core prepare DATASET --root DIR --out DIR [--extract-frames] [--workers N] ...``

``--root`` is the folder where the official archives were unpacked, with their own names and
layout (see each module and docs/datasets.md); ``--out`` becomes the ``data_root`` to train with:
it receives ``train.txt`` / ``val.txt`` (+ ``train_split{k}.txt`` / ``val_split{k}.txt`` for
HMDB51 and UCF101), ``classes.txt``, ``dataset.json`` and ``prepare_report.{json,md}``. List paths
are relative to ``--out``. A bad line or video is reported, never fatal; only a release that
cannot be read at all (no label file, wrong folder) stops with a message naming what is missing.

Registered datasets: ssv1, ssv2, k400, hmdb51, ucf101 (:func:`list_preparers`).
:func:`prepared_spec` turns the written ``dataset.json`` into the loader's ``DatasetSpec``.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ffn_core.data.prepare import hmdb51, k400, ssv1, ssv2, ucf101  # noqa: F401  (register)
from ffn_core.data.prepare._common import PrepareError, get_preparer, list_preparers
from ffn_core.data.prepare._pipeline import PrepareOptions, run_preparation
from ffn_core.data.prepare.description import prepared_spec, read_description

__all__ = ["prepare", "main", "list_preparers", "get_preparer", "PrepareError", "PrepareOptions",
           "prepared_spec", "read_description"]


def prepare(dataset: str, root: str | os.PathLike, out: str | os.PathLike | None = None, **options) -> dict:
    """Prepare ``dataset`` from the release under ``root`` into ``out`` (default: ``root``).

    ``options`` are the fields of :class:`PrepareOptions` (extract_frames, short_side, workers,
    min_frames, drop_short, probe, jpeg_quality, quiet). Returns the report dict.
    """
    preparer = get_preparer(dataset)
    try:
        opts = PrepareOptions(**options)
    except TypeError as e:
        raise PrepareError(f"prepare({dataset!r}): {e}; known options: "
                           f"{', '.join(PrepareOptions.__dataclass_fields__)}") from None
    return run_preparation(preparer, Path(root), Path(out if out is not None else root), opts)


def _parser() -> argparse.ArgumentParser:
    layouts = "\n".join(f"  {n:<7} {get_preparer(n).title}: {get_preparer(n).layout}" for n in list_preparers())
    p = argparse.ArgumentParser(
        prog="python -m ffn_core prepare",
        description="Turn an official dataset release into TSN lists (<path> <num_frames> <label>), "
                    "classes.txt, dataset.json and a preparation report.",
        epilog=f"expected layout under --root:\n{layouts}\n\nsee docs/datasets.md",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dataset", choices=list_preparers())
    p.add_argument("--root", required=True, help="folder holding the unpacked official release")
    p.add_argument("--out", default=None, help="output folder = the data_root to train with (default: --root)")
    p.add_argument("--extract-frames", action="store_true",
                   help="decode every video into JPEG folders out/frames/<video>/00001.jpg (resumable)")
    p.add_argument("--short-side", type=int, default=256, help="extracted frames' short side in px (0: keep)")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="worker processes")
    p.add_argument("--min-frames", type=int, default=16,
                   help="report videos with fewer frames (the largest frame count you train)")
    p.add_argument("--drop-short", action="store_true", help="also leave videos shorter than --min-frames out")
    p.add_argument("--probe", choices=("decode", "header"), default="decode",
                   help="frame count: decode every frame (exact) or trust a non-zero container header")
    p.add_argument("--jpeg-quality", type=int, default=90)
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def main(argv: list | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        report = prepare(
            args.dataset, args.root, args.out, extract_frames=args.extract_frames, short_side=args.short_side,
            workers=args.workers, min_frames=args.min_frames, drop_short=args.drop_short, probe=args.probe,
            jpeg_quality=args.jpeg_quality, quiet=args.quiet,
        )
    except PrepareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    summary = ", ".join(f"{name}: {row['listed']}" for name, row in report["splits"].items())
    print(f"{args.dataset}: {summary} videos listed; "
          f"{'clean' if report['clean'] else 'problems found'} -- see {Path(report['out']) / 'prepare_report.md'}")
    return 0
