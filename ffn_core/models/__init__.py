"""Models: TSM-ResNet backbones with Frame Flexible Network streams, and their utilities.

``create_model(name, num_classes=..., frames=...)`` builds a registered model (``list_models()``).
Importing this package registers tsm_tiny, tsm_r18, tsm_r34, tsm_r50, tsm_r101.
"""
from ._registry import create_model, list_models, model_kwargs, register_model
from .flexible_norm import FlexNorm, StreamState, WeightAlteration, check_frames, route_stream, use_stream
from .temporal_shift import TemporalShift, temporal_shift
from .tsm_resnet import FrameFlexibleModel, SeparateTSMResNet, TSMResNet, build_tsm_resnet
from .accounting import accounting_table, count_parameters, gmacs_per_clip, separate_models_parameters
from .pretrained import convert_st_to_ffn, load_pretrained
from .recalibrate import recalibrate_bn

__all__ = [
    "create_model", "list_models", "model_kwargs", "register_model",
    "FlexNorm", "StreamState", "WeightAlteration", "check_frames", "route_stream", "use_stream",
    "TemporalShift", "temporal_shift",
    "FrameFlexibleModel", "SeparateTSMResNet", "TSMResNet", "build_tsm_resnet",
    "accounting_table", "count_parameters", "gmacs_per_clip", "separate_models_parameters",
    "convert_st_to_ffn", "load_pretrained",
    "recalibrate_bn",
]
