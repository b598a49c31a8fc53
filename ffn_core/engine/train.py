"""``fit(config)``: train one model (ST, FFN or a Table 1 baseline) and write its run directory.

Run directory (``cfg.out_dir``, written by rank 0 only)::

    config.yaml     the resolved config (ffn_core.config.save_config)
    metrics.csv     one row per epoch: lr, loss terms per stream, train top-1 (highest stream),
                    val top-1/top-5 per evaluated frame count, data vs step time, clips/s, skipped
                    videos per split, skipped steps (+ peak memory on CUDA)
    metrics.json    final metrics (last evaluation incl. per-class accuracy, best epoch, params, GMACs,
                    the skipped videos by name, the short videos)
    last.pt         the latest resume point;  best.pt   the best epoch by val top-1 at the highest
                    trained frame count (as the paper's scripts)
    bad_samples.jsonl   every unreadable video skipped (``on_bad_sample=skip``), from any process
    .lock           held while the run is alive (a second run on this out_dir refuses)

Never losing work (``ffn_core.engine.faults``):

* an epoch's checkpoint is written *before* its validation; if validation fails (a broken val
  video under ``on_bad_sample=raise``, a crash, a kill) ``resume=true`` first validates that epoch,
  then trains on - metrics.csv never duplicates or misses an epoch;
* SIGTERM / SIGINT write a mid-epoch checkpoint at the next step boundary (optimizer, scheduler,
  RNG states, the sampler position and the epoch's running sums) and stop with a message naming it;
  ``resume=true`` continues from that step - bitwise on CPU in deterministic mode (tested);
* every checkpoint write is atomic (temp file + rename), so a SIGKILL at any moment leaves the
  previous ``last.pt`` loadable;
* a NaN/inf loss term or gradient is caught on every step (``on_nonfinite``).

``resume=true`` with the same ``out_dir`` continues from ``last.pt``. The data order and
augmentation are functions of ``(seed, epoch, index)`` (``loader.py``), the strategy's random
decisions come from a generator whose state is checkpointed, and the checkpoint restores the RNG
states (dropout), so an interrupted and resumed run ends with the weights of an uninterrupted one.

Multi-process: run under ``torchrun``; ``batch_size`` is the global batch (split over ranks),
gradients are averaged by DDP, metrics summed over ranks. Under DDP the stop flag of a signal is
agreed on by all ranks at every step (one tiny all-reduce), so they stop at the same step.
"""
from __future__ import annotations

import contextlib
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
from .faults import Interrupted, NonFiniteGuard, RunLock, StopSignals
from .loader import build_eval_loader, build_train_loader, sample_seed, set_epoch
from .metrics import MetricsCSV, write_json
from .optim import build_optimizer, build_scheduler
from .progress import Progress, log, milestone
from .step import autocast_context, cpu_has_bf16, forward_backward, optimizer_step, resolve_amp
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
    """Generate the synthetic benchmark when asked (``tier`` set, lists missing; rank 0, the others
    wait); otherwise missing data is an error naming the folder, never silently generated."""
    missing = not cfg.train_list_path.is_file() or not cfg.val_list_path.is_file()
    if cfg.dataset == "synthetic" and missing and cfg.tier and not (cfg.train_list or cfg.val_list):
        if dist.is_main:
            from ffn_core.data.synthetic import ensure_synthetic

            log(f"data: {cfg.data_root} has no lists; generating the synthetic '{cfg.tier}' tier (seed {cfg.seed})")
            ensure_synthetic(cfg.data_root, cfg.tier, cfg.seed, workers=max(1, min(4, os.cpu_count() or 1)))
        barrier()
    if not Path(cfg.data_root).is_dir() and not (cfg.train_list and cfg.val_list):
        hint = (f"generate the synthetic benchmark there (`python -m ffn_core synth --tier smoke --out {cfg.data_root}`, "
                "or tier=smoke to generate it as part of training)" if cfg.dataset == "synthetic" else
                f"prepare it (`python -m ffn_core prepare {cfg.dataset} --root RELEASE --out {cfg.data_root}`)")
        raise FileNotFoundError(f"data_root={cfg.data_root}: no such folder; {hint}")
    for split, path in (("train", cfg.train_list_path), ("val", cfg.val_list_path)):
        if not path.is_file():
            raise FileNotFoundError(
                f"{split} list {path} not found (dataset={cfg.dataset}, data_root={cfg.data_root}): generate the "
                "synthetic benchmark (`python -m ffn_core synth`, or set tier=) or prepare a dataset "
                "(`python -m ffn_core prepare`)")


def _freeze_bn(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            m.eval()


def _stop_now(stop: StopSignals | None, dist: DistInfo, device: torch.device) -> bool:
    """All ranks agree: stop if any rank got a signal."""
    flag = bool(stop is not None and stop.requested)
    if not dist.enabled:
        return flag
    return bool(all_reduce_sum(torch.tensor([float(flag)], dtype=torch.float64, device=device), device)[0] > 0)


def train_one_epoch(ddp_model: nn.Module, loader, strategy, loss_fn, optimizer, scheduler, scaler, cfg: Config,
                    epoch: int, device: torch.device, dist: DistInfo, resume: dict | None = None,
                    stop: StopSignals | None = None, on_stop=None, guard: NonFiniteGuard | None = None) -> dict:
    """One pass over the training loader; returns the epoch's row (reduced across ranks).

    ``resume``: the ``partial`` state of a mid-epoch checkpoint - the first ``resume["step"]``
    batches are skipped in the sampler and the running sums continue. ``stop``/``on_stop``: when a
    signal arrived, ``on_stop(partial_state)`` writes a checkpoint (it returns its path) and
    :class:`Interrupted` ends the epoch. ``guard``: the non-finite check of every step.

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
    guard = guard or NonFiniteGuard(cfg.on_nonfinite, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    steps = len(loader)  # batches of the whole epoch
    keys, sums = None, None
    n_local, correct = 0, torch.zeros((), dtype=torch.float64, device=device)
    data_time = step_time = 0.0
    first, amp_skipped, nonfinite0 = 0, 0, guard.skipped
    if resume:
        first = int(resume["step"])
        loader.sampler.skip(first * loader.batch_size)
        keys = list(resume["keys"]) if resume["keys"] else None
        sums = resume["sums"].to(device) if resume["keys"] else None
        correct = resume["correct"].to(device)
        n_local, data_time, step_time = int(resume["n"]), float(resume["data_time"]), float(resume["step_time"])
        amp_skipped = int(resume.get("amp_skipped", 0))
        gen.set_state(resume["gen_state"])
    bar = Progress(steps, f"epoch {epoch + 1}/{cfg.epochs}", cfg.log_every, enabled=dist.is_main)
    t_epoch = t_prev = time.perf_counter()
    for step, (clips, target) in enumerate(loader, start=first + 1):
        t_loaded = time.perf_counter()
        data_time += t_loaded - t_prev
        clips = [c.to(device, non_blocking=True) for c in clips]
        target = target.to(device, non_blocking=True)
        inputs = strategy.inputs(clips, gen)
        total, terms, top = forward_backward(ddp_model, inputs, target, loss_fn, stream_backward=cfg.stream_backward,
                                             autocast=autocast, scaler=scaler, no_sync=no_sync)
        terms = {"loss": total, **{k: v for k, v in terms.items() if k != "total"}}
        amp = scaler is not None and scaler.is_enabled()
        norm = None if amp else NonFiniteGuard.grad_norm(model)  # fp16: the GradScaler skips inf gradients itself
        if guard.check(epoch, step, terms, norm):
            scale = scaler.get_scale() if amp else None
            optimizer_step(model, optimizer, scaler, cfg.clip_grad)
            if amp and scaler.get_scale() < scale:  # the scaler found inf/NaN gradients and skipped the update
                amp_skipped += 1
        else:
            optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        b = target.shape[0]
        if keys is None:
            keys = list(terms)
            sums = torch.zeros(len(keys), dtype=torch.float64, device=device)
        sums += torch.stack([terms[k].double() for k in keys]) * b
        correct += (top.argmax(dim=1) == target).sum()  # on the device: no per-step sync
        n_local += b
        if bar.wants_text(step):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            guard.flush()
            elapsed = time.perf_counter() - t_epoch
            text = " ".join(f"{k} {float(v):.4f}" for k, v in terms.items())
            text += (f" lr {optimizer.param_groups[0]['lr']:.3g} | {(n_local - (resume or {}).get('n', 0)) * dist.world_size / max(elapsed, 1e-9):.1f} clips/s"
                     f" data {100 * data_time / max(elapsed, 1e-9):.0f}%")
            if device.type == "cuda":
                text += f" mem {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB"
            bar.update(step, text)
        else:
            bar.update(step)
        t_prev = time.perf_counter()
        step_time += t_prev - t_loaded
        if step < steps and _stop_now(stop, dist, device):
            guard.flush()
            partial = {"epoch": epoch, "step": step, "keys": keys, "sums": sums.cpu(), "correct": correct.cpu(),
                       "n": n_local, "data_time": data_time, "step_time": step_time, "amp_skipped": amp_skipped,
                       "gen_state": gen.get_state()}
            bar.close()
            path = on_stop(partial) if on_stop is not None else None
            raise Interrupted(stop.signum if stop is not None and stop.signum else 15, path, epoch, step)
    bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    guard.flush()
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
    row["skipped_steps_nonfinite"] = guard.skipped - nonfinite0
    if scaler is not None and scaler.is_enabled():
        row["skipped_steps_amp"] = amp_skipped
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

    Returns the final metrics (``metrics.json``'s content, including ``run_dir``). Raises
    :class:`~ffn_core.engine.faults.Interrupted` after SIGTERM/SIGINT (a checkpoint was written),
    :class:`~ffn_core.engine.faults.RunInUseError` if another run holds ``out_dir``.
    """
    cfg = _as_config(config, overrides)
    owned = not (torch.distributed.is_available() and torch.distributed.is_initialized())
    dist, device = init_distributed(cfg.device)
    try:
        with cpu_threads(cfg.threads), _determinism(cfg, device), RunLock(cfg.out_dir, dist.is_main), \
                StopSignals() as stop:
            return _fit(cfg, dist, device, stop)
    finally:
        if owned and dist.enabled:
            cleanup_distributed()


def _skipped(bad_log: Path, split: str) -> dict:
    from ffn_core.data import read_bad_log

    return read_bad_log(bad_log).get(split, {})


def _fit(cfg: Config, dist: DistInfo, device: torch.device, stop: StopSignals | None = None) -> dict:
    from ffn_core.data import build_dataset

    run_dir = Path(cfg.out_dir)
    main = dist.is_main
    if cfg.amp == "fp16" and device.type != "cuda":
        log(f"note: amp=fp16 needs CUDA; training in float32 on {device} (amp=bf16 runs on CPU too)", main)
    elif cfg.amp == "bf16" and device.type == "cpu" and not cpu_has_bf16():
        log("note: this CPU has no native bfloat16 (avx512_bf16 / AMX): amp=bf16 is emulated here and several "
            "times slower than amp=none (amp=auto picks float32 here)", main)
    elif cfg.amp == "auto":  # resolved by autocast_context wherever it is used; config.yaml keeps "auto"
        bf16 = resolve_amp("auto", device) == "bf16"
        log(f"amp=auto: {'bfloat16 autocast' if bf16 else 'float32'} on {device}"
            + ("" if bf16 or device.type != "cpu" else " (this CPU has no native bfloat16)"), main)
    _prepare_data(cfg, dist)
    strategy = build_strategy(cfg)
    bad_log = run_dir / "bad_samples.jsonl"
    train_ds = build_dataset(cfg, "train", frames=strategy.data_frames(), bad_log=bad_log)
    eval_frames = tuple(sorted(set(cfg.eval_frame_counts) | {strategy.best_frames}))
    val_sets = {T: build_dataset(cfg, "val", frames=(T,), bad_log=bad_log) for T in eval_frames}
    val_loaders = {T: build_eval_loader(ds, cfg.batch_size, cfg.num_workers, dist, device) for T, ds in val_sets.items()}
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
    guard = NonFiniteGuard(cfg.on_nonfinite, device)

    start_epoch, best, history = 0, {"epoch": 0, "top1": -1.0, "frames": strategy.best_frames}, []
    partial, pending = None, None
    last_path = run_dir / "last.pt"
    if cfg.resume and last_path.is_file():
        ckpt = _resume(last_path, model, optimizer, scheduler, scaler, strategy.model_frames())
        start_epoch, best, history = int(ckpt["epoch"]), dict(ckpt["best"]), list(ckpt.get("history", []))
        partial, pending = ckpt.get("partial"), ckpt.get("pending_row")
        rng = ckpt["rng"]  # one state per rank under DDP
        ck.restore_rng(rng[min(dist.rank, len(rng) - 1)] if isinstance(rng, list) else rng)
        where = (f"epoch {partial['epoch'] + 1} step {partial['step']}" if partial else
                 f"epoch {start_epoch}/{cfg.epochs}" + (" (its validation first)" if pending else ""))
        log(f"resume: {last_path} at {where}", main)
    elif cfg.resume:
        log(f"resume: no {last_path} yet; starting from scratch", main)
    if main:
        ck.remove_stale_temp_files(run_dir)
        save_config(cfg, run_dir / "config.yaml")
        log(f"run dir: {run_dir.resolve()}  ({cfg.strategy}, model {cfg.model} frames {list(model.frames)}, "
            f"{len(train_ds)} train videos, {dist.world_size} process(es) on {device})")
    csv = MetricsCSV(run_dir / "metrics.csv", history)
    ddp_model = _wrap_ddp(model, device, dist, cfg)
    results: dict = {}
    t_start = time.perf_counter()

    def state(epoch_done: int, **extra) -> dict:
        rng = ck.capture_rng() if not dist.enabled else all_gather_objects(ck.capture_rng())
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler.is_enabled() else {},
                "epoch": epoch_done, "global_step": scheduler.last_epoch, "best": best, "history": list(csv.rows),
                "rng": rng, "config": cfg.to_dict(), "frames": list(model.frames), "model_name": cfg.model,
                "num_classes": train_ds.num_classes, "class_names": list(train_ds.class_names),
                "strategy": cfg.strategy, "partial": None, "pending_row": None, **extra}

    def save_partial(p: dict) -> Path:
        st = state(p["epoch"], partial=p)
        if main:
            ck.save_checkpoint(last_path, st)
        barrier()
        return last_path

    def finish_epoch(epoch: int, row: dict) -> None:
        """Validate epoch ``epoch`` (0-based, trained) if due, then the final checkpoint and csv row."""
        nonlocal best, results
        if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
            results = evaluate_loaders(model, val_loaders, device, train_ds.num_classes, dist, cfg.amp)
            for T, r in results.items():
                row[f"val_top1_{T}"], row[f"val_top5_{T}"] = r["top1"], r["top5"]
            top1 = results[strategy.best_frames]["top1"]
            if top1 > best["top1"]:
                best = {"epoch": epoch + 1, "top1": top1, "frames": strategy.best_frames}
        barrier()
        row["bad_videos_train"] = len(_skipped(bad_log, "train"))
        row["bad_videos_val"] = len(_skipped(bad_log, "val"))
        csv.rows.append(row)
        st = state(epoch + 1)
        if main:
            ck.save_checkpoint(last_path, st)
            if best["epoch"] == epoch + 1:
                ck.save_checkpoint(run_dir / "best.pt", st)
            csv.write()
            milestone(_epoch_line(row, cfg, eval_frames), where=run_dir)
            _report_new_skips(bad_log, reported)
        barrier()

    reported: set = set()
    if pending is not None:  # trained, but its validation never finished (a failure or a kill)
        finish_epoch(start_epoch - 1, dict(pending))
    first = partial["epoch"] if partial else start_epoch
    for epoch in range(first, cfg.epochs):
        if stop is not None and stop.requested:  # a signal during the last validation / checkpoint
            raise Interrupted(stop.signum, last_path, epoch, 0)
        row = train_one_epoch(ddp_model, loader, strategy, loss_fn, optimizer, scheduler, scaler, cfg,
                              epoch=epoch, device=device, dist=dist, resume=partial if epoch == first else None,
                              stop=stop, on_stop=save_partial, guard=guard)
        st = state(epoch + 1, pending_row=row)  # the epoch's training is safe before its validation starts
        if main:
            ck.save_checkpoint(last_path, st)
        finish_epoch(epoch, row)
    if not results:  # nothing left to train (resumed a finished run): evaluate the final weights
        results = evaluate_loaders(model, val_loaders, device, train_ds.num_classes, dist, cfg.amp)
    final = _final_metrics(cfg, run_dir, model, results, best, csv.rows, train_ds, time.perf_counter() - t_start)
    final["bad_videos"] = {split: _skipped(bad_log, split) for split in ("train", "val")}
    final["short_videos"] = {"train": train_ds.short_videos, "val": {T: ds.short_videos for T, ds in val_sets.items()}}
    final["skipped_steps_nonfinite"] = sum(int(r.get("skipped_steps_nonfinite") or 0) for r in csv.rows)
    if main:
        write_json(run_dir / "metrics.json", final)
        milestone(_summary(final, best, run_dir), where=run_dir)
    barrier()
    return final


def _report_new_skips(bad_log: Path, reported: set) -> None:
    """Name every skipped video once (workers' skips reach the main process through the log file)."""
    from ffn_core.data import read_bad_log

    for split, items in read_bad_log(bad_log).items():
        for path, info in items.items():
            if (split, path) not in reported:
                reported.add((split, path))
                log(f"skipped {split} video {path} ({info['where']}): {info['error']}")


def _summary(final: dict, best: dict, run_dir: Path) -> str:
    line = (f"done: best top1 {best['top1']:.2f} at {best['frames']} frames (epoch {best['epoch']}); "
            f"run dir {run_dir.resolve()}")
    for split, items in final["bad_videos"].items():
        if items:
            line += f"\n  skipped {len(items)} unreadable {split} video(s): " + ", ".join(sorted(items))
    for T, r in final.get("eval", {}).items():
        if r.get("skipped"):
            line += f"\n  val @{T}: top-1 over {r['num_samples']} clips ({r['skipped']} left out)"
    if final.get("skipped_steps_nonfinite"):
        line += f"\n  skipped {final['skipped_steps_nonfinite']} update(s) with a non-finite loss or gradient"
    return line


def _epoch_line(row: dict, cfg: Config, eval_frames) -> str:
    val = " ".join(f"@{T} {row[f'val_top1_{T}']:.2f}" for T in eval_frames if f"val_top1_{T}" in row)
    line = (f"epoch {row['epoch']}/{cfg.epochs}: loss {row['train_loss']:.4f} train top1 {row['train_top1']:.1f} "
            f"| val top1 {val or '-'} | {row['samples_per_s']:.1f} clips/s, data {row['data_time_s']:.1f}s / "
            f"step {row['step_time_s']:.1f}s")
    line += f", peak {row['peak_mem_mib']:.0f} MiB" if "peak_mem_mib" in row else ""
    if row.get("bad_videos_train") or row.get("bad_videos_val"):
        line += f"; unreadable videos skipped so far: train {row['bad_videos_train']}, val {row['bad_videos_val']}"
    if row.get("skipped_steps_nonfinite") or row.get("skipped_steps_amp"):
        line += (f"; updates skipped: {row.get('skipped_steps_nonfinite', 0)} non-finite, "
                 f"{row.get('skipped_steps_amp', 0)} by the AMP scaler")
    return line


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
        "eval": {T: {"num_samples": r["num_samples"], "skipped": r.get("skipped", 0)} for T, r in results.items()},
        "final_epoch": last, "params": count_parameters(model), "gmacs_per_clip": gmacs, "crop_size": cfg.crop_size,
        "train_time_s": seconds, "samples_per_s": last.get("samples_per_s"),
        "precision": {"bf16": "bfloat16", "fp16": "float16"}.get(resolve_amp(cfg.amp, next(model.parameters()).device),
                                                                  "float32"),
    }
