"""Initialise FFN models from ImageNet torchvision ResNets or from a trained single-frame-count TSM.

Key mapping: our state-dict keys are torchvision's plus private segments - ``.t{T}`` for each
per-frame-count copy (``layer1.0.bn1.t8.weight``) and ``streams.t{T}.`` for the "w/o WS" model.
Deleting those segments (:func:`canonical_key`) gives the source key, so **every private copy of a
norm receives the same pretrained weights and running statistics** (ffn_method 1.4: the original code
strips the ``_4/_8/_16`` suffixes the same way). Weight alteration has no source and stays at its
near-identity init.

* :func:`load_pretrained` - ``"imagenet"`` (the torchvision weight enum ``IMAGENET1K_V1`` of the
  model's ``tv_arch``; ``"imagenet:IMAGENET1K_V2"`` picks another enum member) read from the torch hub
  cache - nothing is downloaded; or a path to a local ``.pth`` torchvision-ResNet state dict. The
  classifier ``fc`` is skipped (class counts differ).
* :func:`convert_st_to_ffn` - our own single-T TSM state dict (``frames=(T,)``) into an FFN model:
  shared weights copied, the single norm copied to every private copy, WA left at init, ``fc`` copied.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Mapping

import torch
from torch import nn

__all__ = ["PretrainedReport", "canonical_key", "load_pretrained", "convert_st_to_ffn"]

_PRIVATE = re.compile(r"t\d+")


def canonical_key(key: str) -> str:
    """Our key -> the torchvision key: drop ``module.``, ``streams.t{T}.`` and every ``.t{T}`` segment."""
    parts = key.split(".")
    if parts and parts[0] == "module":
        parts = parts[1:]
    if len(parts) > 1 and parts[0] == "streams" and _PRIVATE.fullmatch(parts[1]):
        parts = parts[2:]
    return ".".join(p for p in parts if not _PRIVATE.fullmatch(p))


@dataclass
class PretrainedReport:
    """What a weight transfer did. Keys in ``loaded``/``missing`` are the model's; the others the source's."""

    source: str
    loaded: List[str] = field(default_factory=list)      # model keys filled from the source
    missing: List[str] = field(default_factory=list)     # model keys with no source (WA; fc if skipped)
    unexpected: List[str] = field(default_factory=list)  # source keys nothing used
    skipped: List[str] = field(default_factory=list)     # source keys deliberately not copied (fc)

    def __str__(self) -> str:
        return (f"{self.source}: loaded {len(self.loaded)} tensors, missing {len(self.missing)}, "
                f"unexpected {len(self.unexpected)}, skipped {len(self.skipped)}")


def _unwrap(sd, where: str) -> Dict[str, torch.Tensor]:
    if isinstance(sd, Mapping):
        for key in ("state_dict", "model"):
            if key in sd and isinstance(sd[key], Mapping):
                sd = sd[key]
                break
    if not isinstance(sd, Mapping) or not all(torch.is_tensor(v) for v in sd.values()):
        raise ValueError(f"{where}: expected a state dict (a mapping of parameter names to tensors)")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in sd.items()}


def _imagenet_file(model: nn.Module, source: str) -> str:
    from ffn_core._tv import torchvision

    arch = getattr(model, "tv_arch", None)
    if not arch:
        raise ValueError(
            f"pretrained={source!r}: {type(model).__name__} has no torchvision ImageNet counterpart "
            "(e.g. tsm_tiny); pass a path to a .pth state dict instead"
        )
    member = source.split(":", 1)[1] if ":" in source else "IMAGENET1K_V1"
    enum = torchvision.models.get_model_weights(arch)
    if member not in enum.__members__:
        raise ValueError(f"pretrained={source!r}: {enum.__name__} has no member {member!r}; "
                         f"choose from {list(enum.__members__)}")
    weights = enum[member]
    path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"pretrained={source!r}: {enum.__name__}.{member} is not in the torch hub cache and nothing is "
            f"downloaded here. Download {weights.url} and put it at {path} (the cache follows $TORCH_HOME), "
            "or pass the local .pth path as pretrained=<path>"
        )
    return path


def _read(model: nn.Module, source) -> Dict[str, torch.Tensor]:
    if isinstance(source, Mapping):
        return _unwrap(source, "pretrained=<mapping>")
    source = os.fspath(source)
    path = _imagenet_file(model, source) if source.split(":")[0] == "imagenet" else source
    if not os.path.isfile(path):
        raise FileNotFoundError(f"pretrained={source!r}: no such file; expected 'imagenet' or a .pth path")
    return _unwrap(torch.load(path, map_location="cpu", weights_only=True), f"pretrained file {path}")


def _transfer(model: nn.Module, src: Mapping[str, torch.Tensor], source: str, copy_fc: bool) -> PretrainedReport:
    report = PretrainedReport(source)
    used, mismatched = set(), []
    for key, dst in model.state_dict().items():  # tensors share storage with the model's
        ckey = canonical_key(key)
        if not copy_fc and ckey.startswith("fc."):
            report.missing.append(key)
            continue
        if ckey not in src:
            report.missing.append(key)
            continue
        val = src[ckey]
        if tuple(val.shape) != tuple(dst.shape):
            mismatched.append(f"{key} <- {ckey}: model {tuple(dst.shape)}, source {tuple(val.shape)}")
            continue
        with torch.no_grad():
            dst.copy_(val.to(dtype=dst.dtype))
        report.loaded.append(key)
        used.add(ckey)
    if mismatched:
        raise ValueError(f"{source}: {len(mismatched)} tensors have the wrong shape (is it the same "
                         f"architecture?), e.g. " + "; ".join(mismatched[:5]))
    for k in src:
        if k not in used:
            (report.skipped if (not copy_fc and k.startswith("fc.")) else report.unexpected).append(k)
    return report


def load_pretrained(model: nn.Module, source) -> PretrainedReport:
    """Copy a torchvision-ResNet state dict into ``model`` (every private copy; ``fc`` skipped).

    Args:
        model: any model of this package (FFN, ST, or "w/o WS").
        source: ``"imagenet"`` / ``"imagenet:<ENUM MEMBER>"`` (from the torch hub cache), a ``.pth``
            path, or an in-memory state dict.
    Returns:
        a :class:`PretrainedReport`. Raises ``ValueError`` if nothing matched or shapes differ, and
        ``FileNotFoundError`` (saying where to put the file) if the weights are not available.
    """
    name = source if isinstance(source, (str, os.PathLike)) else "pretrained=<mapping>"
    report = _transfer(model, _read(model, source), str(name), copy_fc=False)
    if not report.loaded:
        raise ValueError(f"{name}: no key of the source matched the model (source keys e.g. "
                         f"{report.unexpected[:3]}); expected a torchvision ResNet state dict")
    return report


def convert_st_to_ffn(st_state_dict: Mapping[str, torch.Tensor], ffn_model: nn.Module) -> PretrainedReport:
    """Initialise ``ffn_model`` from a trained single-frame-count TSM of the same architecture.

    ``st_state_dict`` is our model's state dict with ``frames=(T,)`` (or a checkpoint holding it under
    ``"model"``). Every tensor is copied, the single norm into every private copy, ``fc`` included;
    WA keeps its init. Raises ``ValueError`` if the dict is not single-stream, or if any non-WA key of
    ``ffn_model`` has no source, or any source key is unused.
    """
    src = _unwrap(st_state_dict, "convert_st_to_ffn(st_state_dict)")
    private = [k for k in src if canonical_key(k) != k]
    if private:
        raise ValueError(f"convert_st_to_ffn: st_state_dict has per-stream keys (e.g. {private[0]!r}); "
                         "expected a single-frame-count model's state dict (frames=(T,))")
    report = _transfer(ffn_model, src, "convert_st_to_ffn", copy_fc=True)
    absent = [k for k in report.missing if ".alter." not in k]
    if absent or report.unexpected:
        raise ValueError(f"convert_st_to_ffn: architectures differ: model keys without source "
                         f"{absent[:5]}, unused source keys {report.unexpected[:5]}")
    return report
