"""Checkpoints: plain, atomic, ``weights_only``-loadable (style guide, lesson 7).

A checkpoint is a dict of tensors and plain Python values only::

    format      "ffn-checkpoint/1"
    model       state dict of the bare model (never a ``module.`` prefix: DDP is unwrapped first)
    optimizer, scheduler, scaler        their state dicts (scaler: {} when AMP fp16 is off)
    epoch       number of completed epochs;   global_step
    best        {"epoch", "top1", "frames"} of the best epoch so far (accuracy at the highest trained T)
    history     the metrics.csv rows so far (so a resumed run can rebuild metrics.json)
    rng         {"python", "numpy", "torch", "cuda"} generator states at the end of the epoch
    config      the resolved Config as a plain dict;   frames   the model's trained streams
    model_name, num_classes, class_names, strategy, versions {torch, torchvision, numpy, python, ffn}

Files are written to a temporary file in the same folder and renamed over the target, so an
interrupted save (SIGKILL, a full disk, an unwritable folder) never leaves a truncated ``last.pt``:
the previous one stays as it was, and a failed write raises :class:`CheckpointError` saying so.
Leftover temporary files of a killed save are removed when the next run starts. Loading always uses
``torch.load(..., weights_only=True)``: nothing in a checkpoint can run code.
"""
from __future__ import annotations

import os
import platform
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ffn_core.atomic import atomic_path
from ffn_core.config import Config, ConfigError
from ffn_core.models._safe_pickle import WeightsOnlyLoadError, torch_load_weights_only

__all__ = ["CheckpointError", "save_checkpoint", "read_checkpoint", "load_checkpoint", "build_model",
           "capture_rng", "restore_rng", "unwrap", "versions", "remove_stale_temp_files", "FORMAT"]

FORMAT = "ffn-checkpoint/1"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or does not fit the model/config it is loaded into."""


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside DDP / DataParallel / torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def versions() -> dict:
    import ffn_core
    from ffn_core._tv import torchvision

    return {"torch": str(torch.__version__), "torchvision": str(torchvision.__version__),
            "numpy": str(np.__version__), "python": platform.python_version(), "ffn": str(ffn_core.__version__)}


def capture_rng() -> dict:
    """Generator states of python, numpy (legacy global), torch CPU and every CUDA device."""
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {"name": np_state[0], "key": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(state: dict) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["name"], n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """Write ``state`` (see module docstring) atomically: temp file in the same folder + ``os.replace``."""
    path = Path(path)
    state = {"format": FORMAT, "versions": versions(), **state}
    try:
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
    except OSError as e:
        raise CheckpointError(_write_failed(path, e)) from None
    return path


def _unlink_quietly(path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _write_failed(path: Path, e: OSError) -> str:
    previous = "the previous one is intact" if path.is_file() else "there was no previous one"
    return (f"checkpoint {path}: could not be written ({e.strerror or e}; disk full or folder not writable?); "
            f"{previous}")


def remove_stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Delete ``.<name>.*.tmp`` files a killed save left in ``folder``; returns what was removed."""
    removed = []
    for p in Path(folder).glob(".*.tmp"):
        if p.is_file():
            _unlink_quietly(p)
            removed.append(p)
    return removed


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Load a checkpoint dict with ``weights_only=True``; clear :class:`CheckpointError` otherwise."""
    path = Path(path)
    if not path.is_file():
        hint = " (a directory: pass RUN/best.pt or RUN/last.pt)" if path.is_dir() else ""
        raise CheckpointError(f"checkpoint {path}: not found{hint}")
    try:
        ckpt = torch_load_weights_only(path, map_location=map_location)
    except WeightsOnlyLoadError as e:  # truncated / not a torch file / unsafe pickle
        raise CheckpointError(f"checkpoint {path}: cannot be read ({e.kind}: {e.why}); "
                              "the file is corrupt, truncated or not a ffn checkpoint") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        keys = sorted(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"checkpoint {path}: not a ffn checkpoint (expected keys 'model', 'config', "
                              f"'frames'; got {keys})")
    return ckpt


def build_model(cfg: Config, num_classes: int, frames: tuple, pretrained: str | None = None) -> nn.Module:
    """``create_model`` with the config's model switches and ``model_kwargs`` (backbone-specific
    settings); ``pretrained`` defaults to ``cfg.pretrained``. A bad model name or argument is a
    :class:`ConfigError` naming the key."""
    from ffn_core.models import create_model, list_models

    if cfg.model not in list_models():
        raise ConfigError(f"model={cfg.model!r}: unknown; registered models: {', '.join(list_models())}")
    try:
        return create_model(cfg.model, num_classes=num_classes, frames=tuple(frames), dropout=cfg.dropout,
                            private_norm=cfg.private_norm, weight_alteration=cfg.weight_alteration,
                            weight_sharing=cfg.weight_sharing,
                            pretrained=cfg.pretrained if pretrained is None else pretrained, **cfg.model_kwargs)
    except TypeError as e:
        raise ConfigError(f"model_kwargs={cfg.model_kwargs!r} for model={cfg.model}: {e}") from None


def load_model_state(model: nn.Module, state: dict, source: str) -> None:
    """``load_state_dict(strict=True)`` with a short, readable error (first differing keys)."""
    state = {k[7:] if k.startswith("module.") else k: v for k, v in state.items()}
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
        if shapes:
            parts.append(f"{len(shapes)} with other shapes (e.g. {shapes[:2]})")
        raise CheckpointError(f"{source}: weights do not fit the model: " + "; ".join(parts) +
                              " (different model, frames or ablation switches?)")
    model.load_state_dict(state, strict=True)


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, Config]:
    """``(model in eval mode on device, Config)`` from a checkpoint written by ``fit``.

    The model is rebuilt with the checkpoint's own frames (its trained streams), classes and ablation
    switches; no pretrained weights are loaded (the checkpoint holds them all).
    """
    from ffn_core.models.official import OfficialCheckpointError, official_spec

    try:
        spec = official_spec(path)
    except OfficialCheckpointError as e:
        raise CheckpointError(str(e)) from None
    if spec is not None:
        return _load_official(*spec, device)
    ckpt = read_checkpoint(path)
    try:
        cfg = Config.from_dict(ckpt["config"], source=f"checkpoint {path} (config)")
    except ConfigError as e:
        raise CheckpointError(f"checkpoint {path}: its stored config is invalid here ({e})") from None
    frames = tuple(int(t) for t in ckpt.get("frames") or cfg.frames)
    if not ckpt.get("num_classes"):
        raise CheckpointError(f"checkpoint {path}: no 'num_classes' entry (not written by ffn_core's fit?)")
    num_classes = int(ckpt["num_classes"])
    model = build_model(cfg, num_classes, frames, pretrained="")
    load_model_state(model, ckpt["model"], f"checkpoint {path}")
    model.class_names = list(ckpt.get("class_names") or [])
    model.checkpoint_info = {k: ckpt.get(k) for k in ("epoch", "best", "strategy", "versions")}
    return model.to(device).eval(), cfg


def _load_official(path: str, model_name, device) -> tuple[nn.Module, Config]:
    """``load_checkpoint("official:[MODEL:]PATH")``: a checkpoint released with the original FFN code
    (:func:`~ffn_core.models.load_official_checkpoint`). Its config is ours with the file's model
    and frames (``strategy=ffn``); it stores no data settings, so pass the dataset's keys
    (``data_root=...`` etc.) as overrides to ``eval``."""
    from ffn_core.models.official import OfficialCheckpointError, load_official_checkpoint

    try:
        model, report = load_official_checkpoint(path, model_name)
    except (OfficialCheckpointError, FileNotFoundError) as e:
        raise CheckpointError(str(e)) from None
    cfg = Config(model=report["model"], frames=tuple(report["frames"]), strategy="ffn", pretrained="")
    model.class_names = []
    model.checkpoint_info = {"epoch": report.get("epoch"), "best": report.get("best_prec1"),
                             "strategy": "ffn (released with the original code)", "versions": None}
    return model.to(device).eval(), cfg
