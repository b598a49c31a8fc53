"""Evaluation at any frame counts, multi-view, per-class; per-sample predictions; cross-evaluation.

* A model evaluated at T frames runs the stream ``model.route(T)`` (T itself if trained, else the
  nearest trained count, ties higher: paper Sec. 5.3). The validation set is built per T
  (``build_dataset(cfg, "val", frames=(T,))``), so a video is sampled at exactly T frames.
* Views: with ``num_clips * test_crops = V > 1`` each sample is ``(V, T, 3, H, W)``; the V views are
  flattened into the batch and the **softmax** is averaged over views (the original 2D code averages
  scores, the Uniformer test sums them; averaging probabilities does not change top-1 of a sum).
* Metrics: top-1, top-5, mean per-class top-1 and per-class top-1 (percent).
* :func:`cross_evaluate` runs several checkpoints x several frame counts and writes
  ``cross_eval.csv`` (rows: checkpoints, columns: frame counts, values: top-1 %) and
  ``cross_eval.json`` (also top-5, per-class, routing). Checkpoints that read the same data share one
  decode per batch. ``ensemble=True`` adds a row that averages the checkpoints' softmax (Table 1's
  "Ensemble" of ST models: 3x parameters and FLOPs).
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ffn_core.atomic import atomic_path
from ffn_core.config import Config, ConfigError, parse_frames

from .checkpoint import load_checkpoint, unwrap
from .distributed import DistInfo, all_reduce_sum, cpu_threads, resolve_device
from .loader import build_eval_loader
from .metrics import ClassificationTally, MetricsCSV, write_json
from .step import autocast_context

__all__ = ["predict", "evaluate", "evaluate_loaders", "cross_evaluate", "DATA_KEYS", "EVAL_OVERRIDE_KEYS"]

DATA_KEYS = ("dataset", "data_root", "val_list", "crop_size", "resize", "test_crops", "num_clips", "video_backend")
EVAL_OVERRIDE_KEYS = DATA_KEYS + ("num_workers", "batch_size", "device", "amp", "threads")


def _select_clip(clips, T: Optional[int]) -> torch.Tensor:
    """The clip with T frames out of a sample's clips (time is dim -4 for (B,T,...) and (B,V,T,...))."""
    if torch.is_tensor(clips):
        return clips
    if T is None or len(clips) == 1:
        return clips[0]
    for c in clips:
        if c.shape[-4] == T:
            return c
    raise ValueError(f"predict: no clip with T={T} frames in the batch (got {[tuple(c.shape) for c in clips]})")


def _batch_probs(models: Sequence[nn.Module], x: torch.Tensor, autocast) -> tuple[list, list]:
    """Softmax and logits averaged over views, per model, for x (B, T, 3, H, W) or (B, V, T, 3, H, W)."""
    views = 1
    if x.dim() == 6:
        b, views = x.shape[:2]
        x = x.flatten(0, 1)
    probs, logits = [], []
    with autocast():
        for m in models:
            z = m(x).float()
            if views > 1:
                z = z.reshape(-1, views, z.shape[-1])
                probs.append(z.softmax(-1).mean(1))
                logits.append(z.mean(1))
            else:
                probs.append(z.softmax(-1))
                logits.append(z)
    return probs, logits


@torch.no_grad()
def _run(models: Sequence[nn.Module], loader: Iterable, T: Optional[int], device: torch.device, amp: str = "none",
         collect: bool = True, tallies: Optional[Sequence[ClassificationTally]] = None):
    autocast = autocast_context(device, amp)
    out = [{"probs": [], "logits": []} for _ in models]
    labels = []
    for clips, target in loader:
        x = _select_clip(clips, T).to(device, non_blocking=True)
        probs, logits = _batch_probs(models, x, autocast)
        keep = torch.as_tensor(target).cpu() >= 0  # label -1: a video the dataset left out (on_bad_sample=skip)
        for k, (p, z) in enumerate(zip(probs, logits)):
            if tallies is not None:
                tallies[k].update(p, target)
            if collect:
                out[k]["probs"].append(p.cpu()[keep])
                out[k]["logits"].append(z.cpu()[keep])
        if collect:
            labels.append(torch.as_tensor(target).cpu()[keep])
    if not collect:
        return None, None
    cat = lambda xs: torch.cat(xs).numpy() if xs else np.zeros((0, 0), np.float32)  # noqa: E731
    labels = torch.cat(labels).numpy() if labels else np.zeros(0, np.int64)
    return [{k: cat(v) for k, v in o.items()} for o in out], labels


def _eval_mode(models):
    @contextlib.contextmanager
    def ctx():
        modes = [{m: m.training for m in model.modules()} for model in models]
        for model in models:
            model.eval()
        try:
            yield
        finally:
            for mode in modes:
                for m, t in mode.items():
                    m.train(t)
    return ctx()


def predict(model: nn.Module, loader: Iterable, T: Optional[int] = None, device: Optional[torch.device] = None,
            amp: str = "none") -> tuple[np.ndarray, np.ndarray]:
    """Per-sample view-averaged probabilities ``(N, C)`` and labels ``(N,)`` of ``loader`` at T frames.

    ``T`` picks the clip when the loader yields several frame counts (default: the first); the model
    routes it to its stream. For the confidence cascade of the notebooks.
    """
    model = unwrap(model)
    device = device or next(model.parameters()).device
    with _eval_mode([model]):
        outs, labels = _run([model], loader, T, device, amp)
    return outs[0]["probs"], labels


def evaluate_loaders(model: nn.Module, loaders: Mapping[int, DataLoader], device: torch.device,
                     num_classes: int, dist: DistInfo = DistInfo(), amp: str = "none") -> dict:
    """``{T: ClassificationTally.result()}`` over (sharded) loaders; counts summed across ranks."""
    model = unwrap(model)
    results = {}
    with _eval_mode([model]):
        for T, loader in loaders.items():
            tally = ClassificationTally(num_classes)
            _run([model], loader, T, device, amp, collect=False, tallies=[tally])
            tally.load_counts(all_reduce_sum(tally.counts, device))
            results[int(T)] = {**tally.result(), "stream": int(model.route(int(T)))}
    return results


def _val_loader(cfg: Config, T: int, batch_size: int, num_workers: int, device: torch.device) -> DataLoader:
    from ffn_core.data import build_dataset

    ds = build_dataset(cfg, "val", frames=(T,))
    return build_eval_loader(ds, batch_size, num_workers, DistInfo(), device)


def _save_logits(out_dir: Path, name: str, T: int, out: dict, labels: np.ndarray, stream: int, class_names) -> Path:
    path = out_dir / (f"logits_T{T}.npz" if not name else f"logits_{name}_T{T}.npz")
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a name
        np.savez(f, probs=out["probs"].astype(np.float32), logits=out["logits"].astype(np.float32),
                 labels=labels.astype(np.int64), frames=np.int64(T), stream=np.int64(stream),
                 class_names=np.array(list(class_names or []), dtype=str))
    return path


def _result(tally: ClassificationTally, stream: Optional[int]) -> dict:
    return {**tally.result(), "stream": stream}


def _empty_row(**info) -> dict:
    return {**info, "top1": {}, "top5": {}, "mean_class_top1": {}, "per_class_top1": {}, "routed": {}}


def _record(row: dict, T: int, r: dict) -> None:
    for key in ("top1", "top5", "mean_class_top1", "per_class_top1"):
        row[key][T] = r[key]
    row["routed"][T] = r["stream"]


def evaluate(model, cfg: Optional[Config] = None, frames=None, *, device=None, batch_size: Optional[int] = None,
             num_workers: Optional[int] = None, out_dir=None, save_logits: bool = False) -> dict:
    """Evaluate ``model`` (a module or a checkpoint path) at every frame count in ``frames``.

    ``cfg`` gives the data (default: the checkpoint's config); ``frames`` defaults to
    ``cfg.eval_frame_counts``. With ``save_logits`` (needs ``out_dir``) writes
    ``out_dir/logits_T{T}.npz`` (``probs`` (N, C), ``logits``, ``labels`` (N,), ``frames``, ``stream``).
    Returns ``{"frames", "top1": {T}, "top5": {T}, "mean_class_top1": {T}, "per_class_top1": {T: [...]},
    "num_samples": {T}, "routed": {T: stream}, "class_names"}``.
    """
    if isinstance(model, (str, Path)):
        model, ckpt_cfg = load_checkpoint(model, device="cpu")
        cfg = cfg or ckpt_cfg
    if cfg is None:
        raise ConfigError("evaluate(model, cfg=None): pass the Config that describes the validation data")
    if save_logits and out_dir is None:
        raise ValueError("evaluate(save_logits=True) needs out_dir=<folder for logits_T{T}.npz>")
    model = unwrap(model)
    frames = parse_frames(frames, key="frames") if frames is not None else cfg.eval_frame_counts
    dev = device if isinstance(device, torch.device) else resolve_device(device or cfg.device)
    model.to(dev)
    workers = cfg.num_workers if num_workers is None else num_workers
    result = {"frames": list(frames), "num_samples": {}, **_empty_row()}
    class_names = []
    with cpu_threads(cfg.threads), _eval_mode([model]):
        for T in frames:
            loader = _val_loader(cfg, T, batch_size or cfg.batch_size, workers, dev)
            class_names = loader.dataset.class_names
            tally = ClassificationTally(loader.dataset.num_classes)
            outs, labels = _run([model], loader, T, dev, cfg.amp, collect=save_logits, tallies=[tally])
            r = _result(tally, int(model.route(T)))
            _record(result, T, r)
            result["num_samples"][T] = r["num_samples"]
            if save_logits:
                _save_logits(Path(out_dir), "", T, outs[0], labels, r["stream"], class_names)
    result["class_names"] = list(class_names)
    return result


# ---------------------------------------------------------------------------------------------
def _row_names(paths: Sequence[Path]) -> list[str]:
    names = [p.parent.name if p.stem in ("best", "last") and p.parent.name else p.stem for p in paths]
    return [n if names.count(n) == 1 else f"{n}/{p.stem}" for n, p in zip(names, paths)]


def cross_evaluate(checkpoints: Sequence, frames, out_dir, *, ensemble: bool = False, device=None,
                   overrides: Optional[Mapping] = None, save_logits: bool = False,
                   batch_size: Optional[int] = None, verbose: bool = True) -> dict:
    """Evaluate every checkpoint at every frame count; write ``cross_eval.csv`` / ``cross_eval.json``.

    ``overrides`` (data/eval keys only: ``EVAL_OVERRIDE_KEYS``) are applied to every checkpoint's
    config, e.g. ``{"data_root": ..., "num_clips": 2}``. Checkpoints reading identical data
    (``DATA_KEYS``) are evaluated together, one decode per batch. ``ensemble=True`` appends a row
    ``ensemble`` (mean softmax of all checkpoints; they must read the same data). With
    ``save_logits``, ``out_dir/logits_<row name, "/" -> "_">_T<T>.npz`` per row and frame count.
    Returns the content of ``cross_eval.json``: ``{"frames", "rows": [{"name", "checkpoint",
    "strategy", "trained_frames", "model_frames", "top1": {T}, "top5", "mean_class_top1",
    "per_class_top1", "routed"}, ...], "views", "overrides", "class_names"}``.
    """
    if not checkpoints:
        raise ValueError("cross_evaluate: no checkpoints given")
    overrides = dict(overrides or {})
    bad = sorted(set(overrides) - set(EVAL_OVERRIDE_KEYS))
    if bad:
        raise ConfigError(f"eval overrides {bad}: only data/evaluation keys can be overridden "
                          f"({', '.join(EVAL_OVERRIDE_KEYS)})")
    frames = parse_frames(frames, key="frames")
    paths = [Path(c) for c in checkpoints]
    loaded = [load_checkpoint(p, device="cpu") for p in paths]
    cfgs = [c.replace(**overrides) if overrides else c for _, c in loaded]
    models = [m for m, _ in loaded]
    groups: dict = {}
    for i, c in enumerate(cfgs):
        groups.setdefault(tuple(getattr(c, k) for k in DATA_KEYS), []).append(i)
    if ensemble and len(groups) > 1:
        raise ConfigError("ensemble: the checkpoints read different validation data "
                          f"({', '.join(DATA_KEYS)} differ); pass data overrides to align them")
    names = _row_names(paths)
    rows = [_empty_row(name=names[i], checkpoint=str(paths[i]), strategy=cfgs[i].strategy,
                       trained_frames=list(cfgs[i].frames), model_frames=list(models[i].frames))
            for i in range(len(paths))]
    ens = _empty_row(name="ensemble", checkpoint="+".join(map(str, paths)), strategy="ensemble",
                     trained_frames=sorted({t for c in cfgs for t in c.frames}), model_frames=[])
    dev = resolve_device(device or cfgs[0].device)
    out_dir = Path(out_dir)
    class_names: list = []
    with cpu_threads(cfgs[0].threads), _eval_mode(models):
        for m in models:
            m.to(dev)
        for members in groups.values():
            cfg = cfgs[members[0]]
            for T in frames:
                loader = _val_loader(cfg, T, batch_size or cfg.batch_size, cfg.num_workers, dev)
                class_names, C = loader.dataset.class_names, loader.dataset.num_classes
                tallies = [ClassificationTally(C) for _ in members]
                outs, labels = _run([models[i] for i in members], loader, T, dev, cfg.amp,
                                    collect=ensemble or save_logits, tallies=tallies)
                for k, i in enumerate(members):
                    r = _result(tallies[k], int(models[i].route(T)))
                    _record(rows[i], T, r)
                    if save_logits:
                        _save_logits(out_dir, names[i].replace("/", "_"), T, outs[k], labels, r["stream"], class_names)
                    if verbose:
                        print(f"eval {names[i]} @ {T} frames (stream {r['stream']}): top1 {r['top1']:.2f} "
                              f"top5 {r['top5']:.2f} ({r['num_samples']} videos)", flush=True)
                if ensemble:
                    mean = np.mean([o["probs"] for o in outs], axis=0)
                    tally = ClassificationTally(C)
                    tally.update(torch.from_numpy(mean), torch.from_numpy(labels))
                    _record(ens, T, _result(tally, None))
                    if save_logits:
                        logp = np.log(np.clip(mean, 1e-12, None))
                        _save_logits(out_dir, "ensemble", T, {"probs": mean, "logits": logp}, labels, -1, class_names)
    if ensemble:
        rows.append(ens)
    result = {"metric": "top1 (%)", "frames": list(frames), "overrides": overrides, "class_names": list(class_names),
              "views": {"num_clips": cfgs[0].num_clips, "test_crops": cfgs[0].test_crops}, "rows": rows}
    _write_cross_eval(out_dir, result)
    return result


def _write_cross_eval(out_dir: Path, result: dict) -> None:
    table = MetricsCSV(out_dir / "cross_eval.csv")
    for r in result["rows"]:
        table.rows.append({"name": r["name"], "checkpoint": r["checkpoint"], "strategy": r["strategy"],
                           "trained_frames": " ".join(map(str, r["trained_frames"])),
                           **{str(T): r["top1"][T] for T in result["frames"]}})
    table.write()
    write_json(out_dir / "cross_eval.json", result)
