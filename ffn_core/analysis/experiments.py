"""The experiments of the notebooks as code: configs, training, evaluation, result rows.

Notebooks stay thin: each cell calls one function here. Every experiment is an :class:`Exp` —
a row label of a paper table (``method``, ``spec``) plus the :class:`~ffn_core.config.Config` that
trains it — derived from the notebook's base config, with the run dir
``<out_dir>/models/<slug>_e<epochs>`` (so runs with other epochs never overwrite each other and
identical ones are shared between notebooks through :func:`runs.train_or_load`).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ffn_core.atomic import atomic_write_text
from ffn_core.config import Config, ConfigError, save_config
from ffn_core.engine.progress import milestone

from . import runs as R
from .notebook import NotebookContext
from .tables import RESULT_COLUMNS, format_params, top1

__all__ = ["Exp", "frames_label", "ensure_data", "data_summary", "sampling_table", "example_clips", "st_exp",
           "st_exps", "ffn_exp", "ffn_init_exp", "main_ffn_exps", "init_sources", "ablation_exps", "baseline_exps", "sequence_exps", "train", "accuracy_rows",
           "ensemble_rows", "recalibration_rows", "costs_table", "save_table", "save_json", "save_base_config",
           "check_frames_for", "default_tfd_frames", "default_any_frames", "default_sequence_sets", "st_rows",
           "st_rows_from", "comparison_rows", "environment"]


def frames_label(frames: Iterable[int]) -> str:
    return "/".join(str(int(t)) for t in frames)


@dataclass
class Exp:
    """One trained model: its table row label and its config (``cfg.out_dir`` is the run dir)."""

    method: str
    spec: str
    cfg: Config
    copies: int = 1  # separately trained models it stands for (parameters column)

    @property
    def run_dir(self) -> Path:
        return Path(self.cfg.out_dir)


# ---- data -----------------------------------------------------------------------------------
def ensure_data(cfg: Config, data_seed: int = 0, workers: int | None = None) -> Path:
    """Make sure ``cfg``'s train/val lists exist: generate the synthetic tier (``cfg.tier``, seed
    ``data_seed``, independent of the training seed) when missing and a tier is set, else fail
    clearly (a typo'd data_root is never filled with generated data)."""
    root = Path(cfg.data_root)
    if cfg.dataset == "synthetic" and cfg.tier and not (cfg.train_list or cfg.val_list):
        from ffn_core.data.synthetic import ensure_synthetic

        ensure_synthetic(root, cfg.tier, seed=int(data_seed), workers=workers or max(1, min(4, os.cpu_count() or 1)))
    for split, path in (("train", cfg.train_list_path), ("val", cfg.val_list_path)):
        if not path.is_file():
            raise FileNotFoundError(
                f"{split} list {path} not found for dataset={cfg.dataset!r}, data_root={cfg.data_root!r}: run "
                f"`python -m ffn_core prepare {cfg.dataset} ...` first, or set data_root to its output")
    return root


def data_summary(cfg: Config) -> dict:
    from ffn_core.data import build_dataset

    cfg = cfg.replace(cache_videos=False)  # only the lists are read here
    train, val = build_dataset(cfg, "train"), build_dataset(cfg, "val")
    lengths = [r.num_frames for r in val.records]
    calib = Path(cfg.data_root) / "calib.txt"  # held-out clips (synthetic tiers): 06's cascade calibration
    num_calib = sum(1 for line in calib.read_text().splitlines() if line.strip()) if calib.is_file() else 0
    from ffn_core.data.fingerprint import data_fingerprint

    return {"dataset": cfg.dataset, "data_root": str(cfg.data_root), "tier": cfg.tier,
            "num_train": len(train), "num_val": len(val), "num_calib": num_calib, "num_classes": val.num_classes,
            "class_names": list(val.class_names), "frames": list(cfg.frames),
            "video_frames_min": int(min(lengths)), "video_frames_max": int(max(lengths)),
            "short_videos": {"train": train.short_videos, "val": val.short_videos},
            "fingerprint": data_fingerprint(cfg.data_root), "environment": environment()}


def environment() -> dict:
    """Library versions, thread counts and the CPU of this process (two runs are comparable when
    these and the data fingerprint agree)."""
    import platform

    import torch

    from ffn_core.engine.checkpoint import versions

    libs = dict(versions())
    for name in ("av", "decord", "pandas", "papermill"):
        try:
            libs[name] = str(__import__(name).__version__)
        except Exception:  # not installed / broken: say so
            libs[name] = "unavailable"
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                   if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"versions": libs, "torch_threads": torch.get_num_threads(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", ""), "cpu_count": os.cpu_count(), "cpu": cpu,
            "platform": platform.platform()}


def sampling_table(num_frames: int, frames: Sequence[int], seed: int = 0) -> pd.DataFrame:
    """TSN indices of one video of ``num_frames`` frames for every count: train (random) and val."""
    from ffn_core.data import segment_indices

    rows = []
    rng = np.random.default_rng(seed)
    for t in frames:
        for mode in ("train", "val"):
            idx = segment_indices(num_frames, int(t), mode, rng=rng)
            rows += [dict(label=f"{t}F {mode}", frames=int(t), mode=mode, position=i, index=int(j))
                     for i, j in enumerate(idx)]
    return pd.DataFrame(rows)


def example_clips(cfg: Config, n: int = 3, split: str = "val") -> tuple[list, list]:
    """``n`` clips of the split at the highest frame count, as uint8 frames ``(T, H, W, 3)``
    (un-normalised with the dataset's mean/std), with their titles (class names)."""
    from ffn_core.data import build_dataset

    from .plots import denormalize

    ds = build_dataset(cfg, split, frames=(max(cfg.frames),))
    step = max(1, len(ds) // max(n, 1))
    clips, titles = [], []
    for i in range(0, min(len(ds), step * n), step):
        (clip,), label = ds[i]
        clips.append(denormalize(clip[0] if clip.dim() == 5 else clip, ds.spec.mean, ds.spec.std))
        titles.append(f"#{i}: {ds.class_names[label]}")
    return clips, titles


# ---- experiment configs -------------------------------------------------------------------
def _exp(ctx: NotebookContext, method: str, spec: str, slug: str, epochs: int | None, copies: int = 1,
         **keys) -> Exp:
    epochs = int(epochs or ctx.cfg.epochs)
    out = ctx.model_dir(f"{slug}_e{epochs}")
    cfg = ctx.cfg.replace(epochs=epochs, out_dir=str(out), name=f"{ctx.out_dir.name}/{slug}", **keys)
    return Exp(method, spec, cfg, copies)


def st_exp(ctx: NotebookContext, T: int, epochs: int | None = None) -> Exp:
    """ST: one model trained at T frames only (Separated Training), from scratch.

    The suite option ``st_warmup_epochs`` (if set) is its ``warmup_epochs``: a linear warm-up for the
    runs that start from random weights, without stretching it over the short runs that start from
    a trained ST-H (ablations, baselines, the FFNs)."""
    keys, raw = {}, ctx.option("st_warmup_epochs")
    if raw is not None:
        keys["warmup_epochs"] = ctx.float_option("st_warmup_epochs", raw)
        if keys["warmup_epochs"] < 0:
            raise ConfigError(f"st_warmup_epochs={raw!r}: expected a number >= 0")
    return _exp(ctx, f"ST-{int(T)}", f"{int(T)}F", f"st_{int(T)}", epochs, strategy="st", frames=(int(T),),
                eval_frames=(int(T),), **keys)


def st_exps(ctx: NotebookContext, frames: Sequence[int], epochs: int | None = None) -> list[Exp]:
    return [st_exp(ctx, t, epochs) for t in sorted(frames)]


def ffn_exp(ctx: NotebookContext, frames: Sequence[int], epochs: int | None = None, method: str = "FFN",
            spec: str | None = None, tag: str = "", **switches) -> Exp:
    """FFN trained on ``frames`` (MFAD + the config's ``loss``), with optional switches (Config keys).

    A ``loss`` other than the paper's ``mfal`` that comes from the config (not from ``switches``)
    is part of the run dir name (``ffn_4-8-16_ce-all_...``), so it never shares a dir with an MFAL run."""
    frames = tuple(sorted(int(t) for t in frames))
    loss = "" if "loss" in switches or ctx.cfg.loss == "mfal" else ctx.cfg.loss.replace("_", "-")
    slug = "ffn_" + "-".join(map(str, frames)) + "".join(f"_{p}" for p in (loss, tag) if p)
    return _exp(ctx, method, frames_label(frames) if spec is None else spec, slug, epochs, strategy="ffn",
                frames=frames, eval_frames=frames, **switches)


def _st_start(ctx: NotebookContext, hi: int, st_epochs: int | None) -> tuple[str, str]:
    """``(tag, checkpoint)`` of a run started from ST-H: ``"init-st{H}"`` and ST-H's ``best.pt`` (fit
    writes it after the first evaluation) - the source of fine-tuning and of every ``init_from`` run."""
    return f"init-st{int(hi)}", str(st_exp(ctx, hi, st_epochs).run_dir / "best.pt")


def ffn_init_exp(ctx: NotebookContext, frames: Sequence[int], epochs: int, st_epochs: int | None = None,
                 method: str | None = None) -> Exp:
    """FFN started from ST-H's ``best.pt`` (``init_from``: :func:`~ffn_core.models.convert_st_to_ffn`)
    and trained ``epochs`` more - the synthetic stand-in for the paper's pretrained start. Its cost
    is ST-H's training plus these epochs; ST-H (``st_epochs``) must be trained first. ``method``:
    the row label (default ``"FFN (init ST-H)"``)."""
    frames = tuple(sorted(int(t) for t in frames))
    hi = max(frames)
    tag, source = _st_start(ctx, hi, st_epochs)
    return ffn_exp(ctx, frames, epochs, method=method or f"FFN (init ST-{hi})", tag=tag, init_from=source)


def main_ffn_exps(ctx: NotebookContext, frames: Sequence[int], scratch: bool = True, init_epochs: int = 0) -> list[Exp]:
    """03's FFN runs: from scratch for ``epochs`` (``scratch``) and/or from ST-H for ``init_epochs``.

    Both: rows ``FFN`` and ``FFN (init ST-H)``. Only the ST-H start (``ffn_scratch: false``): that run
    *is* the FFN (row ``FFN``; the report names its start). Neither: a :class:`ConfigError`."""
    if not scratch and not init_epochs:
        raise ConfigError("ffn_scratch=false needs init_epochs > 0: with neither, 03 has no FFN to train")
    out = [ffn_exp(ctx, frames)] if scratch else []
    if init_epochs:
        out.append(ffn_init_exp(ctx, frames, init_epochs, method=None if scratch else "FFN"))
    return out


def ablation_exps(ctx: NotebookContext, frames: Sequence[int], epochs: int | None = None,
                  lambdas: Sequence[float] = (), init: bool = False, st_epochs: int | None = None) -> list[Exp]:
    """Table 4: full FFN, w/o SN (shared norms), w/o WA, w/o TD (CE on every stream), w/o WS
    (private convolutions), and FFN with other λ (ours; the paper fixes λ = 1). Table 4 ablates the
    paper's FFN, so every variant but w/o TD uses ``loss="mfal"`` whatever the config's ``loss``.

    ``init=True``: every variant starts from ST-H's ``best.pt`` (``st_epochs``; like
    :func:`ffn_init_exp`), as the paper's ablations all start from the same pretrained weights;
    the run dirs get an ``_init-st{H}`` suffix."""
    tag, source = _st_start(ctx, max(int(t) for t in frames), st_epochs)
    tag, keys = (tag, {"init_from": source}) if init else ("", {})

    def one(method: str, spec: str, slug: str, **switches) -> Exp:
        return ffn_exp(ctx, frames, epochs, method, spec, "_".join(p for p in (slug, tag) if p), **keys, **switches)

    out = [one("FFN", "", "", loss="mfal"),
           one("w/o SN", "", "wo-sn", loss="mfal", private_norm=False),
           one("w/o WA", "", "wo-wa", loss="mfal", weight_alteration=False),
           one("w/o TD", "", "wo-td", loss="ce_all"),
           one("w/o WS", "", "wo-ws", loss="mfal", weight_sharing=False)]
    for lam in lambdas:
        if float(lam) != 1.0:
            out.append(one("FFN", f"λ={float(lam):g}", f"lambda{float(lam):g}", loss="mfal", lambda_kl=float(lam)))
    return out


def baseline_exps(ctx: NotebookContext, frames: Sequence[int], epochs: int | None = None,
                  mixed: Sequence[float] = (0.5, 0.75), proportional: Sequence[float] = (0.5, 0.75),
                  finetune_epochs: int | None = None, st_epochs: int | None = None, init: bool = False) -> list[Exp]:
    """Table 1 baselines between the lowest (L) and highest (H) count: Mixed (ρ), Proportional (ϱ),
    Fine-tuning (ST-H fine-tuned at L). ST-H (``st_epochs``) must be trained first: it is the source.
    ``init=True``: Mixed and Proportional also start from ST-H (``init_from``; run dirs ``_init-st{H}``)."""
    lo, hi = min(frames), max(frames)
    tag, source = _st_start(ctx, hi, st_epochs)
    keys, tag = (dict(init_from=source), f"_{tag}") if init else ({}, "")
    out = []
    for rho in mixed:
        out.append(_exp(ctx, "Mixed", f"ρ={float(rho):.2f}", f"mixed_{lo}-{hi}_rho{float(rho):g}{tag}", epochs,
                        strategy="mixed", frames=(lo, hi), rho=float(rho), eval_frames=(hi,), **keys))
    for rho in proportional:
        out.append(_exp(ctx, "Proportional", f"ϱ={float(rho):.2f}", f"proportional_{lo}-{hi}_rho{float(rho):g}{tag}",
                        epochs, strategy="proportional", frames=(lo, hi), rho=float(rho), eval_frames=(hi,), **keys))
    out.append(_exp(ctx, "Fine-tuning", f"{hi}F→{lo}F", f"finetune_{hi}to{lo}", finetune_epochs or epochs,
                    strategy="finetune", frames=(lo,), finetune_from=source, eval_frames=(lo,)))
    return out


def sequence_exps(ctx: NotebookContext, frame_sets: Sequence[Sequence[int]], epochs: int | None = None,
                  init: bool = False, st_epochs: int | None = None) -> list[Exp]:
    """Tables 2/7: FFN(k) trained on k sequences (e.g. 4/16, 4/8/16, 4/8/12/16).

    ``init=True``: each starts from the ST model at its highest count (``st_epochs``), as in
    :func:`ffn_init_exp` (same run dir, so 03's init row is reused when the epochs agree)."""
    out = []
    for s in frame_sets:
        tag, source = _st_start(ctx, max(int(t) for t in s), st_epochs)
        keys = dict(tag=tag, init_from=source) if init else {}
        out.append(ffn_exp(ctx, s, epochs, method=f"FFN({len(s)})", **keys))
    return out


def init_sources(ctx: NotebookContext, frame_sets: Sequence[Sequence[int]], st_epochs: int | None = None) -> list[Exp]:
    """The ST models that ``init=True`` runs start from (one per distinct highest count)."""
    return [st_exp(ctx, hi, st_epochs) for hi in sorted({max(int(t) for t in s) for s in frame_sets})]


# ---- training / evaluation --------------------------------------------------------------------
def train(exps: Sequence[Exp], force: bool = False) -> dict:
    """Train (or reuse) every experiment in order; returns ``{run dir name: metrics}``."""
    out = {}
    for e in exps:
        milestone(f"== {e.method} {e.spec} -> {e.run_dir}")
        out[e.run_dir.name] = R.train_or_load(e.cfg, force=force)
    return out


def _predictions(ctx: NotebookContext, exps: Sequence[Exp], frames: Sequence[int], which: str) -> dict:
    return R.evaluate_runs({e.run_dir.name: e.run_dir for e in exps}, frames, ctx.cfg, which=which)


def accuracy_rows(ctx: NotebookContext, exps: Sequence[Exp], frames: Sequence[int], which: str = "best",
                  method: str | None = None) -> pd.DataFrame:
    """Long result rows (:data:`RESULT_COLUMNS`) of each experiment evaluated at every count in ``frames``."""
    preds = _predictions(ctx, exps, frames, which)
    rows = []
    for e in exps:
        cost = R.model_costs(e.run_dir, frames, which=which)
        for t in sorted(frames):
            probs, labels = preds[e.run_dir.name][int(t)]
            rows.append(dict(method=method or e.method, spec=e.spec, params=format_params(cost["params"], e.copies),
                             frames=int(t), top1=top1(probs, labels), gmacs=cost["gmacs"][int(t)],
                             trained=int(t) in e.cfg.frames, run=e.run_dir.name, epochs=e.cfg.epochs))
    return pd.DataFrame(rows, columns=RESULT_COLUMNS + ["epochs"])


def ensemble_rows(ctx: NotebookContext, exps: Sequence[Exp], frames: Sequence[int], which: str = "best") -> pd.DataFrame:
    """Table 1 "Ensemble": the softmax of every ST model, each run at the inference count, averaged
    (K x parameters and K x GMACs)."""
    preds = _predictions(ctx, exps, frames, which)
    costs = [R.model_costs(e.run_dir, frames, which=which) for e in exps]
    rows = []
    for t in sorted(frames):
        probs = np.mean([preds[e.run_dir.name][int(t)][0] for e in exps], axis=0)
        labels = preds[exps[0].run_dir.name][int(t)][1]
        rows.append(dict(method="Ensemble", spec="", params=format_params(costs[0]["params"], len(exps)), frames=int(t),
                         top1=top1(probs, labels), gmacs=sum(c["gmacs"][int(t)] for c in costs),
                         trained=any(int(t) in e.cfg.frames for e in exps), run="+".join(e.run_dir.name for e in exps),
                         epochs=exps[0].cfg.epochs))
    return pd.DataFrame(rows, columns=RESULT_COLUMNS + ["epochs"])


def recalibration_rows(ctx: NotebookContext, exp: Exp, frames: Sequence[int], num_batches: int = 20,
                       which: str = "best") -> pd.DataFrame:
    """BN recalibration (our baseline): the ST model's BN statistics re-estimated on ``num_batches``
    training batches at each inference count, then evaluated there (no weight changes)."""
    import torch
    from torch.utils.data import DataLoader

    from ffn_core.data import build_dataset
    from ffn_core.engine import load_checkpoint, predict
    from ffn_core.models import recalibrate_bn

    from ffn_core.engine.distributed import resolve_device

    cost = R.model_costs(exp.run_dir, frames, which=which)
    data_cfg = ctx.cfg.replace(crop_size=exp.cfg.crop_size, resize=exp.cfg.resize)
    device = resolve_device(ctx.cfg.device)
    rows = []
    for t in sorted(frames):
        model, _ = load_checkpoint(R.checkpoint_of(exp.run_dir, which), device=device)
        if int(t) not in exp.cfg.frames:
            gen = torch.Generator().manual_seed(ctx.cfg.seed)
            train = DataLoader(build_dataset(data_cfg, "train", frames=(int(t),)), batch_size=ctx.cfg.batch_size,
                               shuffle=True, generator=gen, num_workers=ctx.cfg.num_workers)
            batches = (clips[0].to(device) for _, (clips, _) in zip(range(num_batches), train))
            recalibrate_bn(model, batches)
        val = DataLoader(build_dataset(data_cfg, "val", frames=(int(t),)), batch_size=ctx.cfg.batch_size,
                         num_workers=ctx.cfg.num_workers)
        probs, labels = predict(model, val, int(t))
        rows.append(dict(method="BN recalibration", spec=f"{max(exp.cfg.frames)}F", params=format_params(cost["params"]),
                         frames=int(t), top1=top1(probs, labels), gmacs=cost["gmacs"][int(t)],
                         trained=int(t) in exp.cfg.frames, run=exp.run_dir.name, epochs=exp.cfg.epochs))
    return pd.DataFrame(rows, columns=RESULT_COLUMNS + ["epochs"])


def costs_table(exps: Sequence[Exp], frames_of=None, which: str = "best") -> pd.DataFrame:
    """``model, frames, params, gmacs`` per experiment at its trained counts (or ``frames_of(e)``)."""
    rows = []
    for e in exps:
        frames = frames_of(e) if frames_of else e.cfg.frames
        c = R.model_costs(e.run_dir, frames, which=which)
        rows += [dict(model=e.method, frames=int(t), params=c["params"], gmacs=c["gmacs"][int(t)]) for t in frames]
    return pd.DataFrame(rows)


def save_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` as CSV at ``path`` and as JSON records beside it (``.json``)."""
    path = Path(path)
    atomic_write_text(path, df.to_csv(index=False))
    atomic_write_text(path.with_suffix(".json"), df.to_json(orient="records", indent=1, force_ascii=False))
    return path


def save_json(data, path: str | Path) -> Path:
    """Write plain data as indented JSON (the next notebooks and the report read it)."""
    path = Path(path)
    atomic_write_text(path, json.dumps(data, indent=1, default=str))
    return path


def save_base_config(ctx: NotebookContext) -> Path:
    """The notebook's resolved base config as ``results/config.yaml`` (the report prints the recipe)."""
    return save_config(ctx.cfg, ctx.results("config.yaml"))


def check_frames_for(notebook: str, frames: Sequence[int], minimum: int) -> tuple:
    """Raise ConfigError if a notebook needs at least ``minimum`` frame counts."""
    frames = tuple(sorted(frames))
    if len(frames) < minimum:
        raise ConfigError(f"frames={list(frames)}: {notebook} needs at least {minimum} frame counts, e.g. [4, 8, 16]")
    return frames


# ---- defaults for the inference frame counts ---------------------------------------------------
def default_tfd_frames(frames: Sequence[int]) -> tuple:
    """Trained counts plus every even count between them (Table 6 columns for 4/8/16: 4, 6, ..., 16)."""
    lo, hi = min(frames), max(frames)
    return tuple(sorted(set(frames) | set(range(lo + lo % 2, hi + 1, 2))))


def default_any_frames(frames: Sequence[int]) -> tuple:
    """Every count from half the lowest to the highest + 4 (Fig. 8 for 4/8/16: 2, 3, ..., 20)."""
    return tuple(range(max(1, min(frames) // 2), max(frames) + 5))


def default_sequence_sets(frames: Sequence[int]) -> list[tuple]:
    """Tables 2/7 for L/M/H: (L, H), (L, M, H), (L, M, (M+H)/2, H) — 4/16, 4/8/16, 4/8/12/16."""
    f = tuple(sorted(frames))
    if len(f) < 3:
        return [f]
    lo, mid, hi = f[0], f[len(f) // 2], f[-1]
    sets = [(lo, hi), f, tuple(sorted({*f, (mid + hi) // 2}))]
    return list(dict.fromkeys(sets))


# ---- rows built from other rows / files --------------------------------------------------------
def st_rows(ctx: NotebookContext, exps: Sequence[Exp], which: str = "best") -> pd.DataFrame:
    """Table row "ST": every ST model at its own count (K models: K x parameters)."""
    parts = [accuracy_rows(ctx, [e], e.cfg.frames, which) for e in exps]
    df = pd.concat(parts, ignore_index=True)
    if df.empty:
        return df
    params = df["params"].iloc[0].replace("M", f"×{len(exps)}M") if len(exps) > 1 else df["params"].iloc[0]
    return df.assign(method="ST", spec="", params=params, trained=True)


def st_rows_from(path: str | Path, frames: Sequence[int] | None = None) -> pd.DataFrame:
    """The "ST" row (diagonal) out of 02's ``02_cross_eval.csv`` (empty if the file is missing)."""
    from .tables import read_results

    cross = read_results(path)
    if cross.empty:
        print(f"note: {path} not found: run 02_baseline_tfd first for the ST rows")
        return cross
    diag = cross[cross["trained"].astype(bool) & cross["method"].str.fullmatch(r"ST-\d+")]
    if frames is not None:
        diag = diag[diag["frames"].isin([int(t) for t in frames])]
    k = diag["method"].nunique()
    return diag.assign(method="ST", spec="", params=diag["params"].str.replace("M", f"×{k}M", regex=False)
                       if k > 1 else diag["params"])


def comparison_rows(ffn_rows: pd.DataFrame, cross_path: str | Path) -> pd.DataFrame:
    """Table 8 style: H-trained (ST at the highest count, evaluated everywhere), ST and FFN, at FFN's
    trained counts, from 03's rows and 02's cross-evaluation file (if present)."""
    from .tables import read_results

    trained = sorted(ffn_rows[ffn_rows["trained"].astype(bool)]["frames"].unique())
    out = [ffn_rows[ffn_rows["frames"].isin(trained)]]
    cross = read_results(cross_path)
    if cross.empty:
        print(f"note: {cross_path} not found: run 02_baseline_tfd to compare with ST")
    else:
        hi = max(int(m[3:]) for m in cross["method"].unique() if m.startswith("ST-"))
        h = cross[(cross["method"] == f"ST-{hi}") & cross["frames"].isin(trained)].assign(method="H-trained", spec=f"{hi}F")
        out = [h, st_rows_from(cross_path, trained), *out]
    return pd.concat(out, ignore_index=True)
