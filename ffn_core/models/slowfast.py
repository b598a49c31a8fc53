"""Frame-flexible SlowFast (SlowFast-R50 of Feichtenhofer et al. with FFN streams; FFN paper Fig. 6c, Table 8).

A two-pathway 3D ResNet. ``frames`` are what the model is fed: the FAST pathway's frame counts (the
paper's "Frame 16/32/64"); the Slow pathway takes every ``alpha``-th of them, from the first
(``x[:, :, ::alpha]``, ceil(T/alpha) frames). Clips run as (B, C, T, H, W) (layout ``"clip"``); every
temporal operation reads T from the tensor, so any T >= 1 runs (routing to the nearest trained stream
is the base class's, paper Sec. 5.3). Data flow::

    x (B,3,T,H,W) -+-> ::alpha -> stem_s -(c)-> res2_s -(c)-> res3_s -(c)-> res4_s -(c)-> res5_s -> GAP -+
                   |                      ^             ^             ^             ^                   cat -> dropout
                   +-------------> stem_f -F--> res2_f -F--> res3_f -F--> res4_f -F--> res5_f -> GAP -+   -> fc

    F (fuse, Fast -> Slow): Conv3d(C, 2C, kernel (7,1,1), stride (alpha,1,1), pad (3,0,0)) -> BN_T -> ReLU;
        output length floor((T-1)/alpha) + 1 = ceil(T/alpha) = the Slow length for every T; (c) = concat
    stems: slow Conv (1,7,7), fast (5,7,7), stride (1,2,2) -> BN_T -> ReLU -> max-pool (1,3,3)/(1,2,2)

    bottleneck block (both pathways; kt = conv a's temporal kernel, s = spatial stride):
    x -> WA_T: x + phi_T(x) -> a (kt,1,1) -> BN_T -> ReLU -> b (1,3,3)/s -> BN_T -> ReLU -> c 1x1x1 -> BN_T -(+)-> ReLU
    |                                                                                                         |
    +--------- identity, or branch1: Conv 1x1x1 /s (shared) -> branch1_bn_T  (the unaltered input) -----------+

Shared by all streams: every convolution (stems, blocks, shortcuts, fusions) and the classifier.
Private per trained frame count T (:class:`~.flexible_norm.FlexNorm` of ``BatchNorm3d``; paper Eq. 6):
both stem BNs, the a/b/c BNs of every block, every shortcut BN and every fusion BN. Weight alteration
(:class:`~.flexible_norm.WeightAlteration`, ``dims=3``; Eq. 7-9, Fig. 5) sits at the input of every
bottleneck transform in both pathways, before conv a. With one frame count the model is exactly
SlowFast (plain ``BatchNorm3d``, no WA).

State-dict keys are PySlowFast's (``s1.pathway0_stem.conv.weight``, ``s2_fuse.conv_f2s.weight``,
``s4.pathway1_res3.branch2.b_bn.running_var``, ``head.projection.weight``) plus ``.t{T}`` segments of
the private copies and ``...alter.t{T}.weight`` WA keys, so a PySlowFast ``.pyth`` checkpoint loads
as is, and :func:`caffe2_keys` maps the official caffe2 ``SLOWFAST_8x8_R50.pkl`` blobs onto them.

Head: per-pathway global average pool -> concat (2048 + 256) -> dropout -> shared Linear (init
N(0, 0.01)). We return logits; PySlowFast's head applies softmax at eval, our evaluation applies it.
Init: c2_msra_fill (Kaiming-normal fan_out) for convs, BN (1, 0), the final BN of every block zeroed
(PySlowFast ZERO_INIT_FINAL_BN), then WA back to its own (zero) init.

Variants: ``slowfast_r50`` (PySlowFast SLOWFAST_16x8_R50: alpha 4, beta 1/8, [3, 4, 6, 3], 25.2 / 50.3 /
100.6 GMACs at 16 / 32 / 64 fast frames, 224 px; FFN +0.14 %) and ``slowfast_tiny`` (ours, 32 px: one
block per stage, width 28, same alpha / beta / temporal kernels, 1x3x3 / 5x3x3 stems without max-pool;
about the GMACs of ``tsm_tiny_s2``).

Deliberate differences from the original SlowFast-FFN code (``3D_Network/slowfast/models/*_FFN.py``):

* the Slow pathway is exactly every alpha-th frame of each stream's clip. The original packs the H, L
  and M clips into one 112-frame clip and subsamples the concatenation by a linspace, so its slow
  indices are only approximately every 4th frame of each sub-clip (e.g. L: 1, 5, 10, 14);
* any input frame count runs (the nearest trained stream); the original 3D test code crashed on a
  count that is not L/M/H;
* WA starts at zero and is not re-initialised (the original's init_weights overwrote it with
  c2_msra_fill, so its blocks did not start as the pretrained network);
* the caffe2 weights expect BGR input (the original recipe converts RGB -> BGR); :func:`caffe2_keys`
  reverses the stem convs' input-channel axis instead, so the model takes RGB like every other model
  here (exact, since mean/std are the same for all channels);
* streams are data (any sorted tuple of frame counts), not ``_4/_8/_16`` attributes.
"""
from __future__ import annotations

import re
from functools import partial
from typing import Dict, Mapping, Sequence

import torch
from torch import nn

from ._registry import ModelCfg, register_variant
from .flexible_norm import FlexNorm, WeightAlteration, check_frames
from .frame_flexible import FrameFlexibleModel, build_frame_flexible, ffn_switches
from .resnet2d import scaled_widths

__all__ = ["SlowFast", "ARCHS", "build_slowfast", "caffe2_keys"]

#: Architecture specs: blocks per stage, slow stem width (= res2 inner width), beta_inv (fast width =
#: slow / beta_inv), stem spatial kernel, stem max-pool, conv-a temporal kernel per stage (stem, res2..5).
ARCHS = {
    "r50": dict(depths=(3, 4, 6, 3), width=64, beta_inv=8, stem_kernel=7, stem_pool=True,
                slow_kt=(1, 1, 1, 3, 3), fast_kt=(5, 3, 3, 3, 3)),
    "tiny": dict(depths=(1, 1, 1, 1), width=28, beta_inv=8, stem_kernel=3, stem_pool=False,
                 slow_kt=(1, 1, 1, 3, 3), fast_kt=(5, 3, 3, 3, 3)),
}


def _pos_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r}: expected a positive int")
    return value


class _Stem(nn.Module):
    """One pathway's stem: Conv (kt, k, k) stride (1, 2, 2) -> BN_T -> ReLU -> [max-pool (1,3,3)/(1,2,2)]."""

    def __init__(self, cin: int, cout: int, kt: int, k: int, pool: bool, norm):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, (kt, k, k), stride=(1, 2, 2), padding=(kt // 2, k // 2, k // 2), bias=False)
        self.bn = norm(cout)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)) if pool else nn.Identity()

    def forward(self, x):
        return self.pool(self.relu(self.bn(self.conv(x))))


class _Fuse(nn.Module):
    """Fast -> Slow lateral connection (time-strided conv), concatenated to the Slow features."""

    def __init__(self, cin: int, ratio: int, kernel: int, alpha: int, norm):
        super().__init__()
        self.conv_f2s = nn.Conv3d(cin, cin * ratio, (kernel, 1, 1), stride=(alpha, 1, 1),
                                  padding=(kernel // 2, 0, 0), bias=False)
        self.bn = norm(cin * ratio)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, xs, xf):
        return torch.cat([xs, self.relu(self.bn(self.conv_f2s(xf)))], 1), xf


class _Bottleneck(nn.Module):
    """PySlowFast BottleneckTransform: a (kt,1,1) -> b (1,3,3) with the spatial stride -> c 1x1x1."""

    def __init__(self, cin: int, cout: int, inner: int, kt: int, stride: int, norm):
        super().__init__()
        self.a = nn.Conv3d(cin, inner, (kt, 1, 1), padding=(kt // 2, 0, 0), bias=False)
        self.a_bn, self.a_relu = norm(inner), nn.ReLU(inplace=True)
        self.b = nn.Conv3d(inner, inner, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False)
        self.b_bn, self.b_relu = norm(inner), nn.ReLU(inplace=True)
        self.c = nn.Conv3d(inner, cout, 1, bias=False)
        self.c_bn = norm(cout)

    def forward(self, x, alter=None):
        """``alter``: the block's weight alteration, folded into conv a's kernel (``fold_into``)."""
        x = self.a_relu(self.a_bn(self.a(x) if alter is None else alter.fold_into(self.a, x)))
        x = self.b_relu(self.b_bn(self.b(x)))
        return self.c_bn(self.c(x))


class _ResBlock(nn.Module):
    """WA_T -> bottleneck, plus the (projection) shortcut of the unaltered input, then ReLU."""

    alteration_target = "branch2.a"  # the conv WA_T is folded into (training and export)

    def __init__(self, cin, cout, inner, kt, stride, norm, frames, weight_alteration, wa_init):
        super().__init__()
        if cin != cout or stride != 1:
            self.branch1 = nn.Conv3d(cin, cout, 1, stride=(1, stride, stride), bias=False)
            self.branch1_bn = norm(cout)
        else:
            self.branch1 = None
        self.alter = WeightAlteration(cin, frames, init=wa_init, dims=3) if weight_alteration else None
        self.branch2 = _Bottleneck(cin, cout, inner, kt, stride, norm)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.branch2(x, self.alter)  # WA_T folded into conv a: the same as branch2(alter(x))
        identity = x if self.branch1 is None else self.branch1_bn(self.branch1(x))
        return self.relu(out + identity)


class _Pathways(nn.Module):
    """Container of a stage's per-pathway modules (``pathway0_*`` slow, ``pathway1_*`` fast)."""

    def __init__(self, slow: Sequence[nn.Module], fast: Sequence[nn.Module], kind: str):
        super().__init__()
        self.depth = len(slow)
        for p, mods in enumerate((slow, fast)):
            for i, m in enumerate(mods):
                self.add_module(f"pathway{p}_{kind}" if kind == "stem" else f"pathway{p}_{kind}{i}", m)

    def forward(self, xs, xf):
        mods = list(self.children())
        for m in mods[:self.depth]:
            xs = m(xs)
        for m in mods[self.depth:]:
            xf = m(xf)
        return xs, xf


class _Head(nn.Module):
    """Holds the shared classifier ``projection`` (PySlowFast's key ``head.projection.*``)."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.projection = nn.Linear(dim, num_classes)


class SlowFast(FrameFlexibleModel):
    """SlowFast with shared convolutions and per-frame-count BN / weight alteration (module docstring).

    Args:
        depths: blocks in res2..res5. width: slow stem width (= res2 inner width; outputs 4x).
        beta_inv: fast width = slow width / beta_inv. alpha: slow pathway takes every alpha-th frame.
        stem_kernel, stem_pool: stem spatial kernel and its (1,3,3) max-pool.
        slow_kt, fast_kt: temporal kernels of the stems and the conv a of res2..res5.
        fusion_ratio, fusion_kernel: lateral conv channel ratio and (odd) temporal kernel.
        num_classes, frames, dropout, private_norm, weight_alteration, wa_init: as every FFN backbone.
    """

    default_classifier = "head.projection"

    def __init__(self, *, depths: Sequence[int], width: int, beta_inv: int, stem_kernel: int, stem_pool: bool,
                 slow_kt: Sequence[int], fast_kt: Sequence[int], num_classes: int, frames=(16, 32, 64),
                 alpha: int = 4, fusion_ratio: int = 2, fusion_kernel: int = 7, dropout: float = 0.5,
                 private_norm: bool = True, weight_alteration: bool = True, wa_init: str = "zeros",
                 in_chans: int = 3):
        super().__init__()
        self.frames = check_frames(frames)
        self.num_classes = _pos_int(num_classes, "num_classes")
        self.alpha = _pos_int(alpha, "alpha")
        _pos_int(beta_inv, "beta_inv"), _pos_int(fusion_ratio, "fusion_ratio")
        if _pos_int(fusion_kernel, "fusion_kernel") % 2 == 0:
            raise ValueError(f"fusion_kernel={fusion_kernel!r}: expected an odd int (the fused length must be "
                             "ceil(T/alpha) for every T)")
        if len(depths) != 4 or len(slow_kt) != 5 or len(fast_kt) != 5:
            raise ValueError(f"depths={depths!r}, slow_kt={slow_kt!r}, fast_kt={fast_kt!r}: expected 4 stage "
                             "depths and 5 temporal kernels (stem, res2..res5)")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout={dropout!r}: expected a number in [0, 1)")
        if width // beta_inv < 1:
            raise ValueError(f"width={width!r}, beta_inv={beta_inv!r}: the fast pathway has no channels")
        self.private_norm, self.weight_alteration = ffn_switches(self.frames, private_norm, weight_alteration)
        norm = partial(FlexNorm, nn.BatchNorm3d, self.frames) if self.private_norm else nn.BatchNorm3d
        self.in_chans, self.beta_inv = in_chans, beta_inv
        wf = width // beta_inv
        self.s1 = _Pathways([_Stem(in_chans, width, slow_kt[0], stem_kernel, stem_pool, norm)],
                            [_Stem(in_chans, wf, fast_kt[0], stem_kernel, stem_pool, norm)], "stem")
        self.s1_fuse = _Fuse(wf, fusion_ratio, fusion_kernel, self.alpha, norm)
        c_slow, c_fast = width + wf * fusion_ratio, wf
        block = partial(_ResBlock, norm=norm, frames=self.frames, weight_alteration=self.weight_alteration,
                        wa_init=wa_init)
        for i, n in enumerate(depths):
            inner, out, stride = width * 2 ** i, 4 * width * 2 ** i, 1 if i == 0 else 2
            slow, fast = [], []
            for j in range(_pos_int(n, "depths")):
                s = stride if j == 0 else 1
                slow.append(block(c_slow if j == 0 else out, out, inner, slow_kt[i + 1], s))
                fast.append(block(c_fast if j == 0 else out // beta_inv, out // beta_inv, inner // beta_inv,
                                  fast_kt[i + 1], s))
            self.add_module(f"s{i + 2}", _Pathways(slow, fast, "res"))
            c_fast = out // beta_inv
            c_slow = out + c_fast * fusion_ratio
            if i < 3:
                self.add_module(f"s{i + 2}_fuse", _Fuse(c_fast, fusion_ratio, fusion_kernel, self.alpha, norm))
        self.num_features = out + out // beta_inv
        self.dropout = nn.Dropout(dropout)
        self.head = _Head(self.num_features, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv3d):  # c2_msra_fill
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, _Bottleneck):  # ZERO_INIT_FINAL_BN: every block starts as its shortcut
                for bn in m.c_bn.modules():
                    if isinstance(bn, nn.BatchNorm3d):
                        nn.init.zeros_(bn.weight)
            if hasattr(m, "reset_flex_parameters"):  # WA back to its own init after the conv init
                m.reset_flex_parameters()
        nn.init.normal_(self.head.projection.weight, 0.0, 0.01)
        nn.init.zeros_(self.head.projection.bias)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) -> pooled (B, D) = concat(slow GAP, fast GAP); the stream is already active."""
        xf = x.transpose(1, 2)  # (B, 3, T, H, W)
        xs = xf[:, :, ::self.alpha]  # exactly every alpha-th frame, from the first: ceil(T/alpha)
        xs, xf = self.s1_fuse(*self.s1(xs, xf))
        xs, xf = self.s2_fuse(*self.s2(xs, xf))
        xs, xf = self.s3_fuse(*self.s3(xs, xf))
        xs, xf = self.s4_fuse(*self.s4(xs, xf))
        xs, xf = self.s5(xs, xf)
        return torch.cat([xs.mean((2, 3, 4)), xf.mean((2, 3, 4))], 1)


# -- pretrained: the caffe2 SLOWFAST_8x8_R50.pkl blob names -> our (PySlowFast) single-stream keys --------------
_BN = {"s": "weight", "b": "bias", "rm": "running_mean", "riv": "running_var"}  # caffe2 riv = running variance
_C2_RULES = [  # (pattern, key template); {p}: pathway 0 (slow) / 1 (fast, caffe2 prefix "t_")
    (r"(?P<t>t_)?conv1_w", "s1.pathway{p}_stem.conv.weight"),
    (r"(?P<t>t_)?res_conv1_bn_(?P<bn>s|b|rm|riv)", "s1.pathway{p}_stem.bn.{bn}"),
    (r"t_pool1_subsample_w", "s1_fuse.conv_f2s.weight"),
    (r"t_pool1_subsample_bn_(?P<bn>s|b|rm|riv)", "s1_fuse.bn.{bn}"),
    (r"t_res(?P<s>\d+)_\d+_branch2c_bn_subsample_w", "s{s}_fuse.conv_f2s.weight"),  # after a stage's last block
    (r"t_res(?P<s>\d+)_\d+_branch2c_bn_subsample_bn_(?P<bn>s|b|rm|riv)", "s{s}_fuse.bn.{bn}"),
    (r"(?P<t>t_)?res(?P<s>\d+)_(?P<i>\d+)_branch1_w", "s{s}.pathway{p}_res{i}.branch1.weight"),
    (r"(?P<t>t_)?res(?P<s>\d+)_(?P<i>\d+)_branch1_bn_(?P<bn>s|b|rm|riv)", "s{s}.pathway{p}_res{i}.branch1_bn.{bn}"),
    (r"(?P<t>t_)?res(?P<s>\d+)_(?P<i>\d+)_branch2(?P<l>[abc])_w", "s{s}.pathway{p}_res{i}.branch2.{l}.weight"),
    (r"(?P<t>t_)?res(?P<s>\d+)_(?P<i>\d+)_branch2(?P<l>[abc])_bn_(?P<bn>s|b|rm|riv)",
     "s{s}.pathway{p}_res{i}.branch2.{l}_bn.{bn}"),
    (r"pred_w", "head.projection.weight"),
    (r"pred_b", "head.projection.bias"),
]
_C2_RULES = [(re.compile(p + r"\Z"), t) for p, t in _C2_RULES]
_C2_DROP = re.compile(r".*_momentum\Z|lr\Z|model_iter\Z|.*_iter\Z")  # solver state, not weights
_STEM_CONVS = ("s1.pathway0_stem.conv.weight", "s1.pathway1_stem.conv.weight")


def _c2_key(name: str):
    for pattern, template in _C2_RULES:
        m = pattern.match(name)
        if m:
            g = m.groupdict()
            return template.format(**{**g, "p": int(bool(g.get("t"))), "bn": _BN.get(g.get("bn"), "")})
    return None


def caffe2_keys(src: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Map a SlowFast pretrained state dict onto our single-stream keys (``ModelCfg.pretrained_keys``).

    * caffe2 blobs (``SLOWFAST_8x8_R50.pkl``: ``conv1_w``, ``res_conv1_bn_s``, ``res3_2_branch2b_bn_riv``,
      fast pathway with a ``t_`` prefix, ``t_pool1_subsample_*`` / ``t_res{s}_{i}_branch2c_bn_subsample_*``
      fusions, ``pred_*`` head): renamed; BN ``_s/_b/_rm/_riv`` -> weight / bias / running_mean /
      running_var. Solver blobs (``*_momentum``, ``lr``, ``model_iter``) are dropped; any other
      unknown blob is kept under its own name (reported as unexpected by the loader). The stem convs'
      input-channel axis is reversed (BGR-trained weights -> RGB input; exact for equal mean/std).
    * PySlowFast state dicts (``.pyth``, keys with dots) already use our keys: returned unchanged.
    """
    if any("." in k for k in src):
        return dict(src)
    out: Dict[str, torch.Tensor] = {}
    for name, value in src.items():
        if _C2_DROP.match(name):
            continue
        key = _c2_key(name)
        if key in _STEM_CONVS and torch.is_tensor(value) and value.dim() == 5:
            value = value.flip(1)
        out[key or name] = value
    return out


def build_slowfast(arch: str, *, num_classes: int, frames=(16, 32, 64), dropout: float = 0.5,
                   private_norm: bool = True, weight_alteration: bool = True, weight_sharing: bool = True,
                   pretrained: str = "", wa_init: str = "zeros", alpha: int = 4, width: float = 1.0,
                   cfg: ModelCfg | None = None, name: str = "") -> FrameFlexibleModel:
    """Build SlowFast architecture ``arch`` (see :data:`ARCHS`); ``width`` scales the tiny variant."""
    if arch not in ARCHS:
        raise ValueError(f"arch={arch!r}: expected one of {sorted(ARCHS)}")
    spec = dict(ARCHS[arch])
    if width != 1.0:
        if arch != "tiny":
            raise ValueError(f"width={width!r}: the width multiplier is only for the tiny variant")
        spec["width"] = max(spec["beta_inv"], scaled_widths((spec["width"],), width)[0])
    return build_frame_flexible(SlowFast, frames=frames, weight_sharing=weight_sharing, pretrained=pretrained,
                                cfg=cfg, name=name, num_classes=num_classes, dropout=dropout,
                                private_norm=private_norm, weight_alteration=weight_alteration, wa_init=wa_init,
                                alpha=alpha, **spec)


def _register(arch: str, doc: str, **cfg_kw):
    name = f"slowfast_{arch}"
    cfg = ModelCfg(layout="clip", mean=(0.45, 0.45, 0.45), std=(0.225, 0.225, 0.225), classifier="head.projection",
                   stats_stage="s5.pathway0", family="SlowFast", paper_frames=(16, 32, 64),
                   pretrained_keys=caffe2_keys,
                   model_kwargs={"alpha": 4, **({"width": 1.0} if arch == "tiny" else {})}, **cfg_kw)
    return register_variant(name, partial(build_slowfast, arch), cfg, doc)


slowfast_r50 = _register(
    "r50", "SlowFast-R50 (PySlowFast SLOWFAST_16x8_R50: alpha 4, beta 1/8, [3,4,6,3]); ``frames`` are fast-pathway "
    "counts (paper: 16/32/64); pretrained: a local SLOWFAST_8x8_R50.pkl (caffe2) or PySlowFast .pyth.",
    input_size=224, test_size=32, test_frames=((8, 16),), description="SlowFast-R50 (paper Table 8, Fig. 6c)")
slowfast_tiny = _register(
    "tiny", "Tiny SlowFast for CPU work: one block per stage, slow inner widths 28-56-112-224 (x4 out) x ``width``, "
    "alpha 4, beta 1/8, 1x3x3/5x3x3 stems without max-pool; 32 px clips.",
    input_size=32, test_size=32, description="ours, for CPU work (32 px)")
