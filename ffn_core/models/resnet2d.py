"""2D ResNet plumbing shared by the frame-wise backbones (TSM, TEA), norm and temporal op injected.

Pytorchvideo-style builders: :class:`ResNet2D` takes the ``block`` class, a ``norm_layer`` factory
(``partial(FlexNorm, nn.BatchNorm2d, frames)`` for private per-frame-count norms) and a
``temporal_layer`` factory (``channels -> module``: TSM's shift, TEA's motion excitation), and
passes both to every block, so TSM and TEA share the stem, the stages, the shortcut, the weight
alteration, the init and the per-frame head and differ only in their block body. Every block is::

    x --> [temporal op, if at the input] --> WA_T (x + phi_T(x)) --> residual branch --(+)--> ReLU
    |                                                                                 |
    +------------- identity, or downsample conv (shared) -> norm_T -------------------+

Convolutions and the classifier are shared by all streams; ``norm_T`` (:class:`FlexNorm`) and
``WA_T`` (:class:`WeightAlteration`) are private to the stream of trained frame count T. Frames run
as images, (B*T, C, H, W); temporal modules take T from the active stream.

:class:`BasicBlock` / :class:`Bottleneck` are torchvision's (their attribute names, so the
state-dict keys of the standard variants are torchvision's ``resnet18/34/50/101`` keys with a
``.t{T}`` segment in private copies) with the temporal op applied at the branch input.

Head: per-frame pooled features (B, T, D) -> Dropout -> shared Linear (init N(0, 1e-3), bias 0) ->
average over T (TSN "avg" consensus, before softmax; :class:`FrameFlexibleModel`).
"""
from __future__ import annotations

from functools import partial
from typing import Callable, Mapping, Optional, Sequence

import torch
from torch import nn

from ffn_core._tv import torchvision

from .flexible_norm import FlexNorm, WeightAlteration, check_frames
from .frame_flexible import FrameFlexibleModel, ffn_switches

_tvr = torchvision.models.resnet

__all__ = ["FlexBlock", "BasicBlock", "Bottleneck", "ResNet2D", "STEMS", "scaled_widths"]

STEMS = ("imagenet", "small", "small_s2")


def scaled_widths(widths: Sequence[int], width: float) -> tuple:
    """Stage widths times a multiplier (>= 1 channel each)."""
    if not width > 0:
        raise ValueError(f"width={width!r}: expected a number > 0")
    return tuple(max(1, int(round(w * width))) for w in widths)


class FlexBlock(nn.Module):
    """Plumbing of a residual block: temporal op, weight alteration, shortcut, final ReLU.

    A subclass builds its body and calls :meth:`_init_flex`, then implements ``_branch(x)``, whose
    first convolution goes through :meth:`_conv_in` (the weight alteration folded into its kernel,
    :meth:`WeightAlteration.fold_into`; a body that cannot do that sets ``fold_alteration = False``
    and gets ``x + phi_T(x)`` applied to its input instead). With
    ``temporal_at_input`` (default) the injected temporal op runs on the branch input (TSM: the
    shift, then WA); otherwise the body places ``self.temporal`` itself (TEA: after conv1). The
    identity shortcut always gets the unaltered input (paper Fig. 5).
    """

    temporal_at_input = True
    fold_alteration = True  # the branch starts with ``self.conv1``: WA is folded into its kernel

    def _init_flex(self, inplanes: int, frames: Sequence[int], weight_alteration: bool, wa_init: str,
                   temporal_layer: Optional[Callable[[int], nn.Module]], temporal_channels: Optional[int] = None):
        channels = inplanes if temporal_channels is None else temporal_channels
        self.temporal = temporal_layer(channels) if temporal_layer is not None else None
        self.alter = WeightAlteration(inplanes, frames, init=wa_init) if weight_alteration else None

    def _branch(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def alteration_target(self) -> Optional[str]:
        """The conv the weight alteration is folded into (export: ``models.export.stream_into``)."""
        return "conv1" if self.fold_alteration else None

    def _conv_in(self, conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The branch's first convolution, with the weight alteration folded into its kernel."""
        if self.alter is not None and self.fold_alteration:
            return self.alter.fold_into(conv, x)
        return conv(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if self.temporal_at_input and self.temporal is not None:
            out = self.temporal(out)
        if self.alter is not None and not self.fold_alteration:
            out = self.alter(out)
        out = self._branch(out)
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class BasicBlock(FlexBlock, _tvr.BasicBlock):
    """torchvision ``BasicBlock`` (3x3, 3x3) with the temporal op + WA on the residual branch input."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None,
                 norm_layer: Optional[Callable[[int], nn.Module]] = None, *, frames: Sequence[int] = (1,),
                 weight_alteration: bool = False, wa_init: str = "zeros",
                 temporal_layer: Optional[Callable[[int], nn.Module]] = None):
        _tvr.BasicBlock.__init__(self, inplanes, planes, stride, downsample, norm_layer=norm_layer)
        self._init_flex(inplanes, frames, weight_alteration, wa_init, temporal_layer)

    def _branch(self, x):
        return self.bn2(self.conv2(self.relu(self.bn1(self._conv_in(self.conv1, x)))))


class Bottleneck(FlexBlock, _tvr.Bottleneck):
    """torchvision ``Bottleneck`` (1x1, 3x3 with the stride, 1x1) with the temporal op + WA on the branch input."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None,
                 norm_layer: Optional[Callable[[int], nn.Module]] = None, *, frames: Sequence[int] = (1,),
                 weight_alteration: bool = False, wa_init: str = "zeros",
                 temporal_layer: Optional[Callable[[int], nn.Module]] = None):
        _tvr.Bottleneck.__init__(self, inplanes, planes, stride, downsample, norm_layer=norm_layer)
        self._init_flex(inplanes, frames, weight_alteration, wa_init, temporal_layer)

    def _branch(self, x):
        out = self.relu(self.bn1(self._conv_in(self.conv1, x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))


class ResNet2D(FrameFlexibleModel):
    """A frame-wise ResNet with shared weights and per-frame-count norms / weight alteration.

    Args:
        block: a :class:`FlexBlock` subclass taking ``(inplanes, planes, stride, downsample,
            norm_layer, *, frames, weight_alteration, wa_init, temporal_layer, **block_kwargs)`` with
            an ``expansion`` attribute.
        layers, widths: blocks and base width per stage.
        num_classes: classifier outputs.
        frames: trained frame counts, ascending, e.g. (4, 8, 16); (T,) gives the plain model ("ST").
        stem: ``"imagenet"`` (7x7/2 + max-pool), ``"small"`` (3x3/1, no max-pool) or ``"small_s2"``
            (3x3/2, no max-pool: 4x fewer FLOPs than "small").
        dropout: before the shared classifier.
        private_norm: False = "w/o SN" ablation (one norm shared by all streams, Table 4).
        weight_alteration: False = "w/o WA" ablation.
        wa_init: "zeros" or "normal" (N(0, 1e-3)); see :class:`WeightAlteration`.
        temporal_layer: ``channels -> module`` factory of the block's temporal op (None: a plain TSN).
        block_kwargs: extra keyword arguments of ``block`` (e.g. Res2Net's ``base_width``/``scale``).
        norm_layer: override the norm factory (``callable(num_features) -> nn.Module``).
    """

    def __init__(self, *, block, layers: Sequence[int], widths: Sequence[int], num_classes: int,
                 frames: Sequence[int] = (4, 8, 16), stem: str = "imagenet", dropout: float = 0.5,
                 private_norm: bool = True, weight_alteration: bool = True, wa_init: str = "zeros",
                 temporal_layer: Optional[Callable[[int], nn.Module]] = None,
                 block_kwargs: Optional[Mapping] = None, norm_layer: Optional[Callable[[int], nn.Module]] = None,
                 in_chans: int = 3):
        super().__init__()
        self.frames = check_frames(frames)
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes={num_classes!r}: expected a positive int")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout={dropout!r}: expected a number in [0, 1)")
        if stem not in STEMS:
            raise ValueError(f"stem={stem!r}: expected one of {', '.join(STEMS)}")
        self.private_norm, self.weight_alteration = ffn_switches(self.frames, private_norm, weight_alteration)
        if norm_layer is None:
            norm_layer = partial(FlexNorm, nn.BatchNorm2d, self.frames) if self.private_norm else nn.BatchNorm2d
        self.in_chans, self.num_classes = in_chans, num_classes
        w0 = widths[0]
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_chans, w0, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            self.conv1 = nn.Conv2d(in_chans, w0, kernel_size=3, stride=2 if stem == "small_s2" else 1,
                                   padding=1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = norm_layer(w0)
        self.relu = nn.ReLU(inplace=True)
        extra = dict(frames=self.frames, weight_alteration=self.weight_alteration, wa_init=wa_init,
                     temporal_layer=temporal_layer, **dict(block_kwargs or {}))
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
        for m in self.modules():  # ... then WA (and TEA's temporal kernels) back to their own init
            if hasattr(m, "reset_flex_parameters"):  # (the original TSM-FFN forgot this: Kaiming WA)
                m.reset_flex_parameters()
        nn.init.normal_(self.fc.weight, 0.0, 1e-3)
        nn.init.zeros_(self.fc.bias)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) -> per-frame pooled features (B, T, D) (the stream is already active)."""
        b, t = x.shape[:2]
        z = x.flatten(0, 1)
        if self.conv1.weight.is_contiguous(memory_format=torch.channels_last):
            z = z.contiguous(memory_format=torch.channels_last)
        z = self.maxpool(self.relu(self.bn1(self.conv1(z))))
        z = self.layer4(self.layer3(self.layer2(self.layer1(z))))
        return self.avgpool(z).flatten(1).reshape(b, t, -1)
