"""Train once, evaluate once: cached training runs and cached per-sample predictions.

* :func:`train_or_load` — if ``cfg.out_dir`` already holds ``metrics.json`` and a checkpoint for the
  *same* config (``config.yaml`` equal on every key that changes the result), return the stored
  metrics instead of retraining. So the notebook chain, and reruns of any notebook, never train the
  same model twice (e.g. 03 reuses 02's runs when the configs agree).
* :func:`evaluate_runs` — per-sample probabilities of several runs at several frame counts, cached
  per run as ``<run>/preds/T<T>.npz`` (+ ``.json`` key: checkpoint size/mtime and data settings);
  missing ones are computed with one :func:`ffn_core.engine.evaluate.cross_evaluate` call per group
  (runs reading the same data share each decoded batch). Accuracies, ensembles and the cascade are
  all computed from these probabilities.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import yaml

from ffn_core.atomic import atomic_path, atomic_write_text
from ffn_core.config import Config, parse_frames
from ffn_core.engine.progress import milestone

__all__ = ["IGNORED_KEYS", "config_differences", "train_or_load", "checkpoint_of", "evaluate_runs",
           "load_predictions", "eval_overrides", "model_costs"]

#: Keys that do not change what a run learns; a run that differs only in these is reused.
IGNORED_KEYS = ("name", "out_dir", "resume", "log_every", "num_workers", "device", "eval_every", "eval_frames",
                "extra", "video_backend", "cache_videos", "persist_video_cache", "threads")


def config_differences(saved: Mapping, cfg: Config) -> list[str]:
    """Keys (outside :data:`IGNORED_KEYS`) whose values differ between a saved config and ``cfg``."""
    try:
        other = Config.from_dict(dict(saved), source="saved config").to_dict()
    except Exception:  # an older/foreign config: treat as different
        return ["<unreadable config.yaml>"]
    mine = cfg.to_dict()
    return [k for k in mine if k not in IGNORED_KEYS and mine[k] != other.get(k)]


def checkpoint_of(run_dir: str | Path, which: str = "best") -> Path:
    """``<run>/best.pt`` (or ``last.pt``); falls back to the other one if missing."""
    if which not in ("best", "last"):
        raise ValueError(f"which={which!r}: expected 'best' or 'last'")
    run = Path(run_dir)
    for name in (which, "last" if which == "best" else "best"):
        if (run / f"{name}.pt").is_file():
            return run / f"{name}.pt"
    raise FileNotFoundError(f"run {run}: no best.pt or last.pt (was it trained? see {run / 'metrics.csv'})")


def train_or_load(cfg: Config, force: bool = False, verbose: bool = True) -> dict:
    """Train ``cfg`` with :func:`ffn_core.engine.fit` unless ``cfg.out_dir`` already has its result.

    Reuse needs ``metrics.json``, a checkpoint and a ``config.yaml`` that equals ``cfg`` on every key
    outside :data:`IGNORED_KEYS`. The same config with a ``last.pt`` but no ``metrics.json`` is a run
    that was interrupted (a kill, a signal): it is resumed (``resume=true``), not restarted. A run dir
    holding a *different* config is retrained (overwritten), and the differing keys are printed.
    Returns the metrics dict (``reused`` = True/False added).
    """
    run = Path(cfg.out_dir)
    metrics, saved = run / "metrics.json", run / "config.yaml"
    same = False
    if not force and saved.is_file():
        diff = config_differences(yaml.safe_load(saved.read_text()) or {}, cfg)
        same = not diff
        if same and metrics.is_file() and any((run / f).is_file() for f in ("best.pt", "last.pt")):
            milestone(f"reuse: {run.name} (same config, {metrics} exists)", verbose)
            return {**json.loads(metrics.read_text()), "reused": True}
        if diff and verbose:
            print(f"retrain: {run.name}: config differs in {diff}", flush=True)
    from ffn_core.engine import fit

    resume = same and (run / "last.pt").is_file()  # the same run, interrupted: continue where it stopped
    if resume and verbose:
        print(f"resume: {run.name} (same config, {run / 'last.pt'} but no metrics.json yet)", flush=True)
    result = fit(cfg.replace(resume=True) if resume else cfg)
    return {**(result or {}), "reused": False}


def eval_overrides(cfg: Config, batch_size: int | None = None) -> dict:
    """Data/eval keys of the notebook's base config applied to every evaluated checkpoint."""
    return {"dataset": cfg.dataset, "data_root": cfg.data_root, "val_list": cfg.val_list,
            "num_workers": cfg.num_workers, "device": cfg.device, "batch_size": batch_size or cfg.batch_size,
            "video_backend": cfg.video_backend}


def _cache_key(ckpt: Path, T: int, overrides: Mapping) -> dict:
    st = ckpt.stat()
    return {"checkpoint": str(ckpt.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "frames": int(T),
            "data": {k: v for k, v in overrides.items() if k not in ("num_workers", "device", "batch_size")}}


def _preds_dir(run: Path, list_file: str | Path | None) -> Path:
    """Where a run's predictions on one list are cached: ``preds/`` for the validation list,
    ``preds_<list stem>/`` for another one (e.g. ``preds_calib/``), so they never overwrite each other."""
    return run / ("preds" if list_file is None else f"preds_{Path(list_file).stem}")


def _cached(run: Path, ckpt: Path, T: int, overrides: Mapping, list_file=None) -> Path | None:
    pdir = _preds_dir(run, list_file)
    npz, meta = pdir / f"T{T}.npz", pdir / f"T{T}.json"
    if npz.is_file() and meta.is_file():
        try:
            if json.loads(meta.read_text()) == json.loads(json.dumps(_cache_key(ckpt, T, overrides))):
                return npz
        except (OSError, json.JSONDecodeError):
            return None
    return None


def load_predictions(run_dir: str | Path, T: int, list_file: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(probs (N, C), labels (N,))`` cached by :func:`evaluate_runs` for ``run_dir`` at ``T``."""
    path = _preds_dir(Path(run_dir), list_file) / f"T{int(T)}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no cached predictions (call evaluate_runs first)")
    with np.load(path) as z:
        return z["probs"], z["labels"]


def evaluate_runs(runs: Mapping[str, str | Path], frames: Sequence[int], cfg: Config, which: str = "best",
                  batch_size: int | None = None, verbose: bool = False,
                  list_file: str | Path | None = None) -> dict:
    """``{label: {T: (probs, labels)}}`` for every run at every frame count, computing only what is
    not cached. ``cfg`` supplies the validation data (:func:`eval_overrides`); ``list_file``
    evaluates another list instead (same transforms as val, e.g. the held-out ``calib.txt``)."""
    from ffn_core.engine.evaluate import cross_evaluate

    frames = parse_frames(frames, key="frames")
    overrides = eval_overrides(cfg, batch_size)
    if list_file is not None:
        if not Path(list_file).is_file():
            raise FileNotFoundError(f"list file {list_file} not found (evaluate_runs list_file=)")
        overrides["val_list"] = str(list_file)
    ckpts = {label: checkpoint_of(run, which) for label, run in runs.items()}
    todo: dict = {}
    for label, run in runs.items():
        missing = tuple(t for t in frames if _cached(Path(run), ckpts[label], t, overrides, list_file) is None)
        if missing:
            todo.setdefault(missing, []).append(label)
    for missing, labels in todo.items():
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="ffn_eval_") as tmp:
            # cross_evaluate names rows after the run folder: copy-free aliases keep names unique
            paths = [ckpts[lab] for lab in labels]
            res = cross_evaluate(paths, missing, tmp, overrides=overrides, save_logits=True,
                                 batch_size=overrides["batch_size"], verbose=verbose)
            for lab, row in zip(labels, res["rows"]):
                pdir = _preds_dir(Path(runs[lab]), list_file)
                for t in missing:
                    src = Path(tmp) / f"logits_{row['name'].replace('/', '_')}_T{t}.npz"
                    with atomic_path(pdir / f"T{t}.npz") as dst:
                        shutil.copyfile(src, dst)
                    atomic_write_text(pdir / f"T{t}.json", json.dumps(_cache_key(ckpts[lab], t, overrides)))
        milestone(f"evaluated {len(labels)} run(s) at {list(missing)} frames on {overrides['val_list'] or 'val.txt'} "
                  f"in {time.perf_counter() - t0:.0f} s: {', '.join(labels)}")
    return {label: {t: load_predictions(run, t, list_file) for t in frames} for label, run in runs.items()}


def model_costs(run_dir: str | Path, frames: Sequence[int], size: int | None = None, which: str = "best") -> dict:
    """``{"params": int, "gmacs": {T: float}, "frames": trained}`` of a run's model (cached in costs.json)."""
    run = Path(run_dir)
    ckpt = checkpoint_of(run, which)
    path = run / "costs.json"
    cache = json.loads(path.read_text()) if path.is_file() else {}
    want = [int(t) for t in frames]
    stamp = [ckpt.stat().st_size, ckpt.stat().st_mtime_ns]
    if cache.get("checkpoint") != stamp or (size and cache.get("size") != size) \
            or any(str(t) not in cache.get("gmacs", {}) for t in want):
        from ffn_core.engine import load_checkpoint
        from ffn_core.models import count_parameters, gmacs_per_clip

        model, mcfg = load_checkpoint(ckpt, device="cpu")
        size = size or mcfg.crop_size
        same = cache.get("checkpoint") == stamp and cache.get("size") == size
        gm = {**(cache.get("gmacs", {}) if same else {}), **{str(t): gmacs_per_clip(model, t, size=size) for t in want}}
        cache = {"checkpoint": stamp, "size": size, "params": count_parameters(model),
                 "frames": list(model.frames), "gmacs": gm}
        atomic_write_text(path, json.dumps(cache, indent=1))
    return {"params": int(cache["params"]), "frames": cache["frames"], "size": cache["size"],
            "gmacs": {t: float(cache["gmacs"][str(t)]) for t in want}}
