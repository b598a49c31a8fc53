"""Models: frame-flexible video backbones (FFN streams on TSM, TEA, SlowFast, Uniformer) and utilities.

``create_model(name, num_classes=..., frames=...)`` builds a registered model (``list_models()``);
``get_model_cfg(name)`` is its declared cfg (layout, sizes, normalisation, classifier, pretrained
key mapping). The backbone-agnostic pieces are :class:`FrameFlexibleModel` (stream API, template
``forward_features``, shared head), :class:`SeparateStreams` ("w/o WS") and the per-frame-count
building blocks of ``flexible_norm`` (FlexNorm, WeightAlteration, use_stream, route_stream).
"""
from ._registry import COMMON_KWARGS, ModelCfg, create_model, get_model_cfg, list_models, model_kwargs, register_model
from .flexible_norm import FlexNorm, StreamState, WeightAlteration, check_frames, route_stream, use_stream
from .frame_flexible import FrameFlexibleModel, SeparateStreams, build_frame_flexible, to_channels_last
from .temporal_shift import TemporalShift, temporal_shift
from .resnet2d import ResNet2D
from .tsm_resnet import TSMResNet, build_tsm_resnet
from . import tea, slowfast, uniformer  # noqa: F401,E402  (register their variants)
from .accounting import accounting_table, count_parameters, gmacs_per_clip, separate_models_parameters
from .pretrained import convert_st_to_ffn, load_pretrained
from .official import OfficialCheckpointError, load_official_checkpoint
from .recalibrate import recalibrate_bn

__all__ = [
    "COMMON_KWARGS", "ModelCfg", "create_model", "get_model_cfg", "list_models", "model_kwargs", "register_model",
    "FlexNorm", "StreamState", "WeightAlteration", "check_frames", "route_stream", "use_stream",
    "FrameFlexibleModel", "SeparateStreams", "build_frame_flexible", "to_channels_last",
    "TemporalShift", "temporal_shift",
    "ResNet2D", "TSMResNet", "build_tsm_resnet",
    "accounting_table", "count_parameters", "gmacs_per_clip", "separate_models_parameters",
    "convert_st_to_ffn", "load_pretrained", "OfficialCheckpointError", "load_official_checkpoint",
    "recalibrate_bn",
]
