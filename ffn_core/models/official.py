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

__all__ = ["OfficialCheckpointError", "load_official_checkpoint", "official_to_ours", "ours_to_official"]

PREFIX = "module.base_model."
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


def _read(path: str | os.PathLike) -> dict:
    if not os.path.isfile(path):
        raise OfficialCheckpointError(f"official checkpoint {path}: not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        why = next((ln.strip() for ln in str(e).splitlines() if "Unpickler error" in ln or "Weights only" in ln),
                   str(e).splitlines()[0] if str(e) else type(e).__name__)[:300]
        raise OfficialCheckpointError(f"official checkpoint {path}: refused by torch.load(weights_only=True) "
                                      f"({why}); only tensors, dicts, lists and numbers are read - re-save "
                                      "its state_dict with torch.save to convert it") from None
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise OfficialCheckpointError(f"official checkpoint {path}: expected a dict with a 'state_dict' of "
                                      "tensors (torch.save({'state_dict': ...}))")
    return state


def load_official_checkpoint(path: str | os.PathLike, model_name: str = "tsm_r50", **kwargs):
    """``(model in eval mode, report)``: a released TSM-FFN checkpoint as our ``model_name``.

    ``kwargs`` go to ``create_model`` (frames and classes come from the file). The report lists
    ``frames``, ``num_classes``, ``consumed`` (number of keys) and ``dropped`` (always empty: every
    key is consumed or the load fails)."""
    from ._registry import create_model, get_model_cfg

    cfg = get_model_cfg(model_name)
    if cfg.family != "TSM":
        raise OfficialCheckpointError(f"model {model_name!r} (family {cfg.family}): only the TSM family's "
                                      "released key layout is known; convert other families' weights yourself")
    state, frames, num_classes = official_to_ours(_read(path))
    if not frames:
        raise OfficialCheckpointError(f"official checkpoint {path}: no per-frame-count keys (bn*_T, adaconv_T)")
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
    return model.eval(), {"frames": frames, "num_classes": num_classes, "consumed": len(state), "dropped": []}
