"""``fit(config)``: train one model (ST, FFN or a Table 1 baseline) and write its run directory.

Run directory (``cfg.out_dir``, written by rank 0 only)::

    config.yaml     the resolved config (ffn_core.config.save_config)
    metrics.csv     one row per epoch: lr, loss terms per stream, train top-1 (highest stream),
                    val top-1/top-5 per evaluated frame count, data vs step time, clips/s (+ peak memory on CUDA)
    metrics.json    final metrics (last evaluation incl. per-class accuracy, best epoch, params, GMACs)
    last.pt         end of the latest epoch (resume point);  best.pt   the best epoch by val top-1 at
                    the highest trained frame count (as the paper's scripts)

``resume=true`` with the same ``out_dir`` continues from ``last.pt`` at the next epoch. The data
order and augmentation are functions of ``(seed, epoch)`` (``loader.py``), the strategy's random
decisions too, and the checkpoint restores the RNG states (dropout), so on CPU with
``deterministic=true`` an interrupted and resumed run ends with exactly the weights of an
uninterrupted one (tested).

Multi-process: run under ``torchrun``; ``batch_size`` is the global batch (split over ranks),
gradients are averaged by DDP, metrics summed over ranks.
"""
from __future__ import annotations

import contextlib
import math
import os
import random
import time
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ffn_core.config import Config, load_config, save_config

from . import checkpoint as ck
from .distributed import (DistInfo, all_gather_objects, all_reduce_sum, barrier, cleanup_distributed, cpu_threads,
                          init_distributed)
from .evaluate import evaluate_loaders
from .loader import build_eval_loader, build_train_loader, sample_seed, set_epoch
from .metrics import MetricsCSV, write_json
from .optim import build_optimizer, build_scheduler
from .progress import Progress, log
from .step import autocast_context, forward_backward, optimizer_step
from .strategies import build_strategy

__all__ = ["fit", "train_one_epoch"]


def _as_config(config, overrides: Mapping) -> Config:
    if isinstance(config, Config):
        return config.replace(**overrides) if overrides else config
    if isinstance(config, Mapping):
        return Config.from_dict({**config, **overrides})
    return load_config(config, **overrides)  # a params path or None


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def _determinism(cfg: Config, device: torch.device):
    """``deterministic``: deterministic kernels, no cudnn autotuning; else cudnn.benchmark on CUDA.
    The process-wide flags are restored afterwards (fit may run inside a notebook or a test session)."""
    saved = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark,
             torch.backends.cudnn.deterministic)
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[1], saved[2]


def _prepare_data(cfg: Config, dist: DistInfo) -> None:
    """Generate the synthetic benchmark if its lists are missing (rank 0; the others wait)."""
    missing = not cfg.train_list_path.is_file() or not cfg.val_list_path.is_file()
    if cfg.dataset == "synthetic" and missing and not (cfg.train_list or cfg.val_list):
        if dist.is_main:
            from ffn_core.data.synthetic import ensure_synthetic

            log(f"data: {cfg.data_root} has no lists; generating the synthetic '{cfg.tier}' tier (seed {cfg.seed})")
            ensure_synthetic(cfg.data_root, cfg.tier, cfg.seed, workers=max(1, min(4, os.cpu_count() or 1)))
        barrier()
    for split, path in (("train", cfg.train_list_path), ("val", cfg.val_list_path)):
        if not path.is_file():
            raise FileNotFoundError(
                f"{split} list {path} not found (dataset={cfg.dataset}, data_root={cfg.data_root}): generate the "
                "synthetic benchmark (`python -m ffn_core synth`) or prepare a dataset (`python -m ffn_core prepare`)")


def _freeze_bn(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            m.eval()


def train_one_epoch(ddp_model: nn.Module, loader, strategy, loss_fn, optimizer, scheduler, scaler, cfg: Config,
                    epoch: int, device: torch.device, dist: DistInfo) -> dict:
    """One pass over the training loader; returns the epoch's row (reduced across ranks).

    Timing: ``data_time_s`` is the time spent waiting for batches, ``step_time_s`` the rest (copy,
    forward, backward, update). On CUDA the device is synchronised only at log points and at the end
    of the epoch, so the split between the two is approximate there; the epoch total is exact.
    """
    model = ck.unwrap(ddp_model)
    model.train()
    if cfg.freeze_bn:
        _freeze_bn(model)
    set_epoch(loader, epoch, cfg.seed)
    gen = torch.Generator().manual_seed(sample_seed(cfg.seed, epoch, 2**32 + 1))
    autocast = autocast_context(device, cfg.amp)
    no_sync = getattr(ddp_model, "no_sync", None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    keys, sums = None, None
    n_local, correct = 0, torch.zeros((), dtype=torch.float64, device=device)
    data_time = step_time = 0.0
    steps = len(loader)
    bar = Progress(steps, f"epoch {epoch + 1}/{cfg.epochs}", cfg.log_every, enabled=dist.is_main)
    t_epoch = t_prev = time.perf_counter()
    for step, (clips, target) in enumerate(loader, start=1):
        t_loaded = time.perf_counter()
        data_time += t_loaded - t_prev
        clips = [c.to(device, non_blocking=True) for c in clips]
        target = target.to(device, non_blocking=True)
        inputs = strategy.inputs(clips, gen)
        total, terms, top = forward_backward(ddp_model, inputs, target, loss_fn, stream_backward=cfg.stream_backward,
                                             autocast=autocast, scaler=scaler, no_sync=no_sync)
        optimizer_step(model, optimizer, scaler, cfg.clip_grad)
        scheduler.step()
        b = target.shape[0]
        terms = {"loss": total, **{k: v for k, v in terms.items() if k != "total"}}
        if keys is None:
            keys = list(terms)
            sums = torch.zeros(len(keys), dtype=torch.float64, device=device)
        sums += torch.stack([terms[k].double() for k in keys]) * b
        correct += (top.argmax(dim=1) == target).sum()  # on the device: no per-step sync
        n_local += b
        if bar.wants_text(step):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            loss_now = float(total)
            if not math.isfinite(loss_now):
                raise FloatingPointError(f"epoch {epoch + 1} step {step}: the loss is {loss_now} (lr "
                                         f"{optimizer.param_groups[0]['lr']:.3g}); lower lr or enable clip_grad")
            elapsed = time.perf_counter() - t_epoch
            text = " ".join(f"{k} {float(v):.4f}" for k, v in terms.items())
            text += (f" lr {optimizer.param_groups[0]['lr']:.3g} | {n_local * dist.world_size / elapsed:.1f} clips/s"
                     f" data {100 * data_time / max(elapsed, 1e-9):.0f}%")
            if device.type == "cuda":
                text += f" mem {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB"
            bar.update(step, text)
        else:
            bar.update(step)
        t_prev = time.perf_counter()
        step_time += t_prev - t_loaded
    bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = time.perf_counter() - t_epoch
    red = all_reduce_sum(torch.cat([sums, torch.stack([correct]).double(),
                                    torch.tensor([n_local, data_time, step_time, wall], dtype=torch.float64,
                                                 device=device)]), device)
    n = red[len(keys) + 1].item()
    row = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"]}
    row.update({f"train_{k}": red[i].item() / n for i, k in enumerate(keys)})
    row["train_top1"] = 100.0 * red[len(keys)].item() / n
    w = dist.world_size
    d, s, t = (red[len(keys) + 2 + i].item() / w for i in range(3))
    row.update({"data_time_s": d, "step_time_s": s, "epoch_time_s": t, "samples_per_s": n / max(t, 1e-9)})
    if device.type == "cuda":
        row["peak_mem_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return row


def _wrap_ddp(model: nn.Module, device: torch.device, dist: DistInfo, cfg: Config) -> nn.Module:
    if not dist.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    # stream-by-stream backward: the last synced backward touches only one stream's private modules;
    # multi-stream models trained on one stream (finetune) never touch the others
    unused = len(ck.unwrap(model).frames) > 1 and (cfg.stream_backward or cfg.strategy != "ffn")
    return DDP(model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=unused)


def _resume(path: Path, model, optimizer, scheduler, scaler, model_frames: tuple) -> dict:
    ckpt = ck.read_checkpoint(path)
    frames = tuple(int(t) for t in ckpt.get("frames", ()))
    if frames != tuple(model_frames):
        raise ck.CheckpointError(
            f"resume from {path}: the checkpoint's model has frames={list(frames)} but this config builds "
            f"frames={list(model_frames)}; use the same frames/strategy, or a new out_dir (resume=false)")
    ck.load_model_state(model, ckpt["model"], f"resume from {path}")
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    if ckpt.get("scaler"):
        scaler.load_state_dict(ckpt["scaler"])
    return ckpt


def fit(config=None, **overrides) -> dict:
    """Train according to ``config`` (a Config, a dict of keys, or a params YAML path) + overrides.

    Returns the final metrics (``metrics.json``'s content, including ``run_dir``).
    """
    cfg = _as_config(config, overrides)
    owned = not (torch.distributed.is_available() and torch.distributed.is_initialized())
    dist, device = init_distributed(cfg.device)
    try:
        with cpu_threads(cfg.threads), _determinism(cfg, device):
            return _fit(cfg, dist, device)
    finally:
        if owned and dist.enabled:
            cleanup_distributed()


def _fit(cfg: Config, dist: DistInfo, device: torch.device) -> dict:
    from ffn_core.data import build_dataset

    run_dir = Path(cfg.out_dir)
    main = dist.is_main
    if cfg.amp != "none" and device.type != "cuda":
        log(f"note: amp={cfg.amp} needs CUDA; training in float32 on {device}", main)
    _prepare_data(cfg, dist)
    strategy = build_strategy(cfg)
    train_ds = build_dataset(cfg, "train", frames=strategy.data_frames())
    eval_frames = tuple(sorted(set(cfg.eval_frame_counts) | {strategy.best_frames}))
    val_loaders = {T: build_eval_loader(build_dataset(cfg, "val", frames=(T,)), cfg.batch_size, cfg.num_workers,
                                        dist, device) for T in eval_frames}
    _seed_all(cfg.seed)  # same initial weights on every rank (DDP also broadcasts rank 0's)
    model = ck.build_model(cfg, train_ds.num_classes, strategy.model_frames(),
                           pretrained="" if cfg.strategy == "finetune" else None)
    model = strategy.prepare_model(model).to(device)
    if cfg.channels_last:
        from ffn_core.models import to_channels_last

        model = to_channels_last(model)
    if dist.rank > 0:
        _seed_all(cfg.seed + 7919 * dist.rank)  # ranks draw different dropout masks
    loader, _ = build_train_loader(train_ds, cfg, dist, device)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, len(loader))
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16" and device.type == "cuda")
    loss_fn = strategy.loss_fn()

    start_epoch, best, history = 0, {"epoch": 0, "top1": -1.0, "frames": strategy.best_frames}, []
    last_path = run_dir / "last.pt"
    if cfg.resume and last_path.is_file():
        ckpt = _resume(last_path, model, optimizer, scheduler, scaler, strategy.model_frames())
        start_epoch, best, history = int(ckpt["epoch"]), dict(ckpt["best"]), list(ckpt.get("history", []))
        rng = ckpt["rng"]  # one state per rank under DDP
        ck.restore_rng(rng[min(dist.rank, len(rng) - 1)] if isinstance(rng, list) else rng)
        log(f"resume: {last_path} at epoch {start_epoch}/{cfg.epochs}", main)
    elif cfg.resume:
        log(f"resume: no {last_path} yet; starting from scratch", main)
    if main:
        save_config(cfg, run_dir / "config.yaml")
        log(f"run dir: {run_dir.resolve()}  ({cfg.strategy}, model {cfg.model} frames {list(model.frames)}, "
            f"{len(train_ds)} train videos, {dist.world_size} process(es) on {device})")
    csv = MetricsCSV(run_dir / "metrics.csv", history)
    ddp_model = _wrap_ddp(model, device, dist, cfg)
    results: dict = {}
    t_start = time.perf_counter()
    for epoch in range(start_epoch, cfg.epochs):
        row = train_one_epoch(ddp_model, loader, strategy, loss_fn, optimizer, scheduler, scaler, cfg,
                              epoch=epoch, device=device, dist=dist)
        if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
            results = evaluate_loaders(model, val_loaders, device, train_ds.num_classes, dist, cfg.amp)
            for T, r in results.items():
                row[f"val_top1_{T}"], row[f"val_top5_{T}"] = r["top1"], r["top5"]
            top1 = results[strategy.best_frames]["top1"]
            if top1 > best["top1"]:
                best = {"epoch": epoch + 1, "top1": top1, "frames": strategy.best_frames}
        row["bad_videos"] = len(getattr(train_ds, "bad_videos", ()))
        rng = ck.capture_rng() if not dist.enabled else all_gather_objects(ck.capture_rng())
        if main:
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler.is_enabled() else {},
                     "epoch": epoch + 1, "global_step": (epoch + 1) * len(loader), "best": best,
                     "history": csv.rows + [row], "rng": rng, "config": cfg.to_dict(), "frames": list(model.frames),
                     "model_name": cfg.model, "num_classes": train_ds.num_classes,
                     "class_names": list(train_ds.class_names), "strategy": cfg.strategy}
            ck.save_checkpoint(last_path, state)
            if best["epoch"] == epoch + 1:
                ck.save_checkpoint(run_dir / "best.pt", state)
            csv.append(row)
            log(_epoch_line(row, cfg, eval_frames))
        else:
            csv.rows.append(row)
        barrier()
    if not results:  # nothing left to train (resumed a finished run): evaluate the final weights
        results = evaluate_loaders(model, val_loaders, device, train_ds.num_classes, dist, cfg.amp)
    final = _final_metrics(cfg, run_dir, model, results, best, csv.rows, train_ds, time.perf_counter() - t_start)
    if main:
        write_json(run_dir / "metrics.json", final)
        log(f"done: best top1 {best['top1']:.2f} at {best['frames']} frames (epoch {best['epoch']}); "
            f"run dir {run_dir.resolve()}")
    barrier()
    return final


def _epoch_line(row: dict, cfg: Config, eval_frames) -> str:
    val = " ".join(f"@{T} {row[f'val_top1_{T}']:.2f}" for T in eval_frames if f"val_top1_{T}" in row)
    line = (f"epoch {row['epoch']}/{cfg.epochs}: loss {row['train_loss']:.4f} train top1 {row['train_top1']:.1f} "
            f"| val top1 {val or '-'} | {row['samples_per_s']:.1f} clips/s, data {row['data_time_s']:.1f}s / "
            f"step {row['step_time_s']:.1f}s")
    return line + (f", peak {row['peak_mem_mib']:.0f} MiB" if "peak_mem_mib" in row else "")


def _final_metrics(cfg, run_dir, model, results, best, rows, train_ds, seconds) -> dict:
    from ffn_core.models import count_parameters, gmacs_per_clip

    gmacs = {}
    for T in results:
        try:
            gmacs[T] = gmacs_per_clip(model, int(T), cfg.crop_size)
        except Exception:  # accounting is informative only
            gmacs[T] = None
    last = rows[-1] if rows else {}
    return {
        "run_dir": str(run_dir.resolve()), "name": cfg.name, "strategy": cfg.strategy, "model": cfg.model,
        "frames": list(cfg.frames), "model_frames": list(model.frames), "epochs": cfg.epochs,
        "best_epoch": best["epoch"], "best_frames": best["frames"], "best_top1": best["top1"],
        "top1": {T: r["top1"] for T, r in results.items()}, "top5": {T: r["top5"] for T, r in results.items()},
        "mean_class_top1": {T: r["mean_class_top1"] for T, r in results.items()},
        "per_class_top1": {T: r["per_class_top1"] for T, r in results.items()},
        "routed": {T: r["stream"] for T, r in results.items()}, "class_names": list(train_ds.class_names),
        "final_epoch": last, "params": count_parameters(model), "gmacs_per_clip": gmacs, "crop_size": cfg.crop_size,
        "train_time_s": seconds, "samples_per_s": last.get("samples_per_s"),
        "bad_videos": sorted(getattr(train_ds, "bad_videos", ())),
    }
