"""``python -m ffn_core split-calib LIST --fraction 0.05 --seed 0 [--out-dir DIR]``.

Holds out a class-stratified calibration list from a training list, so that notebook 06's cascade
picks its chain and threshold tau on clips the model never trained on - also on real datasets,
whose releases have no such split (the synthetic tiers ship one: ``calib.txt``).

Writes, beside ``LIST`` (or in ``--out-dir``), ``calib.txt`` and ``<stem>_wo_calib.txt``: every line
of ``LIST`` goes to exactly one of the two, verbatim and in its original order. Per class,
``round(fraction * n)`` lines are drawn (at least one where the class has two or more, never all of
a class), with ``numpy.random.default_rng(seed)``: the same list, fraction and seed give the same
split on every machine. Train on ``*_wo_calib.txt`` (``train_list=``) and give 06
``cascade_calib=PATH/calib.txt``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ffn_core.config import atomic_write_text

from .datasets import _parse_list

__all__ = ["split_calibration", "main"]


def split_calibration(list_file: str | Path, fraction: float, seed: int = 0,
                      out_dir: str | Path | None = None) -> tuple[Path, Path, dict]:
    """Split ``list_file`` (module docstring); returns ``(calib path, rest path, per-class counts)``
    where the counts are ``{label: (held out, kept)}``."""
    src = Path(list_file)
    if not src.is_file():
        raise FileNotFoundError(f"split-calib: list file {src} not found")
    if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not 0 < fraction < 1:
        raise ValueError(f"split-calib: --fraction {fraction!r}: expected a number in (0, 1), e.g. 0.05")
    parsed = list(_parse_list(src))  # (line number, record); errors name FILE:LINE
    if not parsed:
        raise ValueError(f"split-calib: {src} lists no videos")
    lines = src.read_text().splitlines()  # as _parse_list reads it: its line numbers index these
    by_class: dict[int, list[int]] = {}
    for i, (_, rec) in enumerate(parsed):
        by_class.setdefault(int(rec.label), []).append(i)
    rng = np.random.default_rng(seed)
    held: set[int] = set()
    counts = {}
    for label in sorted(by_class):
        members = by_class[label]
        k = int(round(fraction * len(members)))
        k = min(max(k, 1 if len(members) >= 2 else 0), len(members) - 1)
        pick = rng.permutation(len(members))[:k]
        held.update(members[j] for j in pick)
        counts[label] = (k, len(members) - k)
    out = Path(out_dir) if out_dir is not None else src.parent
    out.mkdir(parents=True, exist_ok=True)
    calib, rest = out / "calib.txt", out / f"{src.stem}_wo_calib.txt"
    if calib.resolve() == src.resolve() or rest.resolve() == src.resolve():
        raise ValueError(f"split-calib: refusing to overwrite the input list {src}")
    text = {True: [], False: []}
    for i, (lineno, _) in enumerate(parsed):
        text[i in held].append(lines[lineno - 1].rstrip("\r") + "\n")
    atomic_write_text(calib, "".join(text[True]))
    atomic_write_text(rest, "".join(text[False]))
    return calib, rest, counts


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m ffn_core split-calib", description=__doc__.split("\n\n")[1])
    p.add_argument("list_file", help="a TSN training list, e.g. data/ssv1/train.txt")
    p.add_argument("--fraction", type=float, default=0.05, help="share of each class held out (default 0.05)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", default=None, help="folder of the two lists (default: beside LIST)")
    a = p.parse_args(argv)
    try:
        calib, rest, counts = split_calibration(a.list_file, a.fraction, a.seed, a.out_dir)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    n_calib = sum(c for c, _ in counts.values())
    n_rest = sum(r for _, r in counts.values())
    print(f"split-calib: {n_calib} videos of {len(counts)} classes -> {calib}; {n_rest} -> {rest} "
          f"(fraction {a.fraction}, seed {a.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
