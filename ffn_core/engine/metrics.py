"""Accuracy, running averages and the run directory's metric files (``metrics.csv`` / ``.json``).

* :func:`topk_correct` / :class:`ClassificationTally` - top-1/top-5 and per-class accuracy, kept as
  *counts* so that they can be summed across ranks (``all_reduce``) before dividing.
* :class:`MetricsCSV` - one row per epoch, rewritten whole on every append; a resumed run starts
  from the rows stored in ``last.pt`` (an epoch interrupted after its row was written leaves no duplicate).
* :func:`write_json` - atomic JSON (temp file + rename), plain types only.

Accuracies are in percent, as in the paper's tables.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import torch

from ffn_core.config import atomic_write_text

__all__ = ["topk_correct", "ClassificationTally", "AverageMeter", "MetricsCSV", "write_json", "to_plain"]


def topk_correct(logits: torch.Tensor, target: torch.Tensor, ks: Iterable[int] = (1, 5)) -> list[int]:
    """Number of samples whose label is among the ``k`` highest scores, for each ``k`` (capped at C)."""
    maxk = min(max(ks), logits.shape[1])
    top = logits.topk(maxk, dim=1).indices
    hit = top.eq(target.view(-1, 1))
    return [int(hit[:, : min(k, maxk)].any(dim=1).sum()) for k in ks]


class ClassificationTally:
    """Counts for top-1 / top-5 / per-class accuracy over a stream of (scores, labels) batches.

    A label ``-1`` marks a sample the dataset left out (an unreadable video under
    ``on_bad_sample=skip``): it is counted as ``skipped`` and nowhere else."""

    _HEAD = 4  # n, top1, top5, skipped; then correct per class, total per class

    def __init__(self, num_classes: int):
        self.num_classes = int(num_classes)
        self.counts = torch.zeros(self._HEAD + 2 * self.num_classes, dtype=torch.float64)

    def update(self, scores: torch.Tensor, target: torch.Tensor) -> None:
        scores, target = scores.detach().float().cpu(), target.detach().long().cpu()
        keep = target >= 0
        self.counts[3] += int((~keep).sum())
        scores, target = scores[keep], target[keep]
        if target.numel() == 0:
            return
        c1, c5 = topk_correct(scores, target, (1, 5))
        pred = scores.argmax(dim=1)
        C, h = self.num_classes, self._HEAD
        self.counts[0] += target.numel()
        self.counts[1] += c1
        self.counts[2] += c5
        self.counts[h:h + C] += torch.bincount(target[pred == target], minlength=C).double()[:C]
        self.counts[h + C:] += torch.bincount(target, minlength=C).double()[:C]

    def load_counts(self, counts: torch.Tensor) -> "ClassificationTally":
        self.counts = counts.detach().to(torch.float64).cpu().clone()
        return self

    def result(self) -> dict:
        n = float(self.counts[0])
        C, h = self.num_classes, self._HEAD
        correct, total = self.counts[h:h + C], self.counts[h + C:]
        per_class = [float(100.0 * c / t) if t > 0 else float("nan") for c, t in zip(correct.tolist(), total.tolist())]
        seen = [a for a in per_class if not math.isnan(a)]
        return {
            "num_samples": int(n),
            "skipped": int(self.counts[3]),
            "top1": 100.0 * float(self.counts[1]) / n if n else float("nan"),
            "top5": 100.0 * float(self.counts[2]) / n if n else float("nan"),
            "mean_class_top1": float(np.mean(seen)) if seen else float("nan"),
            "per_class_top1": per_class,
        }


class AverageMeter:
    """Weighted running sums (``update(value, n)``) that can be reduced across ranks."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.counts: dict[str, float] = {}

    def update(self, values: Mapping[str, float], n: int = 1) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v) * n
            self.counts[k] = self.counts.get(k, 0.0) + n

    def keys(self) -> list[str]:
        return sorted(self.sums)

    def averages(self, sums: Mapping[str, float] | None = None, counts: Mapping[str, float] | None = None) -> dict:
        sums, counts = sums or self.sums, counts or self.counts
        return {k: sums[k] / counts[k] for k in sorted(sums) if counts.get(k)}


def to_plain(value):
    """Recursively turn tensors/numpy/tuples/Paths into JSON-safe Python values (NaN -> None)."""
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if torch.is_tensor(value):
        return to_plain(value.tolist())
    if isinstance(value, np.ndarray):
        return to_plain(value.tolist())
    if isinstance(value, np.generic):
        return to_plain(value.item())
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: str | os.PathLike, data) -> Path:
    path = Path(path)
    atomic_write_text(path, json.dumps(to_plain(data), indent=2, sort_keys=False) + "\n")
    return path


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return str(v)


class MetricsCSV:
    """Per-epoch ``metrics.csv``. The column set is the union of keys, in first-seen order; the
    whole file is rewritten atomically on every append (it is tiny), so a crash never leaves half a row."""

    def __init__(self, path: str | os.PathLike, rows: list[dict] | None = None):
        self.path = Path(path)
        self.rows: list[dict] = list(rows or [])

    def append(self, row: Mapping) -> None:
        self.rows.append(dict(row))
        self.write()

    def columns(self) -> list[str]:
        cols: list[str] = []
        for r in self.rows:
            cols += [k for k in r if k not in cols]
        return cols

    def write(self) -> None:
        buf = io.StringIO()
        cols = self.columns()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(cols)
        for r in self.rows:
            w.writerow([_fmt(r.get(c)) for c in cols])
        atomic_write_text(self.path, buf.getvalue())
