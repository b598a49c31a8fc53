"""Table 8 across architectures: ST vs FFN for every backbone of the chain, beside the paper's groups.

The paper repeats its ST-vs-FFN comparison on TSM, TEA, SlowFast and Uniformer (Table 8 / Fig. 6).
Notebook 03 does it for its own model (02's ST runs, 03's FFN) and, with the ``architectures``
option, for every further recipe named there - a params file such as
``params/cpu_uniformer_xs.yaml`` (``inherit: cpu.yaml`` + ``model:`` + that model's keys). Each
extra architecture trains on the chain's data and frame counts with the same experiment builders
as the main model (ST at each count, 03's FFN rows, ``init_from`` its own ST-H), under
``<out_dir>/models/<model>/``.

Rows are typed: :data:`COLUMNS` = the long result columns plus ``model`` (registry name),
``family`` (its declared ``ModelCfg.family``: the paper's row group) and ``role``
(``"H-trained"``, ``"ST"``, ``"FFN"``); claims and the report group by those fields, never by
parsing labels.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import pandas as pd

from ffn_core.config import ConfigError

from . import experiments as ex
from .claims import TOL, Claim
from .notebook import NotebookContext, load_params, resolve
from .tables import RESULT_COLUMNS

__all__ = ["COLUMNS", "ROLES", "architecture_context", "architecture_exps", "architecture_rows", "main_rows",
           "table8_claims"]

ROLES = ("H-trained", "ST", "FFN")
COLUMNS = RESULT_COLUMNS + ["epochs", "model", "family", "role", "main"]
#: keys every architecture takes from the chain's base config: the same data, counts, seed, device
SHARED_KEYS = ("dataset", "data_root", "train_list", "val_list", "tier", "frames", "seed", "device", "threads")


def _family(model: str) -> str:
    from ffn_core.models import get_model_cfg

    return get_model_cfg(model).family or model


def architecture_context(ctx: NotebookContext, params_file: str) -> NotebookContext:
    """A :class:`NotebookContext` for another architecture's recipe on the chain's data and counts.

    ``params_file``: a params YAML (relative to the repo root) whose ``model`` is not the chain's;
    its ``suite:`` options (``init_epochs``, ``ffn_scratch``) apply to its own runs. Runs go to
    ``<out_dir>/models/<model>/``."""
    path = resolve(params_file, ctx.root)
    if not path.is_file():
        raise ConfigError(f"architectures: params file {path} not found (expected e.g. params/cpu_uniformer_xs.yaml)")
    shared = {k: getattr(ctx.cfg, k) for k in SHARED_KEYS}
    cfg, suite = load_params(path, **shared)
    if cfg.model == ctx.cfg.model:
        raise ConfigError(f"architectures: {params_file} trains model={cfg.model}, the chain's own model; "
                          "list only other architectures there")
    cfg = cfg.replace(strategy="ffn", out_dir=str(ctx.out_dir / "models" / cfg.model / "base"), name=ctx.out_dir.name)
    return dataclasses.replace(ctx, cfg=cfg, params_file=path, options=suite, models_subdir=cfg.model)


def architecture_exps(actx: NotebookContext, frames: Sequence[int]) -> tuple[list, list]:
    """``(ST experiments, FFN experiments)`` of one architecture: ST at every count and 03's FFN rows
    (``ffn_scratch`` / ``init_epochs`` of its own params file)."""
    st = ex.st_exps(actx, frames)
    ffn = ex.main_ffn_exps(actx, frames, actx.bool_option("ffn_scratch", None, default=True),
                           actx.count_option("init_epochs", None, default=0))
    return st, ffn


def _typed(rows: pd.DataFrame, role: str, model: str, main: bool = False) -> pd.DataFrame:
    return rows.assign(role=role, model=model, family=_family(model), main=main)


def architecture_rows(actx: NotebookContext, st: list, ffn: list, which: str = "best") -> pd.DataFrame:
    """Table 8 rows of one trained architecture: the H-trained model (ST at the most frames) at
    every trained count, ST (each model at its own count) and the FFN row(s)."""
    frames = sorted(int(e.cfg.frames[0]) for e in st)
    hi, model = frames[-1], actx.cfg.model
    parts = [
        _typed(ex.accuracy_rows(actx, [st[-1]], frames, which).assign(method="H-trained", spec=f"{hi}F"),
               "H-trained", model),
        _typed(ex.st_rows(actx, st, which), "ST", model),
        _typed(ex.accuracy_rows(actx, [e for e in ffn if e.method == "FFN"] or ffn[:1], frames, which), "FFN", model),
    ]
    return pd.concat(parts, ignore_index=True)[COLUMNS]


def main_rows(comparison: pd.DataFrame, model: str) -> pd.DataFrame:
    """The chain's own model's Table 8 rows out of 03's comparison (H-trained, ST, FFN)."""
    if comparison.empty:
        return pd.DataFrame(columns=COLUMNS)
    d = comparison[comparison["method"].isin(ROLES)]
    d = d.assign(role=d["method"], model=model, family=_family(model), main=True)
    if "epochs" not in d:
        d = d.assign(epochs=np.nan)
    return d.reindex(columns=COLUMNS)


# ---- claims ------------------------------------------------------------------------------------
def _by_role(group: pd.DataFrame, role: str) -> dict:
    sel = group[group["role"] == role]
    return {int(t): float(a) for t, a in zip(sel["frames"], sel["top1"])}


def table8_claims(r) -> list[Claim]:
    """Per architecture in ``03_table8.csv`` other than the chain's own model (whose claims are the
    main ones): TFD (H-trained far below ST at the fewest frames), FFN >= ST - TOL and FFN > ST at
    every trained count - beside that architecture's Table 8 numbers."""
    from . import paper_numbers

    t8 = r.get("table8")
    if t8 is None or t8.empty:
        return []
    out = []
    extra = t8[~t8["main"].astype(bool)] if "main" in t8 else t8
    for model, group in extra.groupby("model", sort=False):
        family = str(group["family"].iloc[0])
        h, st, ffn = (_by_role(group, role) for role in ROLES)
        counts = sorted(set(st) & set(ffn))
        paper = paper_numbers.TABLE8.get(family)
        ref = (lambda i: f"{paper[0][i]}F") if paper else (lambda i: "")
        cid = f"table8_{model}"
        if not counts:
            out.append(Claim(f"{cid}_ffn", f"{family} ({model}): FFN vs ST", "", "no data", None, "03"))
            continue
        lo = counts[0]
        p_txt = (f"{family}: H-trained at {ref(0)} {paper[1][0]:.2f} vs ST {paper[2][0]:.2f}" if paper else "")
        gap = h.get(lo, float("nan")) - st[lo]
        out.append(Claim(f"{cid}_tfd", f"{family} ({model}): TFD - the model trained at the most frames loses > "
                         f"{TOL:g} points at the fewest frames vs ST there (Table 8)", p_txt,
                         f"{lo}F: H-trained {h.get(lo, float('nan')):.2f} vs ST {st[lo]:.2f} ({gap:+.2f})",
                         bool(gap < -TOL), "03"))
        diffs = {t: ffn[t] - st[t] for t in counts}
        p_gain = ("+" + "/+".join(f"{f - s:.2f}" for f, s in zip(paper[3], paper[2]))) if paper else ""
        ours = ", ".join(f"{t}F: {ffn[t]:.2f} vs {st[t]:.2f} ({d:+.2f})" for t, d in diffs.items())
        out.append(Claim(f"{cid}_near_st", f"{family} ({model}): FFN >= ST - {TOL:g} at every trained count (Table 8)",
                         f"{family}-FFN - ST = {p_gain}", ours, bool(min(diffs.values()) >= -TOL), "03"))
        out.append(Claim(f"{cid}_beats_st", f"{family} ({model}): FFN > ST at every trained count (Table 8)",
                         f"{family}-FFN - ST = {p_gain}", ", ".join(f"{t}F: {d:+.2f}" for t, d in diffs.items()),
                         bool(min(diffs.values()) > 0), "03"))
    return out
