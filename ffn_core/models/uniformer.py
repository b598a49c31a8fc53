"""Uniformer (video) with Frame Flexible Network streams (FFN paper Sec. 4.3 / Fig. 5; Table 8 "Uniformer").

UniFormer (Li et al., ICLR 2022; video models, Kinetics tables: S 16x4 = 41.8 GFLOPs): four stages on (B, C, T, H, W)
clips; stages 1-2 are conv blocks ("CBlock", local MHRA = a depth-wise 5x5x5 conv), stages 3-4
global self-attention blocks ("SABlock", MHSA over all T*H*W tokens). FFN version (FFN Eq. 6-9)::

    CBlock (stages 1-2), x: (B, C, T, H, W)            SABlock (stages 3-4), x: (B, C, T, H, W)
    x                                                   x
    |-> WA_T: x + phi_T(x)  (dw 1x1x1, private, 0)      |-> WA_T
    |-> (+) DPE: dw 3x3x3                               |-> (+) DPE: dw 3x3x3
    |-> (+) BN1_T -> 1x1x1 -> dw 5x5x5 (MHRA) -> 1x1x1  |-> tokens (B, T*H*W, C) (a view)
    |-> (+) BN2_T -> 1x1x1 -> GELU -> 1x1x1             |-> (+) LN1_T -> MHSA (qkv, SDPA, proj)
    out                                                 |-> (+) LN2_T -> Linear -> GELU -> Linear
                                                        out (B, C, T, H, W)
    "|-> (+) f": x = x + DropPath(f(x)) (the DPE residual has no DropPath); "_T": private per stream

    clip (B, 3, T, H, W) -> patch_embed1 (3xPxP conv, stride (2, P, P): T' = ceil(T / 2)) -> LN_T
      -> blocks1 -> patch_embed2 (1x2x2/(1,2,2)) -> LN_T -> blocks2 -> ... -> blocks4
      -> BN_T (final norm) -> mean over T'*H'*W' -> Dropout -> head (shared Linear)

Private per stream (``_T``, :class:`~.flexible_norm.FlexNorm`): every norm - BN3d norm1/norm2 of
the CBlocks, LayerNorm (eps 1e-6) norm1/norm2 of the SABlocks, the LayerNorm of each patch
embedding, the final BN3d - and the weight alteration ``WA_T`` (x + depth-wise 1x1x1 conv, Eq. 7-9),
at the very start of every block, before the DPE (the whole block, DPE residual included, sees the
altered input: Fig. 5, Transformer form). Shared: DPE, MHRA, attention, MLPs, patch-embed convs, head.
With one frame count: the plain Uniformer (no FlexNorm, no WA).

Every temporal operation reads T from the tensor it gets (3D layout), so any frame count runs
(T = 1, 2, odd ...); the stream is chosen by the base class (nearest trained count).

Keys are the official UniFormer video keys (``patch_embed1.proj.weight``, ``patch_embed1.norm.bias``,
``blocks1.0.pos_embed.weight``, ``blocks1.0.norm1.running_mean``, ``blocks1.0.conv1.weight``,
``blocks1.0.attn.weight``, ``blocks3.0.attn.qkv.weight``, ``blocks3.0.attn.proj.weight``,
``norm.weight``, ``head.weight``), plus ``.t{T}`` segments for private copies and
``blocks*.*.alter.t{T}.weight`` for WA: a Kinetics checkpoint (``uniformer_small_k{400,600}_16x4.pth``,
wrapped under ``model``/``model_state``) maps by the identity and fills every private copy; a 2D
ImageNet checkpoint (``uniformer_small_in1k.pth``) is inflated by :func:`uniformer_pretrained_keys`.

Deliberate differences from the original code (``Transformer_Network/slowfast/models/uniformer_FFN.py``):

* pretrained weights ARE loaded into the FFN model (the release never called ``get_pretrained_model``
  for ``uniformer_FFN``, ref. FFN repo ``build.py``: its FFN started from random weights);
* WA starts at zero (an exact identity) instead of N(0, 1e-3);
* attention uses ``F.scaled_dot_product_attention`` (same math: softmax(q k^T / sqrt(d)) v);
* streams are data (any sorted tuple of frame counts), not ``_4/_8/_16`` copies;
* the factory's ``dropout`` (before the head) is the common argument (default 0.5); the original
  Uniformer has none, so its recipe (``params/ssv1_uniformer_s.yaml``) sets ``dropout: 0``;
* ``uniformer_xs`` (ours, for CPU work at 32 px) uses a stage-1 patch of 3x2x2 / stride (2, 2, 2)
  (spatial stride 2, not 4): 32 px -> 16x16 -> 8x8 -> 4x4 -> 2x2 tokens per frame pair;
* CPU speed (same math): activations stay channels-last-3d after each patch embedding (no
  ``.contiguous()``: oneDNN's NDHWC convs, and the token view of an SABlock is free), and the
  depth-wise convs (DPE, MHRA) have a faster CPU backward (:class:`DepthwiseConv3d`).
"""
from __future__ import annotations

from functools import partial
from typing import Dict, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._registry import ModelCfg, register_variant
from .flexible_norm import FlexNorm, WeightAlteration, check_frames
from .frame_flexible import FrameFlexibleModel, build_frame_flexible, ffn_switches

__all__ = ["Uniformer", "CBlock", "SABlock", "PatchEmbed", "Attention", "DropPath", "DepthwiseConv3d", "ARCHS",
           "build_uniformer", "uniformer_pretrained_keys"]


class DropPath(nn.Module):
    """Stochastic depth: in training, zero the residual branch of a whole sample with probability ``p``
    (and scale the kept ones by 1 / (1 - p)); identity in eval mode or with ``p == 0``."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p:.3g}"


class _DepthwiseConv3dFn(torch.autograd.Function):
    """Depth-wise stride-1 "same" Conv3d with a CPU-friendly backward (same math as autograd's).

    oneDNN's depth-wise 3D backward is many times slower than its forward on CPU; the input gradient of a
    stride-1 same-padded depth-wise conv is the forward conv of the gradient with the flipped kernel
    (fast), the weight gradient stays oneDNN's, the bias gradient is a sum."""

    @staticmethod
    def forward(ctx, x, weight, bias, padding: int):
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.has_bias = padding, bias is not None
        return F.conv3d(x, weight, bias, padding=padding, groups=weight.shape[0])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        c, p = weight.shape[0], ctx.padding
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = F.conv3d(grad, weight.flip(2, 3, 4), padding=p, groups=c)
        if ctx.needs_input_grad[1]:
            gw = torch.ops.aten.convolution_backward(grad, x, weight, None, [1] * 3, [p] * 3, [1] * 3, False,
                                                     [0] * 3, c, [False, True, False])[1]
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = grad.sum((0, 2, 3, 4))
        return gx, gw, gb, None


class DepthwiseConv3d(nn.Conv3d):
    """``nn.Conv3d(dim, dim, k, padding=k // 2, groups=dim)`` (same keys); on CPU with autograd its
    backward is :class:`_DepthwiseConv3dFn` (forward + backward of a 32-channel 5x5x5 MHRA layer on
    (32, 32, 8, 16, 16) input: 2.1x faster on one thread, measured),
    elsewhere (CUDA, meta, no grad, CPU autocast) the plain conv."""

    def __init__(self, dim: int, kernel_size: int):
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size={kernel_size!r}: expected an odd int")
        super().__init__(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and torch.is_grad_enabled() and not torch.is_autocast_enabled("cpu"):
            return _DepthwiseConv3dFn.apply(x, self.weight, self.bias, self.padding[0])
        return super().forward(x)


class PatchEmbed(nn.Module):
    """``proj`` (shared Conv3d) then ``norm`` (LayerNorm over channels, private per stream)."""

    def __init__(self, in_chans: int, dim: int, kernel, stride, padding, norm_layer):
        super().__init__()
        self.proj = nn.Conv3d(in_chans, dim, kernel, stride, padding)
        self.norm = norm_layer(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        return self.norm(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)  # channels_last_3d


class Attention(nn.Module):
    """Global MHSA over all tokens of a clip: ``qkv`` and ``proj`` Linears, dim // head_dim heads."""

    def __init__(self, dim: int, head_dim: int, qkv_bias: bool = True):
        super().__init__()
        if dim % head_dim:
            raise ValueError(f"head_dim={head_dim!r}: must divide the stage width {dim}")
        self.num_heads = dim // head_dim
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(head_dim), as the original
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class _Mlp(nn.Sequential):
    """fc1 -> GELU -> fc2 with 1x1x1 convs (``conv=True``, CBlock) or Linears (SABlock)."""

    def __init__(self, dim: int, hidden: int, conv: bool):
        layer = partial(nn.Conv3d, kernel_size=1) if conv else nn.Linear
        super().__init__()
        self.fc1, self.act, self.fc2 = layer(dim, hidden), nn.GELU(), layer(hidden, dim)


class _Block(nn.Module):
    """Shared start of both block types: weight alteration (optional) then the DPE residual."""

    alteration_target = None  # WA's output feeds the DPE conv AND the residual: no single kernel absorbs it

    def _init_start(self, dim: int, frames, weight_alteration: bool, wa_init: str, drop_path: float):
        self.alter = WeightAlteration(dim, frames, init=wa_init, dims=3) if weight_alteration else None
        self.pos_embed = DepthwiseConv3d(dim, 3)
        self.drop_path = DropPath(drop_path)

    def _start(self, x: torch.Tensor) -> torch.Tensor:
        if self.alter is not None:
            x = self.alter(x)
        return x + self.pos_embed(x)


class CBlock(_Block):
    """Conv block (stages 1-2): WA_T -> DPE -> BN1_T -> 1x1x1 -> dw 5x5x5 (local MHRA) -> 1x1x1 -> +;
    BN2_T -> conv MLP -> + (see the module diagram)."""

    def __init__(self, dim: int, *, mlp_ratio: float, bn, frames, weight_alteration: bool, wa_init: str,
                 drop_path: float):
        super().__init__()
        self._init_start(dim, frames, weight_alteration, wa_init, drop_path)
        self.norm1 = bn(dim)
        self.conv1 = nn.Conv3d(dim, dim, 1)
        self.attn = DepthwiseConv3d(dim, 5)
        self.conv2 = nn.Conv3d(dim, dim, 1)
        self.norm2 = bn(dim)
        self.mlp = _Mlp(dim, int(dim * mlp_ratio), conv=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._start(x)
        x = x + self.drop_path(self.conv2(self.attn(self.conv1(self.norm1(x)))))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class SABlock(_Block):
    """Global attention block (stages 3-4): WA_T -> DPE -> tokens -> LN1_T -> MHSA -> +; LN2_T -> MLP -> +."""

    def __init__(self, dim: int, *, head_dim: int, mlp_ratio: float, qkv_bias: bool, ln, frames,
                 weight_alteration: bool, wa_init: str, drop_path: float):
        super().__init__()
        self._init_start(dim, frames, weight_alteration, wa_init, drop_path)
        self.norm1 = ln(dim)
        self.attn = Attention(dim, head_dim, qkv_bias)
        self.norm2 = ln(dim)
        self.mlp = _Mlp(dim, int(dim * mlp_ratio), conv=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._start(x)
        b, c, t, h, w = x.shape
        z = x.flatten(2).transpose(1, 2)  # (B, T*H*W, C)
        z = z + self.drop_path(self.attn(self.norm1(z)))
        z = z + self.drop_path(self.mlp(self.norm2(z)))
        return z.transpose(1, 2).reshape(b, c, t, h, w)


def _positive_ints(value, name: str, n: int) -> tuple:
    try:
        out = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        out = ()
    if len(out) != n or any(v < 1 for v in out) or any(isinstance(v, bool) for v in value):
        raise ValueError(f"{name}={value!r}: expected {n} positive ints")
    return out


class Uniformer(FrameFlexibleModel):
    """Frame-flexible UniFormer video backbone (see the module docstring for the data flow).

    Args:
        dims, depths: width and number of blocks of the 4 stages (stages 1-2 CBlocks, 3-4 SABlocks).
        num_classes: classifier outputs.
        frames: trained frame counts, ascending; ``(T,)`` gives the plain Uniformer ("ST").
        head_dim: channels per attention head (stages 3-4: ``dims[i] // head_dim`` heads).
        mlp_ratio: MLP hidden width / block width.
        qkv_bias: bias of the attention's qkv Linear.
        patch_size: spatial kernel = stride of the stage-1 patch embedding (4: official; 2: ``xs``).
        dropout: before the shared head.
        private_norm: False = "w/o SN" (one norm shared by every stream).
        weight_alteration: False = "w/o WA".
        wa_init: "zeros" or "normal" (:class:`~.flexible_norm.WeightAlteration`).
        drop_path: stochastic-depth rate of the last block (linear from 0 over all blocks).
    """

    default_classifier = "head"

    def __init__(self, *, dims: Sequence[int], depths: Sequence[int], num_classes: int,
                 frames: Sequence[int] = (4, 8, 16), head_dim: int = 64, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, patch_size: int = 4, dropout: float = 0.5, private_norm: bool = True,
                 weight_alteration: bool = True, wa_init: str = "zeros", drop_path: float = 0.0,
                 in_chans: int = 3):
        super().__init__()
        self.frames = check_frames(frames)
        dims, depths = _positive_ints(dims, "dims", 4), _positive_ints(depths, "depths", 4)
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
            raise ValueError(f"num_classes={num_classes!r}: expected a positive int")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout={dropout!r}: expected a number in [0, 1)")
        if not isinstance(drop_path, (int, float)) or not 0.0 <= drop_path < 1.0:
            raise ValueError(f"drop_path={drop_path!r}: expected a number in [0, 1)")
        if not isinstance(patch_size, int) or patch_size < 1:
            raise ValueError(f"patch_size={patch_size!r}: expected a positive int")
        if not mlp_ratio > 0:
            raise ValueError(f"mlp_ratio={mlp_ratio!r}: expected a number > 0")
        self.private_norm, self.weight_alteration = ffn_switches(self.frames, private_norm, weight_alteration)
        if self.private_norm:
            bn, ln = partial(FlexNorm, nn.BatchNorm3d, self.frames), partial(FlexNorm, nn.LayerNorm, self.frames)
        else:
            bn, ln = nn.BatchNorm3d, nn.LayerNorm
        self.in_chans, self.num_classes, self.num_features = in_chans, num_classes, dims[-1]
        self.dims, self.depths, self.patch_size = dims, depths, patch_size
        n = sum(depths)  # stochastic depth: linear from 0 to drop_path over all blocks
        rates = [float(drop_path) * j / max(1, n - 1) for j in range(n)]
        common = dict(frames=self.frames, weight_alteration=self.weight_alteration, wa_init=wa_init,
                      mlp_ratio=mlp_ratio)
        prev = in_chans
        for i, (dim, depth) in enumerate(zip(dims, depths)):
            if i == 0:  # time halved: kernel 3, stride 2, padding 1
                embed = PatchEmbed(prev, dim, (3, patch_size, patch_size), (2, patch_size, patch_size),
                                   (1, 0, 0), ln)
            else:
                embed = PatchEmbed(prev, dim, (1, 2, 2), (1, 2, 2), 0, ln)
            start = sum(depths[:i])
            if i < 2:
                blocks = [CBlock(dim, bn=bn, drop_path=rates[start + j], **common) for j in range(depth)]
            else:
                blocks = [SABlock(dim, head_dim=head_dim, qkv_bias=qkv_bias, ln=partial(ln, eps=1e-6),
                                  drop_path=rates[start + j], **common) for j in range(depth)]
            self.add_module(f"patch_embed{i + 1}", embed)
            self.add_module(f"blocks{i + 1}", nn.ModuleList(blocks))
            prev = dim
        self.norm = bn(dims[-1])
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(dims[-1], num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """The original's init: Linear trunc-normal(0.02) / bias 0, LayerNorm 1 / 0, convs PyTorch default;
        then WA back to its own (zero) init."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if hasattr(m, "reset_flex_parameters"):
                m.reset_flex_parameters()

    @property
    def min_size(self) -> int:
        """Smallest input height/width (px): stage 4 needs at least one token."""
        return self.patch_size * 8

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) -> pooled (B, D) (the stream is already active)."""
        if min(x.shape[-2:]) < self.min_size:
            raise ValueError(f"{type(self).__name__}: input of {x.shape[-2]}x{x.shape[-1]} px is too small; "
                             f"stage 4 needs at least {self.min_size}x{self.min_size} px")
        z = x.transpose(1, 2)  # (B, 3, T, H, W)
        for i in range(1, 5):
            z = getattr(self, f"patch_embed{i}")(z)
            for blk in getattr(self, f"blocks{i}"):
                z = blk(z)
        return self.norm(z).flatten(2).mean(-1)


ARCHS: Dict[str, dict] = {
    "s": dict(dims=(64, 128, 320, 512), depths=(3, 4, 8, 3), head_dim=64, patch_size=4),
    "xs": dict(dims=(32, 64, 128, 160), depths=(1, 1, 2, 1), head_dim=32, patch_size=2),
}

_INFLATE_T = (("patch_embed1.proj.", 3), ("pos_embed.", 3))


def uniformer_pretrained_keys(src: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Official UniFormer checkpoint -> our single-stream keys (the same names).

    A video checkpoint passes through unchanged. A 2D (ImageNet) checkpoint's 4-D conv weights are
    inflated as the original ``inflate_weight`` (repeat over time, divide by the temporal kernel):
    3 for ``patch_embed1.proj`` and the DPEs, 5 for the CBlock MHRA (``blocks{1,2}.*.attn``), 1 else."""
    out = {}
    for key, val in src.items():
        if torch.is_tensor(val) and val.dim() == 4 and key.endswith("weight"):
            kt = next((n for p, n in _INFLATE_T if p in key), 1)
            if key.startswith(("blocks1.", "blocks2.")) and key.endswith(".attn.weight"):
                kt = 5
            val = val.unsqueeze(2).repeat(1, 1, kt, 1, 1) / kt
        out[key] = val
    return out


def build_uniformer(arch: str, *, num_classes: int, frames=(4, 8, 16), dropout: float = 0.5,
                    private_norm: bool = True, weight_alteration: bool = True, weight_sharing: bool = True,
                    pretrained: str = "", wa_init: str = "zeros", drop_path: float = 0.0,
                    cfg: Optional[ModelCfg] = None, name: str = "") -> FrameFlexibleModel:
    """Build Uniformer architecture ``arch`` (see :data:`ARCHS`)."""
    if arch not in ARCHS:
        raise ValueError(f"arch={arch!r}: expected one of {sorted(ARCHS)}")
    return build_frame_flexible(Uniformer, frames=frames, weight_sharing=weight_sharing, pretrained=pretrained,
                                cfg=cfg, name=name, num_classes=num_classes, dropout=dropout,
                                private_norm=private_norm, weight_alteration=weight_alteration, wa_init=wa_init,
                                drop_path=drop_path, **ARCHS[arch])


def _register(arch: str, doc: str, **cfg_kw):
    name = f"uniformer_{arch}"
    cfg = ModelCfg(layout="clip", mean=(0.45, 0.45, 0.45), std=(0.225, 0.225, 0.225), classifier="head",
                   stats_stage="blocks2", family="Uniformer", pretrained_keys=uniformer_pretrained_keys,
                   model_kwargs={"drop_path": 0.0}, **cfg_kw)
    return register_variant(name, partial(build_uniformer, arch), cfg, doc)


uniformer_s = _register(
    "s", "UniFormer-S video: dims 64-128-320-512, depths 3-4-8-3, head_dim 64 (41.8 GMACs at 16x224^2); "
    "weights: uniformer_small_k400_16x4.pth / uniformer_small_k600_16x4.pth.",
    input_size=224, test_size=32, test_frames=((4, 8),), description="UniFormer-S (paper Table 8)")
uniformer_xs = _register(
    "xs", "Ours, for CPU work at 32 px: dims 32-64-128-160, depths 1-1-2-1, head_dim 32, stage-1 patch "
    "3x2x2 / stride (2, 2, 2).",
    input_size=32, test_size=32, description="ours, UniFormer for CPU work (32 px)")
