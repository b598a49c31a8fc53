"""TSM-ResNet-{tiny,18,34,50,101} with Frame Flexible Network streams (paper Sec. 4, ffn_method 2.1).

Built from torchvision's ResNet blocks (``torchvision.models.resnet.BasicBlock`` / ``Bottleneck``),
pytorchvideo-style: the builder takes the ``norm_layer`` factory as an argument, and that is where the
per-frame-count norms plug in (``partial(FlexNorm, nn.BatchNorm2d, frames)``). Each block's residual
branch is::

    x --> shift(T of the batch) --> WA_T (x + phi_T(x)) --> conv1 -> BN1_T -> ReLU -> ... -> BN_last_T --(+)--> ReLU
    |                                                                                                  |
    +---------------------------- identity, or downsample conv (shared) -> BN_T ------------------------+

Convolutions and the classifier are shared by all streams; BN_T (:class:`FlexNorm`) and WA_T
(:class:`WeightAlteration`) are private to the stream of trained frame count T.

State-dict keys of the standard variants are torchvision's ``resnet18/34/50/101`` keys
(``conv1.weight``, ``layer2.0.downsample.1.running_mean``, ``fc.weight``...), with a ``.t{T}`` segment
for private copies (``layer1.0.bn1.t8.weight``) and extra ``layer*.*.alter.t{T}.weight`` WA keys, so
ImageNet weights map in by deleting the ``t{T}`` segments (see ``pretrained.py``).

Head (``forward_head``): per-frame pooled features -> Dropout -> shared Linear (init N(0, 1e-3),
bias 0) -> average over T (TSN "avg" consensus, before softmax).

With ONE frame count (``frames=(16,)``: the "ST" baseline) there is nothing to specialise: norms are
plain ``BatchNorm2d`` and there is no WA, i.e. exactly TSM (its keys are pure torchvision keys); any
input T routes to that stream, which is how the TFD is measured.

``tiny`` (our addition, for CPU work): BasicBlock [2, 2, 2, 2], widths 16-32-64-128 (times ``width``),
a 3x3 stride-1 stem and no max-pool, suited to 32-64 px input (total stride 8: 32 px -> 4x4 in
layer4). It has no ImageNet weights.

Deliberate differences from the original code: the shift uses each batch's own T (issue #3 of the
official repo); WA is near-zero initialised and not overwritten by the Kaiming init (ffn_method 1.4);
streams are data (any sorted tuple of frame counts), not copy-pasted ``_4/_8/_16`` attributes.
"""
from __future__ import annotations

from functools import partial
from typing import Callable, Dict, Optional, Sequence

import torch
from torch import nn

from ffn_core._tv import torchvision

from ._registry import register_model
from .flexible_norm import FlexNorm, WeightAlteration, check_frames, route_stream, stream_key, use_stream
from .temporal_shift import TemporalShift

_tvr = torchvision.models.resnet

__all__ = ["TSMBasicBlock", "TSMBottleneck", "FrameFlexibleModel", "TSMResNet", "SeparateTSMResNet", "ARCHS"]


class _TSMBlockMixin:
    """Adds the temporal shift and weight alteration in front of a torchvision block's residual branch."""

    n_convs = 2

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None,
                 norm_layer: Optional[Callable[[int], nn.Module]] = None, *, frames: Sequence[int] = (1,),
                 weight_alteration: bool = False, fold_div: int = 8, wa_init: str = "zeros"):
        super().__init__(inplanes, planes, stride, downsample, norm_layer=norm_layer)
        self.shift = TemporalShift(fold_div)
        self.alter = WeightAlteration(inplanes, frames, init=wa_init) if weight_alteration else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.shift(x)
        if self.alter is not None:
            out = self.alter(out)
        for i in range(1, self.n_convs + 1):
            out = getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(out))
            if i < self.n_convs:
                out = self.relu(out)
        identity = x if self.downsample is None else self.downsample(x)  # unaltered, unshifted input
        return self.relu(out + identity)


class TSMBasicBlock(_TSMBlockMixin, _tvr.BasicBlock):
    """torchvision ``BasicBlock`` (3x3, 3x3) with shift + WA on the residual branch input."""

    n_convs = 2


class TSMBottleneck(_TSMBlockMixin, _tvr.Bottleneck):
    """torchvision ``Bottleneck`` (1x1, 3x3 with the stride, 1x1) with shift + WA on the branch input."""

    n_convs = 3


ARCHS: Dict[str, dict] = {
    "tiny": dict(block=TSMBasicBlock, layers=(2, 2, 2, 2), widths=(16, 32, 64, 128), stem="small", tv_arch=None),
    "tiny_s2": dict(block=TSMBasicBlock, layers=(2, 2, 2, 2), widths=(16, 32, 64, 128), stem="small_s2", tv_arch=None),
    "r18": dict(block=TSMBasicBlock, layers=(2, 2, 2, 2), widths=(64, 128, 256, 512), stem="imagenet", tv_arch="resnet18"),
    "r34": dict(block=TSMBasicBlock, layers=(3, 4, 6, 3), widths=(64, 128, 256, 512), stem="imagenet", tv_arch="resnet34"),
    "r50": dict(block=TSMBottleneck, layers=(3, 4, 6, 3), widths=(64, 128, 256, 512), stem="imagenet", tv_arch="resnet50"),
    "r101": dict(block=TSMBottleneck, layers=(3, 4, 23, 3), widths=(64, 128, 256, 512), stem="imagenet", tv_arch="resnet101"),
}


class FrameFlexibleModel(nn.Module):
    """The stream API shared by the FFN models (subclasses implement forward_features/forward_head).

    * ``model(x)``, x (B, T, 3, H, W): logits (B, C) from the stream ``model.route(T)``
      (``model(x, stream=T_trained)`` overrides the routing);
    * ``model(clips)`` with a list/tuple of clips == ``model.forward_streams(clips)``: the training
      forward, one clip per trained frame count (aligned with ``model.frames``) -> ``{T: logits}``.
      Going through ``__call__`` keeps it usable under DistributedDataParallel.
    """

    frames: tuple
    in_chans: int = 3
    tv_arch: Optional[str] = None

    def route(self, num_frames: int) -> int:
        """Trained frame count whose stream runs a ``num_frames``-frame input (nearest, ties higher)."""
        return route_stream(num_frames, self.frames)

    def _select(self, x: torch.Tensor, stream: Optional[int]) -> int:
        if not torch.is_tensor(x) or x.dim() != 5 or x.shape[2] != self.in_chans:
            shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(
                f"{type(self).__name__}: expected clips of shape (B, T, {self.in_chans}, H, W), got {shape} "
                "(flatten evaluation views into the batch: (B*V, T, 3, H, W))"
            )
        if stream is None:
            return self.route(int(x.shape[1]))
        if stream not in self.frames:
            raise ValueError(f"stream={stream!r}: expected one of the trained frame counts {self.frames}")
        return int(stream)

    def forward(self, x, stream: Optional[int] = None):
        if isinstance(x, (list, tuple)):
            if stream is not None:
                raise ValueError("stream= cannot be combined with a list of clips (one clip per stream)")
            return self.forward_streams(x)
        s = self._select(x, stream)
        return self.forward_head(self.forward_features(x, s), s)

    def forward_streams(self, clips: Sequence[torch.Tensor]) -> Dict[int, torch.Tensor]:
        """Training forward: ``clips[k]`` is (B_k, frames[k], 3, H, W); returns ``{frames[k]: logits}``."""
        if len(clips) != len(self.frames):
            raise ValueError(
                f"forward_streams: got {len(clips)} clips for frames={self.frames}; pass one clip per "
                "trained frame count, in the order of model.frames"
            )
        out = {}
        for k, (t, clip) in enumerate(zip(self.frames, clips)):
            if not torch.is_tensor(clip) or clip.dim() != 5 or clip.shape[1] != t:
                shape = tuple(clip.shape) if torch.is_tensor(clip) else type(clip).__name__
                raise ValueError(f"forward_streams: clips[{k}] has shape {shape}, expected (B, {t}, 3, H, W)")
            out[t] = self.forward_head(self.forward_features(clip, t), t)
        return out


class TSMResNet(FrameFlexibleModel):
    """TSM-ResNet with shared weights and per-frame-count norms / weight alteration (FFN, Fig. 4).

    Args:
        block, layers, widths, stem: architecture (see ``ARCHS``); stem "imagenet" (7x7/2 + max-pool)
            , "small" (3x3/1, no max-pool) or "small_s2" (3x3/2, no max-pool: 4x fewer FLOPs).
        num_classes: classifier outputs.
        frames: trained frame counts, ascending, e.g. (4, 8, 16); (T,) gives the plain TSM ("ST").
        dropout: before the shared classifier.
        private_norm: False = "w/o SN" ablation (one norm shared by all streams, Table 4).
        weight_alteration: False = "w/o WA" ablation.
        norm_layer: override the norm factory (``callable(num_features) -> nn.Module``).
        wa_init: "zeros" or "normal" (N(0, 1e-3)); see :class:`WeightAlteration`.
        fold_div: the shift moves 1/fold_div of the channels each way.
    """

    def __init__(self, *, block, layers: Sequence[int], widths: Sequence[int], num_classes: int,
                 frames: Sequence[int] = (4, 8, 16), stem: str = "imagenet", dropout: float = 0.5,
                 private_norm: bool = True, weight_alteration: bool = True,
                 norm_layer: Optional[Callable[[int], nn.Module]] = None, wa_init: str = "zeros",
                 fold_div: int = 8, in_chans: int = 3, tv_arch: Optional[str] = None):
        super().__init__()
        self.frames = check_frames(frames)
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes={num_classes!r}: expected a positive int")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout={dropout!r}: expected a number in [0, 1)")
        if stem not in ("imagenet", "small", "small_s2"):
            raise ValueError(f"stem={stem!r}: expected 'imagenet', 'small' or 'small_s2'")
        multi = len(self.frames) > 1
        self.private_norm = bool(private_norm and multi)
        self.weight_alteration = bool(weight_alteration and multi)
        if norm_layer is None:
            norm_layer = partial(FlexNorm, nn.BatchNorm2d, self.frames) if self.private_norm else nn.BatchNorm2d
        self.in_chans, self.tv_arch, self.num_classes = in_chans, tv_arch, num_classes
        w0 = widths[0]
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_chans, w0, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            stride = 2 if stem == "small_s2" else 1
            self.conv1 = nn.Conv2d(in_chans, w0, kernel_size=3, stride=stride, padding=1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = norm_layer(w0)
        self.relu = nn.ReLU(inplace=True)
        extra = dict(frames=self.frames, weight_alteration=self.weight_alteration, fold_div=fold_div, wa_init=wa_init)
        inplanes = w0
        for i, (planes, n) in enumerate(zip(widths, layers)):
            stride = 1 if i == 0 else 2
            downsample = None
            if stride != 1 or inplanes != planes * block.expansion:
                downsample = nn.Sequential(_tvr.conv1x1(inplanes, planes * block.expansion, stride),
                                           norm_layer(planes * block.expansion))
            blocks = [block(inplanes, planes, stride, downsample, norm_layer, **extra)]
            inplanes = planes * block.expansion
            blocks += [block(inplanes, planes, 1, None, norm_layer, **extra) for _ in range(1, n)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.num_features = inplanes
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(inplanes, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():  # torchvision's ResNet init ...
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():  # ... then WA back to near-identity (the original code forgot this)
            if isinstance(m, WeightAlteration):
                m.reset_parameters()
        nn.init.normal_(self.fc.weight, 0.0, 1e-3)
        nn.init.zeros_(self.fc.bias)

    def forward_features(self, x: torch.Tensor, stream: Optional[int] = None) -> torch.Tensor:
        """(B, T, 3, H, W) -> per-frame pooled features (B, T, D), through stream ``route(T)`` or ``stream``."""
        s = self._select(x, stream)
        b, t = x.shape[:2]
        z = x.flatten(0, 1)
        if self.conv1.weight.is_contiguous(memory_format=torch.channels_last) and self.conv1.weight.dim() == 4:
            z = z.contiguous(memory_format=torch.channels_last)
        with use_stream(self, s, t):
            z = self.maxpool(self.relu(self.bn1(self.conv1(z))))
            z = self.layer4(self.layer3(self.layer2(self.layer1(z))))
        return self.avgpool(z).flatten(1).reshape(b, t, -1)

    def forward_head(self, feats: torch.Tensor, stream: Optional[int] = None) -> torch.Tensor:
        """(B, T, D) -> (B, C): dropout -> shared Linear -> mean over T. ``stream`` is unused (shared head)."""
        if feats.dim() != 3 or feats.shape[-1] != self.num_features:
            raise ValueError(f"forward_head: expected features (B, T, {self.num_features}), got {tuple(feats.shape)}")
        return self.fc(self.dropout(feats)).mean(dim=1)


class SeparateTSMResNet(FrameFlexibleModel):
    """"w/o WS" ablation (Table 4): one full single-frame-count TSM per stream, sharing nothing.

    ``streams.t{T}`` is a plain :class:`TSMResNet` with ``frames=(T,)`` (own convolutions, norms and
    classifier), so the model has K x the parameters of one TSM; the stream API (routing,
    ``forward_streams``) is the same as the shared model's, so the same MFAL training applies.
    """

    def __init__(self, frames: Sequence[int], build: Callable[[tuple], TSMResNet]):
        super().__init__()
        self.frames = check_frames(frames)
        self.streams = nn.ModuleDict({stream_key(t): build((t,)) for t in self.frames})
        first = self.streams[stream_key(self.frames[0])]
        self.in_chans, self.tv_arch, self.num_classes = first.in_chans, first.tv_arch, first.num_classes
        self.num_features = first.num_features

    def forward_features(self, x: torch.Tensor, stream: Optional[int] = None) -> torch.Tensor:
        s = self._select(x, stream)
        return self.streams[stream_key(s)].forward_features(x)

    def forward_head(self, feats: torch.Tensor, stream: Optional[int] = None) -> torch.Tensor:
        s = self.route(int(feats.shape[1])) if stream is None else stream
        if s not in self.frames:
            raise ValueError(f"stream={s!r}: expected one of the trained frame counts {self.frames}")
        return self.streams[stream_key(s)].forward_head(feats)


def build_tsm_resnet(arch: str, *, num_classes: int, frames=(4, 8, 16), dropout: float = 0.5,
                     private_norm: bool = True, weight_alteration: bool = True, weight_sharing: bool = True,
                     pretrained: str = "", width: float = 1.0, wa_init: str = "zeros",
                     fold_div: int = 8) -> FrameFlexibleModel:
    """Build a registered architecture (see ``ARCHS``); ``pretrained`` calls ``load_pretrained``."""
    if arch not in ARCHS:
        raise ValueError(f"arch={arch!r}: expected one of {sorted(ARCHS)}")
    spec = dict(ARCHS[arch])
    if width != 1.0:
        if not arch.startswith("tiny"):
            raise ValueError(f"width={width!r}: the width multiplier is only for tsm_tiny")
        if not width > 0:
            raise ValueError(f"width={width!r}: expected a number > 0")
        spec["widths"] = tuple(max(1, int(round(w * width))) for w in spec["widths"])
    frames = check_frames(frames)

    def one(fr: tuple) -> TSMResNet:
        return TSMResNet(num_classes=num_classes, frames=fr, dropout=dropout, private_norm=private_norm,
                         weight_alteration=weight_alteration, wa_init=wa_init, fold_div=fold_div, **spec)

    model = one(frames) if weight_sharing or len(frames) == 1 else SeparateTSMResNet(frames, one)
    if pretrained:
        from .pretrained import load_pretrained

        model.pretrained_report = load_pretrained(model, pretrained)
    return model


def _factory(arch: str, doc: str):
    def factory(num_classes: int, frames=(4, 8, 16), dropout: float = 0.5, private_norm: bool = True,
                weight_alteration: bool = True, weight_sharing: bool = True, pretrained: str = "",
                wa_init: str = "zeros", fold_div: int = 8) -> FrameFlexibleModel:
        return build_tsm_resnet(arch, num_classes=num_classes, frames=frames, dropout=dropout,
                                private_norm=private_norm, weight_alteration=weight_alteration,
                                weight_sharing=weight_sharing, pretrained=pretrained, wa_init=wa_init,
                                fold_div=fold_div)

    factory.__name__ = factory.__qualname__ = f"tsm_{arch}"
    factory.__doc__ = doc
    return register_model(factory)


@register_model
def tsm_tiny(num_classes: int, frames=(4, 8, 16), dropout: float = 0.5, private_norm: bool = True,
             weight_alteration: bool = True, weight_sharing: bool = True, pretrained: str = "",
             width: float = 1.0, wa_init: str = "zeros", fold_div: int = 8) -> FrameFlexibleModel:
    """Tiny TSM for CPU work: BasicBlock [2,2,2,2], widths 16-32-64-128 x ``width``, 3x3/1 stem, no max-pool."""
    return build_tsm_resnet("tiny", num_classes=num_classes, frames=frames, dropout=dropout,
                            private_norm=private_norm, weight_alteration=weight_alteration,
                            weight_sharing=weight_sharing, pretrained=pretrained, width=width,
                            wa_init=wa_init, fold_div=fold_div)


tsm_r18 = _factory("r18", "TSM ResNet-18 (BasicBlock [2,2,2,2]); ImageNet: ResNet18_Weights.IMAGENET1K_V1.")
tsm_r34 = _factory("r34", "TSM ResNet-34 (BasicBlock [3,4,6,3]); ImageNet: ResNet34_Weights.IMAGENET1K_V1.")
tsm_r50 = _factory("r50", "TSM ResNet-50 (Bottleneck [3,4,6,3]); ImageNet: ResNet50_Weights.IMAGENET1K_V1.")
tsm_r101 = _factory("r101", "TSM ResNet-101 (Bottleneck [3,4,23,3]); ImageNet: ResNet101_Weights.IMAGENET1K_V1.")


@register_model
def tsm_tiny_s2(num_classes: int, frames=(4, 8, 16), dropout: float = 0.5, private_norm: bool = True,
                weight_alteration: bool = True, weight_sharing: bool = True, pretrained: str = "",
                width: float = 1.0, wa_init: str = "zeros", fold_div: int = 8) -> FrameFlexibleModel:
    """``tsm_tiny`` with a 3x3/2 stem: layer1 runs at half the input resolution, 4x fewer FLOPs.

    The CPU demo model (``params/cpu.yaml``): on 32 px synthetic clips it trains about 4x faster than
    ``tsm_tiny`` (benchmarks/bench_train_step.py measures it)."""
    return build_tsm_resnet("tiny_s2", num_classes=num_classes, frames=frames, dropout=dropout,
                            private_norm=private_norm, weight_alteration=weight_alteration,
                            weight_sharing=weight_sharing, pretrained=pretrained, width=width,
                            wa_init=wa_init, fold_div=fold_div)
