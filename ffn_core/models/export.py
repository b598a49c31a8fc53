"""One FFN stream as a plain single-T model: private norms selected, weight alteration folded, norms folded.

FFN's inference cost at T frames is that of a plain single-T network (paper Sec. 4.3: the private
norms and the weight alteration are selected per T, the convolutions are shared). This file makes
that literal, for deployment without the stream machinery:

1. :func:`stream_into` copies stream T of a trained FFN into a freshly built *single-T* model of the
   same architecture (``frames=(T,)``: plain norms, no weight alteration, exactly the ST model):
   every shared weight as is, every private norm's ``t{T}`` copy as the plain norm, and every weight
   alteration folded into the convolution it feeds (Eq. 8, ``W* = phi* (x) W``): ``x + phi (x) x =
   (1 + phi) (x) x`` into a convolution is a per-input-channel scale of its kernel,
   ``W'[o, i] = W[o, i] (1 + w_i)`` (exact; :meth:`WeightAlteration.fold_into` computes the same in
   training). Every key of the FFN is consumed or reported: the other streams' private copies are
   the only keys left out.
2. :func:`fold_norms` folds eval-mode BatchNorms into an adjacent convolution: a BN after a conv
   (``W' = W s``, ``b' = (b - mu) s + beta`` with ``s = gamma / sqrt(var + eps)``), and a BN before an
   unpadded convolution (``W'[o, i] = W[o, i] a_i``, ``b' = b + sum W[o, i] c_i``). Pairs are found by
   running the model once and matching tensors (a norm whose input *is* a conv's output), so the
   rule is the same for every backbone.
3. :class:`ExportedStream` pins the stream state (T) and calls the backbone's features and head
   directly - no routing, no context manager - so ``torch.jit.trace`` and ``torch.onnx.export`` see
   a plain graph for (B, T, 3, H, W) clips.

What stays unfolded, and why:

* **Uniformer's weight alteration**: its output feeds both the depth-wise DPE convolution and the
  residual stream (``x' + DPE(x')``), so the scale cannot move into one kernel; it stays as a fixed
  per-channel multiply (:class:`ChannelScale`, C numbers per block, no MACs).
* **LayerNorm** (Uniformer's attention stages) normalises by per-token statistics: not an affine
  map, never foldable. So are BNs next to no convolution (Uniformer's final BN, a BN after a
  pooling) and a BN before a *padded* convolution (zero padding of the normalised input is not
  the normalisation of zero padding).

The original FFN code has no export; mmaction2 exports but has no weight alteration to fold.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .flexible_norm import StreamState, WeightAlteration, _stream_modules, stream_key
from .frame_flexible import FrameFlexibleModel, SeparateStreams

__all__ = ["ChannelScale", "ExportedStream", "ExportError", "fold_norms", "stream_into"]

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class ExportError(ValueError):
    """A model or stream that cannot be exported as asked (one line, names the key or module)."""


class ChannelScale(nn.Module):
    """``x * s`` per channel (dim 1): a weight alteration that no kernel can absorb, as a constant."""

    def __init__(self, scale: torch.Tensor):
        super().__init__()
        self.register_buffer("scale", scale.detach().clone().reshape(-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.reshape(1, -1, *([1] * (x.dim() - 2)))


def _alteration_target(module: nn.Module) -> Optional[str]:
    """Name of the submodule (a conv) that the block's weight alteration feeds, or None."""
    target = getattr(module, "alteration_target", None)
    return target() if callable(target) else target


def stream_into(ffn: nn.Module, st: nn.Module, stream: int) -> dict:
    """Load stream ``stream`` of ``ffn`` into the single-T model ``st`` (module docstring, step 1).

    Returns a report: ``{"folded": [WA keys folded into a conv], "kept": [WA kept as ChannelScale],
    "dropped": [other streams' private keys]}``. Raises :class:`ExportError` naming the first key
    that has no source or a different shape.
    """
    frames = tuple(getattr(ffn, "frames", ()))
    if stream not in frames:
        raise ExportError(f"frames={stream}: not a trained frame count of this model; trained: {frames}")
    if tuple(getattr(st, "frames", ())) != (stream,):
        raise ExportError(f"stream_into: the target must be the single-T model with frames=({stream},), got "
                          f"{getattr(st, 'frames', None)}")
    if isinstance(ffn, SeparateStreams):  # "w/o WS": stream T is already a plain model
        st.load_state_dict(ffn.streams[stream_key(stream)].state_dict())
        return {"folded": [], "kept": [], "dropped": [f"streams.{stream_key(t)}.*" for t in frames if t != stream]}
    key = stream_key(stream)
    src = {k: v.detach() for k, v in ffn.state_dict().items()}
    used: set = set()
    scales: dict = {}   # conv weight key -> (1 + w) of the alteration feeding it
    kept: dict = {}     # block name -> (1 + w) kept as a ChannelScale
    folded: list = []
    for name, m in ffn.named_modules():
        alter = getattr(m, "alter", None)
        if not isinstance(alter, WeightAlteration):
            continue
        wkey = f"{name}.alter.{key}.weight" if name else f"alter.{key}.weight"
        scale = 1 + src[wkey].reshape(-1)
        target = _alteration_target(m)
        used.add(wkey)
        if target is None:
            kept[name] = scale
        else:
            scales[f"{name}.{target}.weight" if name else f"{target}.weight"] = scale
            folded.append(wkey)
    out = {}
    for k, ref in st.state_dict().items():
        head, _, leaf = k.rpartition(".")
        private = f"{head}.{key}.{leaf}" if head else f"{key}.{leaf}"
        name = k if k in src else private if private in src else None
        if name is None:
            raise ExportError(f"stream_into: no weight for {k!r} in the FFN (looked for {k!r} and {private!r})")
        v = src[name]
        if tuple(v.shape) != tuple(ref.shape):
            raise ExportError(f"stream_into: {name!r} has shape {tuple(v.shape)}, the single-T model's {k!r} "
                              f"{tuple(ref.shape)}")
        if k in scales:
            v = v * scales[k].reshape(1, -1, *([1] * (v.dim() - 2))).to(v.dtype)
        out[k] = v
        used.add(name)
    st.load_state_dict(out)
    for name, scale in kept.items():
        block = st.get_submodule(name) if name else st
        block.alter = ChannelScale(scale)
    other = [k for k in src if k not in used]
    stray = [k for k in other if not any(f".{stream_key(t)}." in f".{k}" for t in frames if t != stream)]
    if stray:
        raise ExportError(f"stream_into: FFN key {stray[0]!r} is neither used nor another stream's private copy")
    return {"folded": folded, "kept": [f"{n}.alter" for n in kept], "dropped": other}


def _set_child(root: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    (root.get_submodule(parent) if parent else root)._modules[leaf] = new


def _bn_affine(bn: nn.Module) -> tuple:
    """Eval-mode BN as ``y = a x + c`` per channel (float64)."""
    var, mean = bn.running_var.double(), bn.running_mean.double()
    a = 1 / torch.sqrt(var + bn.eps)
    c = -mean * a
    if bn.affine:
        a, c = a * bn.weight.double(), c * bn.weight.double() + bn.bias.double()
    return a, c


@torch.no_grad()
def fold_norms(model: nn.Module, example: torch.Tensor) -> dict:
    """Fold eval-mode BatchNorms into adjacent convolutions in place (module docstring, step 2).

    ``example`` is one input of the model (run once, with hooks, to find which norm consumes which
    conv's output). Returns ``{"after_conv": [(conv, bn)], "before_conv": [(bn, conv)], "kept":
    [bn names left]}``; the folded norms become ``nn.Identity``. The caller checks the outputs."""
    if model.training:
        raise ExportError("fold_norms: put the model in eval mode first (folding uses the running statistics)")
    names = {m: n for n, m in model.named_modules()}
    calls: dict = {}
    conv_out: dict = {}   # id(output) -> conv
    bn_out: dict = {}     # id(output) -> bn
    after, before = [], []
    keep_alive = []

    def consumer(pairs: list, producers: dict):
        """Pre-hook: count the call; pair (producer of this input, this module) when there is one."""
        def hook(m, args):
            calls[m] = calls.get(m, 0) + 1
            src = producers.get(id(args[0]))
            if src is not None:
                pairs.append((src, m))
        return hook

    def producer(outputs: dict):
        def hook(m, args, out):
            outputs[id(out)] = m
            keep_alive.append(out)  # ids stay unique while the hooks run
        return hook

    conv_pre, conv_post = consumer(before, bn_out), producer(conv_out)
    bn_pre, bn_post = consumer(after, conv_out), producer(bn_out)

    handles = []
    for m in model.modules():
        if isinstance(m, _CONV):
            handles += [m.register_forward_pre_hook(conv_pre), m.register_forward_hook(conv_post)]
        elif isinstance(m, _BN):
            handles += [m.register_forward_pre_hook(bn_pre), m.register_forward_hook(bn_post)]
    try:
        model(example)
    finally:
        for h in handles:
            h.remove()
    once = {m for m, n in calls.items() if n == 1}
    done_bn, done_conv = set(), set()
    report = {"after_conv": [], "before_conv": [], "kept": []}
    for conv, bn in after:
        if conv in once and bn in once and conv not in done_conv:
            a, c = _bn_affine(bn)
            w = conv.weight.double() * a.reshape(-1, *([1] * (conv.weight.dim() - 1)))
            b = (conv.bias.double() * a if conv.bias is not None else 0) + c
            conv.weight.copy_(w.to(conv.weight.dtype))
            conv.bias = nn.Parameter(b.to(conv.weight.dtype))
            done_bn.add(bn)
            done_conv.add(conv)
            report["after_conv"].append((names[conv], names[bn]))
    for bn, conv in before:
        unpadded = all(p == 0 for p in (conv.padding if isinstance(conv.padding, tuple) else (1,)))
        if (bn in done_bn or conv in done_conv or bn not in once or conv not in once or conv.groups != 1
                or not unpadded):
            continue
        a, c = _bn_affine(bn)
        w = conv.weight.double()
        shape = (1, -1, *([1] * (w.dim() - 2)))
        bias = (w * c.reshape(shape)).sum(dim=tuple(range(1, w.dim())))
        if conv.bias is not None:
            bias = bias + conv.bias.double()
        conv.weight.copy_((w * a.reshape(shape)).to(conv.weight.dtype))
        conv.bias = nn.Parameter(bias.to(conv.weight.dtype))
        done_bn.add(bn)
        done_conv.add(conv)
        report["before_conv"].append((names[bn], names[conv]))
    for bn in done_bn:
        _set_child(model, names[bn], nn.Identity())
    report["kept"] = [n for m, n in names.items() if isinstance(m, _BN) and m not in done_bn]
    return report


class ExportedStream(nn.Module):
    """A single-T backbone with its stream pinned: ``forward(clips (B, T, 3, H, W)) -> logits (B, K)``.

    No routing and no ``use_stream`` at call time (the state every stream-aware module needs, T, is
    set once here), so tracers see only tensor operations. The input must have exactly ``num_frames``
    frames (default: the stream's T; another count runs stream ``stream`` on that many frames).
    """

    def __init__(self, net: FrameFlexibleModel, stream: int, num_frames: Optional[int] = None):
        super().__init__()
        if tuple(net.frames) != (stream,):
            raise ExportError(f"ExportedStream: expected a single-T model with frames=({stream},), got {net.frames}")
        self.net, self.stream = net, int(stream)
        self.num_frames = int(num_frames if num_frames is not None else stream)
        state = StreamState(self.stream, self.num_frames)
        for m in _stream_modules(net):
            m._stream_state = state

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.net.forward_head(self.net._features(clips))
