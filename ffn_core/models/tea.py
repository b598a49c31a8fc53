"""TEA (Temporal Excitation and Aggregation, Li et al. CVPR 2020) on Res2Net-50 with FFN streams.

A :class:`~.resnet2d.ResNet2D` of :class:`TEABottleneck` blocks (Res2Net "Bottle2neck", 26w x 4s):
frames run as images (B*T, C, H, W) and the two temporal operations take T from the active stream
(:class:`~.flexible_norm.StreamAware`), never from a stored frame count. One block::

    x -> WA_T -> conv1 1x1 -> BN_T -> ReLU -> ME -> split into `scale` groups of `width` channels
                                                     |
      g0 ------------> tconv(id) -> conv3x3 -> BN_T -> ReLU = y0 ---------------------+
      g1 (+ y0)      -> tconv(id) -> conv3x3 -> BN_T -> ReLU = y1 ----------------+   |  MTA
      g2 (+ y1)      -> tconv(id) -> conv3x3 -> BN_T -> ReLU = y2 ------------+   |   |
      g3             -> tconv(shift)  [stage-first block: -> AvgPool 3x3/s] -+   |   |
                                                          concat(y0, y1, y2, y3) <-+---+
      -> conv3 1x1 -> BN_T --(+)--> ReLU
    x -- identity | downsample conv1x1/s -> BN_T --+

    ME (motion excitation, TEA Sec. 3.1, Eq. 1-4), on the conv1 output z (C = width*scale channels):
      r = BN_T(conv 1x1 C -> C/16 (z));   m(t) = dwconv3x3(r(t+1)) - r(t),  m(T-1) = 0
      y = BN_T(conv 1x1 C/16 -> C (GAP(m)));   ME(z) = z + z * (sigmoid(y) - 0.5)

MTA (multiple temporal aggregation, TEA Sec. 3.2, Eq. 5-6) is Res2Net's hierarchy with a
channel-wise temporal conv (kernel 3) in front of each group: groups 0..scale-2 start at identity
("fixed"), the last group at a partial shift - with ``f = width // 2``: channels [0, f) take frame
t+1 (zero at the last frame), [f, 2f) take frame t-1 (zero at the first), an odd remainder channel
is unchanged (so at init half the group moves each way). In a stage-first block (the first block of
every stage, the one with the downsample shortcut: Res2Net's ``stype='stage'``) the groups are not
chained, every 3x3 conv has the block's stride and the last group is average-pooled 3x3 with that
stride after its temporal conv.

Shared vs private (paper Sec. 4.3, Eq. 6-9): every convolution (stem, conv1/conv3, the group 3x3
convs, ME's three convs, the temporal kernels, the downsample conv) and the classifier are shared by
all streams; every BatchNorm (stem, bn1, bns.i, bn3, downsample.1, ME's bn1/bn3) is a private
:class:`FlexNorm` copy per trained frame count, and each block input has a private weight
alteration ``x + phi_T(x)`` (Eq. 7-9, Fig. 5). With one frame count the model is plain TEA.

State-dict keys are the official Res2Net-PretrainedModels ``res2net50_26w_4s`` keys (``conv1``,
``bn1``, ``layerX.Y.{conv1,bn1,convs.i,bns.i,conv3,bn3,downsample.0,downsample.1}``, ``fc``), plus
``layerX.Y.temporal.*`` (ME), ``layerX.Y.shifts.i.weight`` (temporal kernels) and
``layerX.Y.alter.t{T}.weight`` (WA), so ImageNet Res2Net weights load with the identity mapping; ME,
the temporal kernels and WA have no source and keep their init (they are ``missing`` in the report).

Deliberate differences from the original code (``2D_Network/ops/backbone/resnet_TEA_FFN.py``):

* **weight alteration**: the released TEA-FFN has none (only private norms), although the paper
  puts WA in every convolution block (Sec. 4.3, Fig. 5). We add it as the paper describes, zero
  initialised; ``weight_alteration=False`` gives the released form.
* **frame counts**: the original ME/Shift modules hold n_segment_{L,M,H} and, in eval mode,
  overwrite L and M with H without restoring them, so after the first validation the 4- and 8-frame
  streams were trained with 16-frame grouping (clips mixed in the temporal ops). Here every call
  reads T from the active stream, so clips never mix (tested: eval at 16 frames, then a train step
  of the 4-frame stream keeps clips separate).
* streams are data (any sorted tuple of frame counts), not ``_4/_8/_16`` copies.
* ME takes the spatial average of ``K * r(t+1)`` and of ``r(t)`` before subtracting them (the GAP
  is linear, so this is the original's GAP of the zero-padded difference, without the full-size
  difference map). As in the original, its ``bn3`` normalises pooled (B*T, C, 1, 1) features, so a
  training batch of a single frame (B*T = 1) is rejected by BatchNorm.
* the temporal conv runs as a depth-wise ``conv2d`` over a (T, H*W) plane (same result as the
  original's permuted ``Conv1d``, faster on CPU); its weight is ``(C, 1, 3)`` like the original.
"""
from __future__ import annotations

import math
from functools import partial
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._registry import ModelCfg, register_variant
from .flexible_norm import FlexNorm, StreamAware, check_frames
from .frame_flexible import FrameFlexibleModel, build_frame_flexible, ffn_switches
from .resnet2d import FlexBlock, ResNet2D

__all__ = ["TemporalConv", "MotionExcitation", "TEABottleneck", "TEAResNet", "ARCHS", "build_tea"]


def _num_clips(x: torch.Tensor, t: int, who: str) -> int:
    if x.dim() != 4 or x.shape[0] % t:
        raise ValueError(f"{who}: expected frames (B*T, C, H, W) with T={t} from the active stream, got "
                         f"{tuple(x.shape)}")
    return x.shape[0] // t


class TemporalConv(StreamAware, nn.Module):
    """Channel-wise temporal convolution, kernel 3, zero padding, on (B*T, C, H, W) (TEA's ShiftModule).

    ``out[t, c] = w[c, 0] x[t-1, c] + w[c, 1] x[t, c] + w[c, 2] x[t+1, c]``. ``init="fixed"``: identity
    (``w[:, 1] = 1``); ``init="shift"``: with ``f = C // 2`` channels [0, f) take frame t+1, [f, 2f)
    frame t-1, the rest (one channel if C is odd) are unchanged. T is the active stream's ``num_frames``.
    """

    INITS = ("fixed", "shift")

    def __init__(self, channels: int, init: str = "fixed"):
        super().__init__()
        if init not in self.INITS:
            raise ValueError(f"TemporalConv(init={init!r}): expected one of {self.INITS}")
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"TemporalConv(channels={channels!r}): expected a positive int")
        self.channels, self.init = channels, init
        self.weight = nn.Parameter(torch.empty(channels, 1, 3))
        self.reset_flex_parameters()

    def reset_flex_parameters(self) -> None:
        """The identity / partial-shift init (ResNet2D calls this after its generic init)."""
        with torch.no_grad():
            w = self.weight.zero_()
            if self.init == "fixed":
                w[:, 0, 1] = 1
            else:
                f = self.channels // 2
                w[:f, 0, 2] = 1          # from frame t+1 ("shift left")
                w[f:2 * f, 0, 0] = 1     # from frame t-1 ("shift right")
                w[2 * f:, 0, 1] = 1      # odd remainder unchanged

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self._require_state().num_frames
        n = _num_clips(x, t, type(self).__name__)
        nt, c, h, w = x.shape
        z = x.reshape(n, t, c, h * w).transpose(1, 2)                      # (N, C, T, HW)
        z = F.conv2d(z, self.weight.unsqueeze(-1), padding=(1, 0), groups=c)
        return z.transpose(1, 2).reshape(nt, c, h, w)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, init={self.init}"


class MotionExcitation(StreamAware, nn.Module):
    """TEA's ME module (Sec. 3.1, Eq. 1-4): channel attention from feature-level frame differences.

    ``norm_layer`` builds the two norms (private :class:`FlexNorm` copies in an FFN); the convs are
    shared. T is the active stream's ``num_frames``; the last frame's motion is zero.
    """

    def __init__(self, channels: int, norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
                 reduction: int = 16):
        super().__init__()
        if not isinstance(reduction, int) or reduction < 1:
            raise ValueError(f"MotionExcitation(reduction={reduction!r}): expected a positive int")
        mid = max(1, channels // reduction)
        self.channels, self.reduction = channels, reduction
        self.conv1 = nn.Conv2d(channels, mid, 1, bias=False)
        self.bn1 = norm_layer(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1, groups=mid, bias=False)
        self.conv3 = nn.Conv2d(mid, channels, 1, bias=False)
        self.bn3 = norm_layer(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self._require_state().num_frames
        n = _num_clips(x, t, type(self).__name__)
        r = self.bn1(self.conv1(x))                                  # (N*T, C/r, H, W)
        moved = self.conv2(r).mean((2, 3)).view(n, t, -1)            # GAP(K * r(t)): GAP is linear
        here = r.mean((2, 3)).view(n, t, -1)
        motion = F.pad(moved[:, 1:] - here[:, :-1], (0, 0, 0, 1))    # m(t) = K*r(t+1) - r(t), m(T-1) = 0
        y = self.bn3(self.conv3(motion.reshape(n * t, -1, 1, 1)))
        return x + x * (torch.sigmoid(y) - 0.5)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, reduction={self.reduction}"


class TEABottleneck(FlexBlock):
    """Res2Net bottleneck with ME after conv1 and MTA temporal kernels in the width groups.

    ``temporal_layer`` (injected by :class:`ResNet2D`) builds the ME module on the ``width*scale``
    conv1 channels; ``width = floor(planes * base_width / 64)``. The block is stage-first (Res2Net
    ``stype='stage'``: parallel groups, stride in every 3x3 conv, avg-pooled last group) when it has
    a downsample shortcut, which in ResNet2D is exactly the first block of every stage here (its
    input width never equals ``planes * 4``).
    """

    expansion = 4
    temporal_at_input = False

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None,
                 norm_layer: Optional[Callable[[int], nn.Module]] = None, *, frames: Sequence[int] = (1,),
                 weight_alteration: bool = False, wa_init: str = "zeros",
                 temporal_layer: Optional[Callable[[int], nn.Module]] = None, base_width: int = 26, scale: int = 4):
        super().__init__()
        if not isinstance(scale, int) or scale < 2:
            raise ValueError(f"scale={scale!r}: TEA needs at least 2 width groups (an int >= 2)")
        width = int(math.floor(planes * (base_width / 64.0)))
        if width < 1:
            raise ValueError(f"base_width={base_width!r}: gives {width} channels per group for planes={planes}")
        norm_layer = norm_layer or nn.BatchNorm2d
        self.width, self.scale, self.stride = width, scale, stride
        self.stage_first = downsample is not None
        self.conv1 = nn.Conv2d(inplanes, width * scale, 1, bias=False)
        self.bn1 = norm_layer(width * scale)
        self.convs = nn.ModuleList(nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
                                   for _ in range(scale - 1))
        self.bns = nn.ModuleList(norm_layer(width) for _ in range(scale - 1))
        self.shifts = nn.ModuleList([TemporalConv(width, "fixed") for _ in range(scale - 1)]
                                    + [TemporalConv(width, "shift")])
        self.pool = nn.AvgPool2d(3, stride=stride, padding=1) if self.stage_first else None
        self.conv3 = nn.Conv2d(width * scale, planes * self.expansion, 1, bias=False)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self._init_flex(inplanes, frames, weight_alteration, wa_init, temporal_layer, temporal_channels=width * scale)

    def aggregate(self, z: torch.Tensor) -> torch.Tensor:
        """MTA: (B*T, width*scale, H, W) after ME -> concatenated groups (B*T, width*scale, H/s, W/s)."""
        groups = torch.split(z, self.width, dim=1)
        outs, prev = [], None
        for i, (tconv, conv, bn) in enumerate(zip(self.shifts, self.convs, self.bns)):
            sp = groups[i] if prev is None or self.stage_first else prev + groups[i]
            prev = self.relu(bn(conv(tconv(sp))))
            outs.append(prev)
        last = self.shifts[-1](groups[-1])
        outs.append(self.pool(last) if self.pool is not None else last)
        return torch.cat(outs, dim=1)

    def _branch(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self._conv_in(self.conv1, x)))
        if self.temporal is not None:
            out = self.temporal(out)
        return self.bn3(self.conv3(self.aggregate(out)))

    def extra_repr(self) -> str:
        return f"width={self.width}, scale={self.scale}, stride={self.stride}, stage_first={self.stage_first}"


class TEAResNet(ResNet2D):
    """:class:`ResNet2D` of :class:`TEABottleneck` blocks, ME (``reduction``) as the injected temporal op."""

    def __init__(self, *, frames: Sequence[int] = (4, 8, 16), private_norm: bool = True,
                 weight_alteration: bool = True, base_width: int = 26, scale: int = 4, reduction: int = 16,
                 **kwargs):
        frames = check_frames(frames)
        use_private, _ = ffn_switches(frames, private_norm, weight_alteration)
        norm = partial(FlexNorm, nn.BatchNorm2d, frames) if use_private else nn.BatchNorm2d
        super().__init__(block=TEABottleneck, frames=frames, private_norm=private_norm,
                         weight_alteration=weight_alteration, norm_layer=norm,
                         temporal_layer=partial(MotionExcitation, norm_layer=norm, reduction=reduction),
                         block_kwargs=dict(base_width=base_width, scale=scale), **kwargs)


ARCHS = {
    # ours, for CPU work: the small_s2 stem of tsm_tiny_s2, one Res2Net block per stage except a
    # second one in layer3 (so the hierarchical "normal" block is exercised), widths 16-32-64-128.
    "tiny": dict(layers=(1, 1, 2, 1), widths=(16, 32, 64, 128), stem="small_s2"),
    "r50": dict(layers=(3, 4, 6, 3), widths=(64, 128, 256, 512), stem="imagenet"),
}


def build_tea(arch: str, *, num_classes: int, frames=(4, 8, 16), dropout: float = 0.5, private_norm: bool = True,
              weight_alteration: bool = True, weight_sharing: bool = True, pretrained: str = "",
              wa_init: str = "zeros", cfg: ModelCfg | None = None, name: str = "") -> FrameFlexibleModel:
    """Build TEA architecture ``arch`` (see :data:`ARCHS`; Res2Net 26w x 4s blocks, ME reduction 16)."""
    if arch not in ARCHS:
        raise ValueError(f"arch={arch!r}: expected one of {sorted(ARCHS)}")
    return build_frame_flexible(TEAResNet, frames=frames, weight_sharing=weight_sharing, pretrained=pretrained,
                                cfg=cfg, name=name, num_classes=num_classes, dropout=dropout,
                                private_norm=private_norm, weight_alteration=weight_alteration, wa_init=wa_init,
                                **ARCHS[arch])


def _register(arch: str, doc: str, **cfg_kw):
    name = f"tea_{arch}"
    cfg = ModelCfg(layout="frames", classifier="fc", stats_stage="layer4", family="TEA", **cfg_kw)
    return register_variant(name, partial(build_tea, arch), cfg, doc)


tea_tiny = _register("tiny", "Tiny TEA for CPU work: Res2Net blocks [1,1,2,1] (26w x 4s), widths 16-32-64-128, "
                     "3x3/2 stem without max-pool (the stem of tsm_tiny_s2).",
                     input_size=32, test_size=32, description="ours, TEA for CPU work (32-64 px)")
tea_r50 = _register("r50", "TEA on Res2Net-50 26w x 4s (blocks [3,4,6,3]); ImageNet: a local "
                    "res2net50_26w_4s file (official Res2Net-PretrainedModels key layout).",
                    test_size=32, test_frames=((4, 8),), description="TEA Res2Net-50 26w4s (paper Table 8)")
