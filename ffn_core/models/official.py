"""Checkpoints released with the original FFN code, converted into our models.

``load_official_checkpoint(path, "tsm_r50")`` reads a released TSM-FFN file (``torch.save({'epoch',
'arch', 'state_dict', ...})``, read with ``torch.load(weights_only=True)``: a file that needs full
unpickling is refused, with the reason) and returns our model with every weight in place plus a
report. The key layout (``../shared/reference/official_tsm_ffn_r50_keys.txt``, names and shapes) is,
after the ``module.base_model.`` prefix:

=====================================  =========================================
original                               ours
=====================================  =========================================
``bn1_T.*``, ``layerI.J.bnK_T.*``      ``bn1.tT.*``, ``layerI.J.bnK.tT.*`` (FlexNorm copy of stream T)
``layerI.J.downsample_conv.weight``    ``layerI.J.downsample.0.weight``
``layerI.J.downsample_bn_T.*``         ``layerI.J.downsample.1.tT.*``
``layerI.J.adaconv_T.weight``          ``layerI.J.alter.tT.weight`` (WA: ``out + adaconv_T(out)``
                                       after the shift, before conv1 - our order)
``module.new_fc.*``                    ``fc.*`` (the original backbone ``fc`` is a Dropout)
=====================================  =========================================

The frame counts are read from the ``_T`` suffixes and the classes from ``new_fc``. Every key of
the file is consumed; a key that maps nowhere, a shape that differs, or one of our keys that the
file does not fill is an error naming the first such key. Only the TSM family's layout is known
(the reference lists TSM-R50); other families are refused by name.

Numerics that differ from the original code *by design* and therefore from its published
accuracy with the same weights: our shift uses the batch's own T (the original shifted 4- and
8-frame batches as 16-frame clips, issue #3 of the official repo), so the 4/8-frame streams of a
released checkpoint see the inputs they were trained with only at 16 frames.
"""
from __future__ import annotations

import os
import re
from typing import Optional

import torch

from ._safe_pickle import WeightsOnlyLoadError, torch_load_weights_only

__all__ = ["OfficialCheckpointError", "load_official_checkpoint", "official_to_ours", "ours_to_official",
           "infer_official_model", "official_spec", "init_from_official", "SPEC_PREFIX"]

PREFIX = "module.base_model."
#: ``official:PATH`` (or ``official:MODEL:PATH``) - how ``init_from``, ``eval --checkpoint``, ``predict``
#: and ``export`` name a released file.
SPEC_PREFIX = "official:"
_PRIVATE = re.compile(r"^(?P<head>.*?)(?P<name>bn\d+|downsample_bn|adaconv)_(?P<t>\d+)\.(?P<leaf>\w+)$")


class OfficialCheckpointError(ValueError):
    """A released checkpoint that cannot be converted (one line, names the file and the key)."""


def _key_to_ours(key: str) -> Optional[tuple]:
    """``(our key, T or None)`` for one official key, or None if it maps nowhere."""
    if key.startswith("module.new_fc."):
        return "fc." + key[len("module.new_fc."):], None
    if not key.startswith(PREFIX):
        return None
    k = key[len(PREFIX):]
    m = _PRIVATE.match(k)
    if m:
        head, name, t, leaf = m["head"], m["name"], int(m["t"]), m["leaf"]
        if name == "adaconv":
            return f"{head}alter.t{t}.{leaf}", t
        if name == "downsample_bn":
            return f"{head}downsample.1.t{t}.{leaf}", t
        return f"{head}{name}.t{t}.{leaf}", t
    if k.endswith("downsample_conv.weight"):
        return k.replace("downsample_conv.weight", "downsample.0.weight"), None
    if re.match(r"^(conv1|layer\d+\.\d+\.conv\d+)\.weight$", k):
        return k, None
    return None


def official_to_ours(state: dict) -> tuple:
    """``(our state dict, frames, num_classes)`` from an official state dict (module docstring)."""
    out, frames = {}, set()
    for key, value in state.items():
        mapped = _key_to_ours(key)
        if mapped is None:
            raise OfficialCheckpointError(f"key {key!r} has no counterpart in our TSM layout (expected "
                                          f"{PREFIX}<backbone key> or module.new_fc.*)")
        ours, t = mapped
        if t is not None:
            frames.add(t)
        out[ours] = value
    if "fc.weight" not in out:
        raise OfficialCheckpointError("no 'module.new_fc.weight': not a released FFN/TSM checkpoint")
    return out, tuple(sorted(frames)), int(out["fc.weight"].shape[0])


def ours_to_official(state: dict) -> dict:
    """The inverse map (our TSM FFN state dict -> the released layout); used to test the converter."""
    out = {}
    for k, v in state.items():
        if k.startswith("fc."):
            out["module.new_fc." + k[3:]] = v
            continue
        m = re.match(r"^(?P<head>.*?)(?P<name>alter|downsample\.1|bn\d+)\.t(?P<t>\d+)\.(?P<leaf>\w+)$", k)
        if m:
            name = {"alter": "adaconv", "downsample.1": "downsample_bn"}.get(m["name"], m["name"])
            k = f"{m['head']}{name}_{m['t']}.{m['leaf']}"
        k = k.replace("downsample.0.weight", "downsample_conv.weight")
        out[PREFIX + k] = v
    return out


def official_spec(spec) -> Optional[tuple]:
    """``(PATH, model name or None)`` for ``"official:PATH"`` or ``"official:MODEL:PATH"`` (MODEL a
    registered name, needed only when the layout fits several models), None for anything else."""
    from ._registry import list_models

    spec = os.fspath(spec) if isinstance(spec, os.PathLike) else spec
    if not (isinstance(spec, str) and spec.startswith(SPEC_PREFIX)):
        return None
    rest = spec[len(SPEC_PREFIX):]
    head, sep, tail = rest.partition(":")
    name, path = (head, tail) if sep and head in list_models() else (None, rest)
    if not path:
        raise OfficialCheckpointError(f"{spec!r}: expected official:PATH or official:MODEL:PATH (a released "
                                      "FFN checkpoint file)")
    return path, name


def _shapes(state: dict) -> dict:
    return {k: tuple(v.shape) for k, v in state.items()}


def infer_official_model(state: dict, frames: tuple, num_classes: int) -> str:
    """The registered TSM model whose FFN state dict (at ``frames``, ``num_classes``) has exactly the
    keys and shapes of ``state`` (already converted to our layout). Models are built on the meta
    device, so trying all of them costs no memory."""
    from ._registry import create_model, get_model_cfg, list_models

    want, best, hits = _shapes(state), None, []
    for name in list_models():
        if get_model_cfg(name).family != "TSM":
            continue
        with torch.device("meta"):
            have = _shapes(create_model(name, num_classes=num_classes, frames=frames).state_dict())
        if have == want:
            hits.append(name)
            continue
        diff = sorted(set(have) ^ set(want)) or sorted(k for k in have if have[k] != want[k])
        if best is None or len(diff) < best[1]:
            best = (name, len(diff), diff[0])
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise OfficialCheckpointError(f"the checkpoint's layout fits several registered models ({', '.join(hits)}, "
                                      f"same weights, other strides); name one: official:{hits[0]}:PATH")
    raise OfficialCheckpointError(f"the checkpoint's keys and shapes match no registered TSM model (closest: "
                                  f"{best[0]}, which differs first at {best[2]!r})")


def _read(path: str | os.PathLike) -> dict:
    if not os.path.isfile(path):
        raise OfficialCheckpointError(f"official checkpoint {path}: not found")
    try:
        ckpt = torch_load_weights_only(path)
    except WeightsOnlyLoadError as e:
        raise OfficialCheckpointError(f"official checkpoint {path}: refused by torch.load(weights_only=True) "
                                      f"({e.why}); only tensors, dicts, lists and numbers are read - re-save "
                                      "its state_dict with torch.save to convert it") from None
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise OfficialCheckpointError(f"official checkpoint {path}: expected a dict with a 'state_dict' of "
                                      "tensors (torch.save({'state_dict': ...}))")
    return ckpt if "state_dict" in ckpt else {"state_dict": state}


def load_official_checkpoint(path: str | os.PathLike, model_name: Optional[str] = None, **kwargs):
    """``(model in eval mode, report)``: a released TSM-FFN checkpoint as our ``model_name``.

    ``model_name`` None: the registered TSM model whose layout the file has
    (:func:`infer_official_model`; ``tsm_r50`` for the released SSv1/SSv2 files). ``kwargs`` go to
    ``create_model`` (frames and classes come from the file). The report lists ``model``,
    ``frames``, ``num_classes``, ``consumed`` (number of keys), ``dropped`` (always empty: every key
    is consumed or the load fails) and the file's ``epoch`` / ``best_prec1`` / ``arch`` if stored."""
    from ._registry import create_model, get_model_cfg

    if model_name is not None:
        cfg = get_model_cfg(model_name)
        if cfg.family != "TSM":
            raise OfficialCheckpointError(f"model {model_name!r} (family {cfg.family}): only the TSM family's "
                                          "released key layout is known; convert other families' weights "
                                          "yourself")
    ckpt = _read(path)
    state, frames, num_classes = official_to_ours(ckpt.get("state_dict", ckpt))
    if not frames:
        raise OfficialCheckpointError(f"official checkpoint {path}: no per-frame-count keys (bn*_T, adaconv_T)")
    if model_name is None:
        try:
            model_name = infer_official_model(state, frames, num_classes)
        except OfficialCheckpointError as e:
            raise OfficialCheckpointError(f"official checkpoint {path}: {e}") from None
    model = create_model(model_name, num_classes=num_classes, frames=frames, **kwargs)
    own = model.state_dict()
    for k, v in state.items():
        if k not in own:
            raise OfficialCheckpointError(f"official checkpoint {path}: {k!r} (converted) is not a key of "
                                          f"{model_name} with frames {frames}")
        if tuple(v.shape) != tuple(own[k].shape):
            raise OfficialCheckpointError(f"official checkpoint {path}: {k!r} has shape {tuple(v.shape)}, "
                                          f"{model_name} expects {tuple(own[k].shape)}")
    missing = [k for k in own if k not in state]
    if missing:
        raise OfficialCheckpointError(f"official checkpoint {path}: nothing fills {missing[0]!r} of {model_name} "
                                      f"({len(missing)} keys missing)")
    model.load_state_dict(state)
    info = {k: ckpt[k] for k in ("epoch", "best_prec1", "arch") if isinstance(ckpt.get(k), (int, float, str))}
    return model.eval(), {"model": model_name, "frames": frames, "num_classes": num_classes,
                          "consumed": len(state), "dropped": [], **info}


def init_from_official(model: torch.nn.Module, path: str | os.PathLike) -> dict:
    """Start ``model`` (ours, being trained) from a released TSM-FFN checkpoint (``init_from=official:PATH``).

    - An FFN model: the shared weights are copied; each of our streams T takes the private norms
      and weight alteration of the file's stream ``route(T)`` (nearest, ties higher), so a
      ``(4, 8, 12, 16)`` model starts from a released ``(4, 8, 16)`` one with stream 12 from 16.
    - A single-T model (``strategy=st``, ``frames=(T,)``): stream T of the file, weight alteration
      folded into ``conv1`` (:func:`~ffn_core.models.export.stream_into`); T must be a released stream.
    - The classifier is copied if its shape matches, else reported as dropped (fine-tuning on a
      dataset with other classes starts from a fresh ``fc``).

    Returns ``{"model", "frames", "routed": {ours: theirs}, "dropped": [keys]}``; a key of ours with
    no source, or a shape mismatch, is an :class:`OfficialCheckpointError` naming it."""
    from .export import ExportError, stream_into
    from .flexible_norm import route_stream, stream_key

    src_model, report = load_official_checkpoint(path, getattr(model, "model_name", None))
    theirs = tuple(report["frames"])
    ours = tuple(getattr(model, "frames", ()))
    own = model.state_dict()
    fc = [k for k in own if k.startswith("fc.")]
    dropped = []
    if any(tuple(own[k].shape) != tuple(src_model.state_dict()[k].shape) for k in fc if k in src_model.state_dict()):
        dropped = [f"fc.{k[3:]}" for k in fc]
        with torch.no_grad():  # the head of another dataset: start ours fresh, like pretrained=imagenet
            src_model.fc = torch.nn.Linear(src_model.fc.in_features, own["fc.weight"].shape[0])
            src_model.fc.load_state_dict({k[3:]: v for k, v in own.items() if k in fc})
    if len(ours) == 1 and not any(f".{stream_key(ours[0])}." in f".{k}" for k in own):  # single-T model
        if ours[0] not in theirs:
            raise OfficialCheckpointError(f"init_from=official:{path}: a single-T model needs one of the released "
                                          f"streams {theirs}; the model has frames {ours}")
        try:
            stream_into(src_model, model, ours[0])
        except ExportError as e:
            raise OfficialCheckpointError(f"init_from=official:{path}: {e}") from None
        return {"model": report["model"], "frames": theirs, "routed": {ours[0]: ours[0]}, "dropped": dropped}
    src = src_model.state_dict()
    routed = {t: route_stream(t, theirs) for t in ours}
    out = {}
    for k, ref in own.items():
        cand = k
        for t, r in routed.items():
            tag = f".{stream_key(t)}."
            if tag in f".{k}":
                cand = f".{k}".replace(tag, f".{stream_key(r)}.", 1)[1:]
                break
        if cand not in src:
            raise OfficialCheckpointError(f"init_from=official:{path}: nothing in the file fills {k!r} "
                                          f"(looked for {cand!r})")
        if tuple(src[cand].shape) != tuple(ref.shape):
            raise OfficialCheckpointError(f"init_from=official:{path}: {cand!r} has shape "
                                          f"{tuple(src[cand].shape)}, the model's {k!r} {tuple(ref.shape)}")
        out[k] = src[cand]
    model.load_state_dict(out)
    return {"model": report["model"], "frames": theirs, "routed": routed, "dropped": dropped}
