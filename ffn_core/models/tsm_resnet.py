"""TSM-ResNet-{tiny,18,34,50,101} with Frame Flexible Network streams (paper Sec. 4; Sec. 2.1 of TSM-FFN).

A :class:`~.resnet2d.ResNet2D` whose blocks get the temporal shift as their injected temporal op
(``temporal_layer``), applied to the residual branch input before the weight alteration::

    x --> shift(T of the batch) --> WA_T --> conv1 -> BN1_T -> ReLU -> ... -> BN_last_T --(+)--> ReLU

State-dict keys of the standard variants are torchvision's ``resnet18/34/50/101`` keys
(``conv1.weight``, ``layer2.0.downsample.1.running_mean``, ``fc.weight``...), with a ``.t{T}``
segment for private copies (``layer1.0.bn1.t8.weight``) and extra ``layer*.*.alter.t{T}.weight``
WA keys, so ImageNet weights map in by deleting the ``t{T}`` segments (``pretrained.py``).

With ONE frame count (``frames=(16,)``: the "ST" baseline) norms are plain ``BatchNorm2d`` and there
is no WA, i.e. exactly TSM (its keys are pure torchvision keys); any input T routes to that stream,
which is how the TFD is measured.

``tiny`` / ``tiny_s2`` (ours, for CPU work): BasicBlock [2, 2, 2, 2], widths 16-32-64-128 (times
``width``), a 3x3 stem without max-pool (stride 1, or 2 for ``tiny_s2``: 4x fewer FLOPs), suited to
32-64 px input. They have no ImageNet weights.

Deliberate differences from the original code: the shift uses each batch's own T (issue #3 of the
official repo); WA is near-zero initialised and not overwritten by the Kaiming init (paper Eq. 7-9
state the identity start; the original's effective init was Kaiming); streams are data (any sorted
tuple of frame counts), not copy-pasted ``_4/_8/_16`` attributes.
"""
from __future__ import annotations

from functools import partial

from ._registry import ModelCfg, register_variant
from .frame_flexible import FrameFlexibleModel, build_frame_flexible
from .resnet2d import BasicBlock, Bottleneck, ResNet2D, scaled_widths
from .temporal_shift import TemporalShift

__all__ = ["TSMResNet", "ARCHS", "build_tsm_resnet"]

ARCHS = {
    "tiny": dict(block=BasicBlock, layers=(2, 2, 2, 2), widths=(16, 32, 64, 128), stem="small"),
    "tiny_s2": dict(block=BasicBlock, layers=(2, 2, 2, 2), widths=(16, 32, 64, 128), stem="small_s2"),
    "r18": dict(block=BasicBlock, layers=(2, 2, 2, 2), widths=(64, 128, 256, 512), stem="imagenet"),
    "r34": dict(block=BasicBlock, layers=(3, 4, 6, 3), widths=(64, 128, 256, 512), stem="imagenet"),
    "r50": dict(block=Bottleneck, layers=(3, 4, 6, 3), widths=(64, 128, 256, 512), stem="imagenet"),
    "r101": dict(block=Bottleneck, layers=(3, 4, 23, 3), widths=(64, 128, 256, 512), stem="imagenet"),
}


class TSMResNet(ResNet2D):
    """:class:`ResNet2D` with the temporal shift (1/``fold_div`` of the channels each way) in every block."""

    def __init__(self, *, fold_div: int = 8, **kwargs):
        if not isinstance(fold_div, int) or fold_div < 1:
            raise ValueError(f"fold_div={fold_div!r}: expected a positive int")
        self.fold_div = fold_div
        super().__init__(temporal_layer=lambda channels: TemporalShift(fold_div), **kwargs)


def build_tsm_resnet(arch: str, *, num_classes: int, frames=(4, 8, 16), dropout: float = 0.5,
                     private_norm: bool = True, weight_alteration: bool = True, weight_sharing: bool = True,
                     pretrained: str = "", wa_init: str = "zeros", fold_div: int = 8, width: float = 1.0,
                     cfg: ModelCfg | None = None, name: str = "") -> FrameFlexibleModel:
    """Build TSM architecture ``arch`` (see :data:`ARCHS`); ``width`` scales the tiny variants."""
    if arch not in ARCHS:
        raise ValueError(f"arch={arch!r}: expected one of {sorted(ARCHS)}")
    spec = dict(ARCHS[arch])
    if width != 1.0:
        if not arch.startswith("tiny"):
            raise ValueError(f"width={width!r}: the width multiplier is only for the tiny variants")
        spec["widths"] = scaled_widths(spec["widths"], width)
    return build_frame_flexible(TSMResNet, frames=frames, weight_sharing=weight_sharing, pretrained=pretrained,
                                cfg=cfg, name=name, num_classes=num_classes, dropout=dropout,
                                private_norm=private_norm, weight_alteration=weight_alteration, wa_init=wa_init,
                                fold_div=fold_div, **spec)


def _register(arch: str, doc: str, **cfg_kw):
    tiny = arch.startswith("tiny")
    name = f"tsm_{arch}"
    cfg = ModelCfg(layout="frames", classifier="fc", stats_stage="layer4", family="TSM",
                   model_kwargs={"fold_div": 8, **({"width": 1.0} if tiny else {})}, **cfg_kw)
    return register_variant(name, partial(build_tsm_resnet, arch), cfg, doc)


_TINY = dict(input_size=32, test_size=16, description="ours, for CPU work (32-64 px)")
_BIG = dict(test_frames=((4, 8),))
tsm_tiny = _register("tiny", "Tiny TSM for CPU work: BasicBlock [2,2,2,2], widths 16-32-64-128 x ``width``, "
                     "3x3/1 stem.", **_TINY)
tsm_tiny_s2 = _register("tiny_s2", "``tsm_tiny`` with a 3x3/2 stem: layer1 runs at half the input resolution, 4x "
                        "fewer FLOPs (the CPU demo model of ``params/cpu.yaml``).", **_TINY)
tsm_r18 = _register("r18", "TSM ResNet-18 (BasicBlock [2,2,2,2]); ImageNet: ResNet18_Weights.IMAGENET1K_V1.",
                    hub_weights="resnet18", description="TSM ResNet-18")
tsm_r34 = _register("r34", "TSM ResNet-34 (BasicBlock [3,4,6,3]); ImageNet: ResNet34_Weights.IMAGENET1K_V1.",
                    hub_weights="resnet34", description="TSM ResNet-34")
tsm_r50 = _register("r50", "TSM ResNet-50 (Bottleneck [3,4,6,3]); ImageNet: ResNet50_Weights.IMAGENET1K_V1.",
                    hub_weights="resnet50", description="TSM ResNet-50 (paper Tables 1-9)", **_BIG)
tsm_r101 = _register("r101", "TSM ResNet-101 (Bottleneck [3,4,23,3]); ImageNet: ResNet101_Weights.IMAGENET1K_V1.",
                     hub_weights="resnet101", description="TSM ResNet-101 (paper Table 5)", **_BIG)
