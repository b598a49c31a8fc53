"""Parameter and compute accounting (paper Table 1 columns "Params" and "GFLOPs").

* GMACs are counted with ``torch.utils.flop_counter.FlopCounterMode``, which counts **2 FLOPs per
  multiply-add** (convolutions and matrix products; norms, activations and pooling are not counted).
  We report ``GMACs = FLOPs / 2 / 1e9``, which is what the paper (and most video papers) call
  "GFLOPs": TSM-R50 at 224 px is ~4.1 GMACs per frame, i.e. ~32.7-32.9 at 8 frames, ~65.4-65.8 at 16.
* Counting runs on the **meta device** by default: the model's parameters and buffers are swapped
  for meta tensors (``torch.func.functional_call``; the model itself is not copied or changed), so
  even ResNet-101 at 16 frames x 224 px costs no arithmetic. Batch 1, eval mode (restored after).
* ``count_parameters`` counts parameters (running statistics are buffers and are not counted); for
  FFN on ResNet-50 with 3 streams the overhead over TSM is 2 x 2 x 26,560 private BN affine
  parameters + 3 x 13,120 WA weights = 145,600 (paper Table 1: 25.6M -> 25.7M).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

__all__ = ["count_parameters", "separate_models_parameters", "gmacs_per_clip", "accounting_table", "model_table"]


def _sdpa_cpu_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of CPU ``scaled_dot_product_attention`` (torch registers only the CUDA/meta kernels)."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


_CPU_SDPA = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
_CUSTOM_FLOPS = {_CPU_SDPA: _sdpa_cpu_flop} if _CPU_SDPA is not None else {}


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of (distinct) parameters; ``trainable_only`` counts only those with requires_grad."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def separate_models_parameters(name: str, num_classes: int, frames: Sequence[int], **kw) -> int:
    """Total parameters of K separately trained single-frame-count models ("ST", Table 1: 25.6 x 3M).

    Each model is ``create_model(name, num_classes=num_classes, frames=(T,), **kw)``, built on the meta
    device (no memory, no init cost). ``pretrained`` is ignored (it does not change the count).
    """
    from ._registry import create_model

    kw = {k: v for k, v in kw.items() if k != "pretrained"}
    total = 0
    for t in frames:
        with torch.device("meta"):
            total += count_parameters(create_model(name, num_classes=num_classes, frames=(int(t),), **kw))
    return total


def gmacs_per_clip(model: nn.Module, T: int, size: int = 224, stream: Optional[int] = None,
                   on_meta: bool = True) -> float:
    """GMACs (= FlopCounterMode FLOPs / 2 / 1e9) of one (1, T, 3, size, size) clip in eval mode.

    ``stream`` overrides the routing (default ``model.route(T)``); ``on_meta=False`` counts with real
    tensors on the model's device (slow on CPU for big models).
    """
    if not isinstance(T, int) or T < 1 or not isinstance(size, int) or size < 1:
        raise ValueError(f"gmacs_per_clip: T={T!r}, size={size!r}: expected positive ints")
    in_chans = getattr(model, "in_chans", 3)
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        counter = FlopCounterMode(display=False, custom_mapping=_CUSTOM_FLOPS)
        kwargs = {} if stream is None else {"stream": stream}
        with torch.no_grad():
            if on_meta:
                state = {k: torch.empty_like(v, device="meta")
                         for k, v in list(model.named_parameters()) + list(model.named_buffers())}
                x = torch.zeros(1, T, in_chans, size, size, device="meta")
                with counter:
                    torch.func.functional_call(model, state, (x,), kwargs, tie_weights=True, strict=False)
            else:
                ref = next(iter(model.parameters()))
                x = torch.zeros(1, T, in_chans, size, size, device=ref.device, dtype=ref.dtype)
                with counter:
                    model(x, **kwargs)
    finally:
        for m, training in modes.items():
            m.train(training)
    return counter.get_total_flops() / 2 / 1e9


def accounting_table(model: nn.Module, frames: Optional[Sequence[int]] = None, size: int = 224) -> List[Dict]:
    """One row per frame count: ``frames``, routed ``stream``, ``params``, ``params_M``, ``gmacs``, ``gflops``.

    ``gmacs`` is multiply-adds (what papers print as "GFLOPs"); ``gflops`` = 2 x gmacs as counted by
    ``FlopCounterMode``. ``frames`` defaults to ``model.frames``.
    """
    frames = tuple(frames if frames is not None else model.frames)
    params = count_parameters(model)
    rows = []
    for t in frames:
        g = gmacs_per_clip(model, int(t), size=size)
        stream = model.route(int(t)) if hasattr(model, "route") else None
        rows.append({"frames": int(t), "stream": stream, "size": size, "params": params,
                     "params_M": params / 1e6, "gmacs": g, "gflops": 2 * g})
    return rows


def model_table(names: Sequence[str], num_classes: int = 174, size: Optional[int] = None) -> List[Dict]:
    """One row per registered model: its cfg facts, parameters of one single-frame-count (ST) model
    and of the FFN on ``cfg.paper_frames``, and GMACs per clip of both at each of those counts
    (at ``size`` px, default the variant's ``input_size``), counted on the meta device."""
    from ._registry import create_model, get_model_cfg

    rows = []
    for name in names:
        cfg = get_model_cfg(name)
        frames, px = tuple(cfg.paper_frames), int(size or cfg.input_size)
        with torch.device("meta"):
            ffn = create_model(name, num_classes=num_classes, frames=frames)
            st = create_model(name, num_classes=num_classes, frames=(frames[-1],))
        st_g = {t: gmacs_per_clip(st, t, px) for t in frames}
        ffn_g = {t: gmacs_per_clip(ffn, t, px) for t in frames}
        rows.append({"model": name, "family": cfg.family, "layout": cfg.layout, "size": px, "frames": list(frames),
                     "params_st": count_parameters(st), "params_ffn": count_parameters(ffn),
                     "gmacs_st": st_g, "gmacs_ffn": ffn_g,
                     "ffn_overhead_pct": max(100 * (ffn_g[t] / st_g[t] - 1) for t in frames)})
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m ffn_core models [FILTER] [--size PX] [--classes N]``: a markdown table of every
    registered model (GMACs = multiply-adds per clip, what papers print as GFLOPs)."""
    import argparse

    from ._registry import list_models

    ap = argparse.ArgumentParser(prog="python -m ffn_core models", description=main.__doc__.splitlines()[0])
    ap.add_argument("filter", nargs="?", default="", help="glob or substring of model names (list_models)")
    ap.add_argument("--size", type=int, default=None, help="input size in px (default: each model's input_size)")
    ap.add_argument("--classes", type=int, default=174, help="classifier outputs (default 174, SSv1)")
    a = ap.parse_args(argv)
    names = list_models(a.filter)
    if not names:
        print(f"error: no registered model matches {a.filter!r}")
        return 2
    print("| model | family | layout | px | frames | params ST / FFN (M) | GMACs ST | GMACs FFN | FFN overhead |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in model_table(names, a.classes, a.size):
        fr = "/".join(map(str, r["frames"]))
        g = lambda d: " / ".join(f"{v:.4g}" for v in d.values())  # noqa: E731
        print(f"| {r['model']} | {r['family']} | {r['layout']} | {r['size']} | {fr} | {r['params_st'] / 1e6:.2f} / "
              f"{r['params_ffn'] / 1e6:.2f} | {g(r['gmacs_st'])} | {g(r['gmacs_ffn'])} | +{r['ffn_overhead_pct']:.2f} % |")
    return 0
