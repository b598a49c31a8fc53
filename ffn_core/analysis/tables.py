"""Result tables: long-format accuracy rows, cross-evaluation / TFD matrices, BN statistics, markdown.

Every results file the notebooks write is a long table with :data:`RESULT_COLUMNS` — one row per
(model, evaluated frame count) — the same shape as :mod:`ffn_core.analysis.paper_numbers`, so
any table can be pivoted (:func:`pivot`) and put beside the paper's (:mod:`.report`).
"""
from __future__ import annotations

import math
import re
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["RESULT_COLUMNS", "top1", "result_rows", "format_params", "pivot", "cross_eval_matrix",
           "tfd_matrix", "st_diagonal", "bn_statistics", "markdown_table", "read_results"]

RESULT_COLUMNS = ["method", "spec", "params", "frames", "top1", "gmacs", "trained", "run"]


def top1(probs: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy in percent of ``probs`` (N, C) against integer ``labels`` (N,)."""
    probs, labels = np.asarray(probs), np.asarray(labels).reshape(-1)
    if probs.ndim != 2 or probs.shape[0] != labels.shape[0]:
        raise ValueError(f"top1: probs {probs.shape} and labels {labels.shape} do not match (N, C) / (N,)")
    if labels.size == 0:
        return float("nan")
    return 100.0 * float((probs.argmax(axis=1) == labels).mean())


def format_params(n: float, copies: int = 1) -> str:
    """Parameter count as the paper prints it: ``25.6M`` or ``25.6×3M`` (K separate models)."""
    m = n / 1e6
    digits = 1 if m >= 10 else 2 if m >= 1 else 3
    base = f"{m:.{digits}f}"
    return f"{base}M" if copies == 1 else f"{base}×{copies}M"


def result_rows(method: str, accs: Mapping[int, float], spec: str = "", params: str = "",
                gmacs: Mapping[int, float] | None = None, trained: Iterable[int] = (), run: str = "") -> list[dict]:
    """Rows of :data:`RESULT_COLUMNS` for one model evaluated at several frame counts."""
    gmacs, trained = gmacs or {}, {int(t) for t in trained}
    return [dict(method=method, spec=spec, params=params, frames=int(t), top1=float(a),
                 gmacs=float(gmacs[t]) if t in gmacs else float("nan"), trained=int(t) in trained, run=run)
            for t, a in sorted(accs.items())]


def pivot(df: pd.DataFrame, values: str = "top1", index: Sequence[str] = ("method", "spec")) -> pd.DataFrame:
    """Rows = (method, spec) in first-appearance order, columns = evaluated frame counts."""
    if df.empty:
        return pd.DataFrame()
    index = [c for c in index if c in df.columns]
    order = list(dict.fromkeys(map(tuple, df[index].itertuples(index=False, name=None))))
    table = df.pivot_table(index=index, columns="frames", values=values, aggfunc="first", dropna=False)
    table = table.reindex(pd.MultiIndex.from_tuples(order, names=index) if len(index) > 1
                          else pd.Index([o[0] for o in order], name=index[0]))
    table.columns = [int(c) for c in table.columns]
    return table[sorted(table.columns)]


def cross_eval_matrix(df: pd.DataFrame) -> pd.DataFrame:
    """Rows = model (``method``, e.g. ``ST-4``), columns = evaluated frame count, values = top-1."""
    return pivot(df, index=("method",))


def st_diagonal(cross: pd.DataFrame, prefix: str = "ST-") -> dict:
    """``{T: top-1 of the model trained at T, evaluated at T}`` from a cross-eval matrix."""
    out = {}
    for name in cross.index:
        m = re.fullmatch(re.escape(prefix) + r"(\d+)", str(name))
        if m and int(m.group(1)) in cross.columns:
            out[int(m.group(1))] = float(cross.loc[name, int(m.group(1))])
    return out


def tfd_matrix(cross: pd.DataFrame, prefix: str = "ST-") -> pd.DataFrame:
    """Temporal Frequency Deviation: ``cross[model, T] - ST_T(T)`` wherever an ST model trained at T
    exists (NaN elsewhere). The diagonal is 0; negative values are the accuracy lost by evaluating a
    model at a frame count it was not trained at (paper Fig. 1/2)."""
    diag = st_diagonal(cross, prefix)
    out = cross.copy() * np.nan
    for t, ref in diag.items():
        out[t] = cross[t] - ref
    return out


def bn_statistics(model, stage: str | None = "auto") -> pd.DataFrame:
    """Channel-averaged BatchNorm statistics per layer (paper Fig. 3 / Supp. Fig. 10-11).

    One row per BN copy: ``layer`` (module path without the stream suffix), ``stream`` (frame count
    of a private copy ``...t16``; the trained count of a single-count model; 0 for a norm shared by
    several counts, e.g. "w/o SN"), ``index`` (order within the selection),
    and the means over channels of ``running_mean``, ``running_var``, ``weight`` (γ) and ``bias`` (β).
    ``stage`` keeps layers whose path starts with it (the paper plots ResNet stage 4); ``"auto"``: the
    model's declared last stage (``model_cfg.stats_stage``: ``layer4`` for the ResNets); ``None``
    keeps all; if nothing matches, all layers are kept.
    """
    from torch.nn.modules.batchnorm import _BatchNorm

    import torch

    if stage == "auto":
        cfg = getattr(model, "model_cfg", None)
        stage = (cfg.stats_stage or None) if cfg is not None else None
    frames = tuple(getattr(model, "frames", ()) or ())
    shared = int(frames[0]) if len(frames) == 1 else 0
    rows = []
    with torch.no_grad():
        for name, m in model.named_modules():
            if not isinstance(m, _BatchNorm) or m.running_mean is None:
                continue
            match = re.fullmatch(r"(.*)\.t(\d+)", name)
            layer, stream = (match.group(1), int(match.group(2))) if match else (name, shared)
            rows.append(dict(layer=layer, stream=stream, mean=float(m.running_mean.float().mean()),
                             var=float(m.running_var.float().mean()),
                             gamma=float(m.weight.float().mean()) if m.weight is not None else float("nan"),
                             beta=float(m.bias.float().mean()) if m.bias is not None else float("nan")))
    df = pd.DataFrame(rows, columns=["layer", "stream", "mean", "var", "gamma", "beta"])
    if stage is not None and not df.empty:
        sel = df[df["layer"].str.startswith(stage)]
        df = sel if not sel.empty else df
    order = {name: i for i, name in enumerate(dict.fromkeys(df["layer"]))}
    df = df.assign(index=df["layer"].map(order)).reset_index(drop=True)
    return df[["index", "layer", "stream", "mean", "var", "gamma", "beta"]]


def _fmt(v, floatfmt: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, (float, np.floating)):
        return format(float(v), floatfmt)
    return str(v).replace("|", "\\|")


def markdown_table(df: pd.DataFrame, floatfmt: str = ".2f", index: bool = True) -> str:
    """GitHub markdown for ``df`` (no ``tabulate`` dependency); NaN prints as an en dash."""
    if df is None or df.empty:
        return "_(no data)_\n"
    d = df.reset_index() if index and not isinstance(df.index, pd.RangeIndex) else df
    header = [str(c) for c in d.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in d.itertuples(index=False, name=None):
        lines.append("| " + " | ".join(_fmt(v, floatfmt) for v in row) + " |")
    return "\n".join(lines) + "\n"


def read_results(path) -> pd.DataFrame:
    """Read a results CSV written by a notebook (:data:`RESULT_COLUMNS`); empty frame if missing."""
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        return pd.DataFrame(columns=RESULT_COLUMNS)
    df = pd.read_csv(p, dtype={"method": str, "spec": str, "params": str, "run": str})
    for col in ("spec", "params", "run"):
        if col in df.columns:
            df[col] = df[col].fillna("")
    if "frames" in df.columns:
        df["frames"] = df["frames"].astype(int)
    return df
