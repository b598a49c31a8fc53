"""Initialise FFN models from pretrained single-norm weights or from a trained single-frame-count model.

Key mapping: our state-dict keys are the single-stream model's keys plus private segments - ``.t{T}``
for each per-frame-count copy (``layer1.0.bn1.t8.weight``) and ``streams.t{T}.`` for the "w/o WS"
model. Deleting those segments (:func:`canonical_key`) gives the single-stream key, so **every
private copy of a norm receives the same pretrained weights and running statistics** (the original
code strips its ``_4/_8/_16`` suffixes the same way). Weight alteration has no source and stays at
its near-identity init.

A pretrained file in another layout (Res2Net for TEA, caffe2 SlowFast, Uniformer) is first mapped
onto the single-stream keys by the variant's declared ``ModelCfg.pretrained_keys`` function; nothing
here knows an architecture.

* :func:`load_pretrained` - ``"imagenet"`` (the torchvision weight enum ``IMAGENET1K_V1`` named by
  the variant's ``ModelCfg.hub_weights``; ``"imagenet:IMAGENET1K_V2"`` picks another member) read
  from the torch hub cache - nothing is downloaded; or a path to a local file: a torch state dict /
  checkpoint (``torch.load(weights_only=True)``), or a ``.pkl`` pickle of numpy arrays (caffe2,
  read by a restricted unpickler, :mod:`._safe_pickle`). The classifier (``ModelCfg.classifier``)
  is skipped: class counts differ.
* :func:`convert_st_to_ffn` - our own single-T model's state dict (``frames=(T,)``) into an FFN
  model: shared weights copied, the single norm copied to every private copy, WA left at init, the
  classifier copied.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Mapping

import numpy as np
import torch
from torch import nn

__all__ = ["PretrainedReport", "canonical_key", "load_pretrained", "convert_st_to_ffn", "read_weights_file",
           "weight_alteration_keys", "classifier_keys"]

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
    missing: List[str] = field(default_factory=list)     # model keys with no source (WA; the classifier if skipped)
    unexpected: List[str] = field(default_factory=list)  # source keys nothing used
    skipped: List[str] = field(default_factory=list)     # source keys deliberately not copied (the classifier)

    def __str__(self) -> str:
        return (f"{self.source}: loaded {len(self.loaded)} tensors, missing {len(self.missing)}, "
                f"unexpected {len(self.unexpected)}, skipped {len(self.skipped)}")


_WRAPPERS = ("state_dict", "model", "model_state", "blobs")  # torch / PySlowFast / caffe2 containers


def _unwrap(sd, where: str) -> Dict[str, torch.Tensor]:
    """The state dict inside a checkpoint (``state_dict``/``model``/``model_state``/``blobs``), with
    ``module.`` prefixes removed and numpy arrays as tensors."""
    for _ in range(2):  # e.g. {"model": {"state_dict": ...}}
        if isinstance(sd, Mapping):
            for key in _WRAPPERS:
                if key in sd and isinstance(sd[key], Mapping):
                    sd = sd[key]
                    break
    if isinstance(sd, Mapping):
        sd = {k: torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v
              for k, v in sd.items()}
    if not isinstance(sd, Mapping) or not sd or not all(torch.is_tensor(v) for v in sd.values()):
        raise ValueError(f"{where}: expected a state dict (a mapping of parameter names to tensors)")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in sd.items()}


def _cfg(model: nn.Module):
    return getattr(model, "model_cfg", None)


def classifier_keys(model: nn.Module) -> set:
    """Single-stream (canonical) keys of the model's classifier parameters (``get_classifier()``)."""
    ids = {id(p) for p in model.get_classifier().parameters()}
    return {canonical_key(n) for n, p in model.named_parameters() if id(p) in ids}


def _imagenet_file(model: nn.Module, source: str) -> str:
    from ffn_core._tv import torchvision

    cfg = _cfg(model)
    arch = cfg.hub_weights if cfg is not None else ""
    if not arch:
        name = getattr(model, "model_name", "") or type(model).__name__
        raise ValueError(
            f"pretrained={source!r}: {name} has no torchvision ImageNet counterpart; pass the path of a "
            "local weights file instead (pretrained=<path>)"
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


def read_weights_file(path: str | os.PathLike, where: str = "") -> Dict[str, torch.Tensor]:
    """A local weights file as a flat ``{key: tensor}`` dict in the file's own key layout.

    ``.pkl``: a pickle of dicts/lists/numpy arrays (caffe2), read without running code; anything
    else: ``torch.load(weights_only=True)``. A file that needs full unpickling is refused with the
    reason, never loaded."""
    from ._safe_pickle import WeightsOnlyLoadError, read_numpy_pickle, torch_load_weights_only

    path = os.fspath(path)
    where = where or f"pretrained file {path}"
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{where}: no such file")
    if path.endswith(".pkl"):
        obj = read_numpy_pickle(path)
        blobs = obj.get("blobs", obj) if isinstance(obj, Mapping) else obj
        if isinstance(blobs, Mapping):  # caffe2 keeps solver state (ints, strings) beside the arrays
            blobs = {k: v for k, v in blobs.items() if isinstance(v, np.ndarray)}
        return _unwrap(blobs, where)
    try:
        obj = torch_load_weights_only(path)
    except WeightsOnlyLoadError as e:
        if e.unsafe:
            raise ValueError(f"{where}: refused: torch.load(weights_only=True) cannot read it and full "
                             f"unpickling could run code ({e.why[:200]}); re-save its tensors with "
                             "torch.save(model.state_dict(), path)") from None
        raise ValueError(f"{where}: not a readable torch file ({e.kind}: {e.why[:200]})") from None
    return _unwrap(obj, where)


def _read(model: nn.Module, source) -> Dict[str, torch.Tensor]:
    """The source's tensors mapped onto the model's single-stream keys (``ModelCfg.pretrained_keys``)."""
    if isinstance(source, Mapping):
        src = _unwrap(source, "pretrained=<mapping>")
    else:
        source = os.fspath(source)
        path = _imagenet_file(model, source) if source.split(":")[0] == "imagenet" else source
        if not os.path.isfile(path):
            raise FileNotFoundError(f"pretrained={source!r}: no such file; expected 'imagenet' or a weights file path")
        src = read_weights_file(path, f"pretrained file {path}")
    cfg = _cfg(model)
    if cfg is not None and cfg.pretrained_keys is not None:
        src = cfg.pretrained_keys(src)
    return src


def weight_alteration_keys(model: nn.Module) -> set:
    """State-dict keys of the model's weight-alteration modules (they never have a pretrained source)."""
    from .flexible_norm import WeightAlteration

    prefixes = [name + "." for name, m in model.named_modules() if isinstance(m, WeightAlteration)]
    return {k for k in model.state_dict() if any(k.startswith(p) for p in prefixes)}


def _transfer(model: nn.Module, src: Mapping[str, torch.Tensor], source: str, copy_fc: bool) -> PretrainedReport:
    report = PretrainedReport(source)
    used, mismatched = set(), []
    head = classifier_keys(model)
    for key, dst in model.state_dict().items():  # tensors share storage with the model's
        ckey = canonical_key(key)
        if not copy_fc and ckey in head:
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
            (report.skipped if (not copy_fc and k in head) else report.unexpected).append(k)
    return report


def load_pretrained(model: nn.Module, source) -> PretrainedReport:
    """Copy single-norm pretrained weights into ``model`` (every private copy; the classifier skipped).

    Args:
        model: a model built by ``create_model`` (FFN, ST, or "w/o WS"); its ``model_cfg`` says where
            "imagenet" comes from and how the file's keys map onto the model's.
        source: ``"imagenet"`` / ``"imagenet:<ENUM MEMBER>"`` (from the torch hub cache), a weights
            file path (``.pth``/``.pt``/``.pyth``; ``.pkl`` caffe2), or an in-memory state dict.
    Returns:
        a :class:`PretrainedReport`. Raises ``ValueError`` if nothing matched or shapes differ, and
        ``FileNotFoundError`` (saying where to put the file) if the weights are not available.
    """
    name = source if isinstance(source, (str, os.PathLike)) else "pretrained=<mapping>"
    report = _transfer(model, _read(model, source), str(name), copy_fc=False)
    if not report.loaded:
        model_name = getattr(model, "model_name", "") or type(model).__name__
        raise ValueError(f"{name}: no key of the source matched {model_name} (source keys e.g. "
                         f"{report.unexpected[:3]}, model keys e.g. {report.missing[:3]}); is it a "
                         f"{model_name} weights file?")
    return report


def convert_st_to_ffn(st_state_dict: Mapping[str, torch.Tensor], ffn_model: nn.Module) -> PretrainedReport:
    """Initialise ``ffn_model`` from a trained single-frame-count model of the same architecture.

    ``st_state_dict`` is our model's state dict with ``frames=(T,)`` (or a checkpoint holding it under
    ``"model"``). Every tensor is copied, the single norm into every private copy, the classifier included;
    WA keeps its init. Raises ``ValueError`` if the dict is not single-stream, or if any non-WA key of
    ``ffn_model`` has no source, or any source key is unused.
    """
    src = _unwrap(st_state_dict, "convert_st_to_ffn(st_state_dict)")
    private = [k for k in src if canonical_key(k) != k]
    if private:
        raise ValueError(f"convert_st_to_ffn: st_state_dict has per-stream keys (e.g. {private[0]!r}); "
                         "expected a single-frame-count model's state dict (frames=(T,))")
    report = _transfer(ffn_model, src, "convert_st_to_ffn", copy_fc=True)
    wa = weight_alteration_keys(ffn_model)
    absent = [k for k in report.missing if k not in wa]
    if absent or report.unexpected:
        raise ValueError(f"convert_st_to_ffn: architectures differ: model keys without source "
                         f"{absent[:5]}, unused source keys {report.unexpected[:5]}")
    return report
