"""Model registry (timm-style): declared variant cfgs, ``@register_model`` factories, ``create_model``.

Every registered variant has

* a **factory** with ONE signature shared by all backbones::

      name(num_classes, frames=(4, 8, 16), *, dropout=0.5, private_norm=True, weight_alteration=True,
           weight_sharing=True, pretrained="", wa_init="zeros", **model_kwargs) -> FrameFlexibleModel

  The common arguments are :data:`COMMON_KWARGS`; backbone-specific settings (``fold_div`` of TSM,
  ``drop_path`` of Uniformer, ``alpha`` of SlowFast, ...) are the ``model_kwargs`` the variant's cfg
  declares (the ``model_kwargs`` config key passes them through ``build_model``).
* a small declared :class:`ModelCfg` (timm's ``_cfg``): input layout, default and test input sizes,
  normalisation, the classifier's attribute name, the stage whose norms Fig. 3 plots, the frame
  sets the tests use, where ``pretrained="imagenet"`` comes from and the function that maps a
  pretrained file's keys onto ours. Nothing outside the model's own file guesses these facts.

``create_model`` checks the name and every keyword argument before building, so a typo gives one
clear error listing the valid choices instead of a deep ``TypeError``; the built model carries its
cfg as ``model.model_cfg`` and its name as ``model.model_name``.
"""
from __future__ import annotations

import fnmatch
import inspect
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Tuple

from torch import nn

__all__ = ["ModelCfg", "COMMON_KWARGS", "register_model", "register_variant", "create_model", "list_models",
           "model_kwargs", "get_model_cfg"]

#: Keyword arguments every factory accepts (with these defaults), besides ``num_classes``.
COMMON_KWARGS: Dict[str, object] = {
    "frames": (4, 8, 16), "dropout": 0.5, "private_norm": True, "weight_alteration": True,
    "weight_sharing": True, "pretrained": "", "wa_init": "zeros",
}

LAYOUTS = ("frames", "clip")


@dataclass(frozen=True)
class ModelCfg:
    """Declared facts of one registered variant (what timm keeps in ``default_cfgs``).

    Args:
        layout: ``"frames"`` - a 2D backbone runs every frame as an image, (B*T, C, H, W), with
            temporal modules that take T from the active stream (TSM, TEA); ``"clip"`` - a 3D backbone
            runs (B, C, T, H, W) clips and its temporal modules read T from the tensor (SlowFast,
            Uniformer). The model API is (B, T, 3, H, W) clips either way.
        input_size: the paper's crop size (px) for real data.
        test_size: the input size (px) of the fast model tests (tiny inputs).
        mean, std: the normalisation the pretrained weights expect (used with ``pretrained``).
        classifier: attribute path of the shared classifier ``nn.Linear`` (``get_classifier()``).
        stats_stage: module-path prefix of the norms that Fig. 3 plots (the last stage).
        test_frames: frame-count sets the registry tests run (``frames`` = what the model is fed:
            for SlowFast the fast-pathway counts).
        hub_weights: torchvision weight enum behind ``pretrained="imagenet"`` (e.g. ``"resnet50"``);
            empty: only local files.
        pretrained_keys: ``fn(state_dict) -> state_dict`` mapping a pretrained file's own key layout
            (torchvision, Res2Net, caffe2 SlowFast, Uniformer) onto this model's single-stream keys;
            ``None``: the file already uses them.
        model_kwargs: the backbone-specific keyword arguments and their defaults.
        family: the paper's architecture this variant belongs to (``"TSM"``, ``"TEA"``, ``"SlowFast"``,
            ``"Uniformer"``): which row group of Table 8 it is compared with.
        paper_frames: the frame counts the paper trains the family on (SlowFast: fast-pathway 16/32/64);
            what ``python -m ffn_core models`` accounts at.
        description: one line for ``list_models`` tables and docs.
    """

    layout: str
    input_size: int = 224
    test_size: int = 32
    mean: Tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: Tuple[float, float, float] = (0.229, 0.224, 0.225)
    classifier: str = "fc"
    stats_stage: str = ""
    test_frames: Tuple[Tuple[int, ...], ...] = ((4, 16), (4, 8, 16), (4, 8, 12, 16))
    hub_weights: str = ""
    pretrained_keys: Optional[Callable[[Mapping], Dict]] = None
    model_kwargs: Mapping[str, object] = field(default_factory=dict)
    family: str = ""
    paper_frames: Tuple[int, ...] = (4, 8, 16)
    description: str = ""

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"ModelCfg(layout={self.layout!r}): expected one of {LAYOUTS}")
        clash = set(self.model_kwargs) & (set(COMMON_KWARGS) | {"num_classes"})
        if clash:
            raise ValueError(f"ModelCfg: model_kwargs {sorted(clash)} shadow common factory arguments")


_MODELS: Dict[str, Callable[..., nn.Module]] = {}
_CFGS: Dict[str, ModelCfg] = {}


def register_model(fn: Optional[Callable[..., nn.Module]] = None, *, cfg: Optional[ModelCfg] = None):
    """Register ``fn`` under ``fn.__name__`` with its :class:`ModelCfg` (decorator, ``@register_model(cfg=...)``).

    A duplicate name is an error. The factory must take ``num_classes``, the :data:`COMMON_KWARGS`
    and its cfg's ``model_kwargs`` (as keywords or ``**kwargs``).
    """
    def wrap(f: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = f.__name__
        if name in _MODELS and _MODELS[name] is not f:
            raise ValueError(f"register_model: a model named {name!r} is already registered")
        if cfg is None:
            raise ValueError(f"register_model({name!r}): declare its ModelCfg (register_model(cfg=...))")
        _MODELS[name] = f
        _CFGS[name] = cfg
        return f

    return wrap(fn) if fn is not None else wrap


def register_variant(name: str, build: Callable[..., nn.Module], cfg: ModelCfg, doc: str = "") -> Callable[..., nn.Module]:
    """Register variant ``name`` with the common factory signature (module docstring); the factory
    calls ``build(num_classes=..., frames=..., <common kwargs>, cfg=cfg, name=name, **model_kwargs)``
    - e.g. ``partial(build_tsm_resnet, "r50")``. Returns the factory."""
    def factory(num_classes: int, frames=(4, 8, 16), *, dropout: float = 0.5, private_norm: bool = True,
                weight_alteration: bool = True, weight_sharing: bool = True, pretrained: str = "",
                wa_init: str = "zeros", **model_kwargs) -> nn.Module:
        return build(num_classes=num_classes, frames=frames, dropout=dropout, private_norm=private_norm,
                     weight_alteration=weight_alteration, weight_sharing=weight_sharing, pretrained=pretrained,
                     wa_init=wa_init, cfg=cfg, name=name, **model_kwargs)

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = doc
    return register_model(factory, cfg=cfg)


def list_models(filter: str = "") -> List[str]:  # noqa: A002  (timm's argument name)
    """Sorted registered names; ``filter`` is a glob (``"tsm_r*"``) or, without wildcards, a substring."""
    names = sorted(_MODELS)
    if not filter:
        return names
    if any(ch in filter for ch in "*?["):
        return [n for n in names if fnmatch.fnmatch(n, filter)]
    return [n for n in names if filter in n]


def _get(name: str) -> Callable[..., nn.Module]:
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(list_models()) or '(none)'}")
    return _MODELS[name]


def get_model_cfg(name: str) -> ModelCfg:
    """The declared :class:`ModelCfg` of registered model ``name``."""
    _get(name)
    return _CFGS[name]


def model_kwargs(name: str) -> List[str]:
    """Every keyword argument ``create_model(name, ...)`` accepts (common ones, then the model's own)."""
    return ["num_classes", *COMMON_KWARGS, *get_model_cfg(name).model_kwargs]


def create_model(name: str, **kwargs) -> nn.Module:
    """Build registered model ``name``, e.g. ``create_model("tsm_r50", num_classes=174, frames=(4, 8, 16))``.

    Common kwargs (every model): ``num_classes`` (required), ``frames``, ``dropout=0.5``,
    ``private_norm=True`` (False: "w/o SN"), ``weight_alteration=True`` (False: "w/o WA"),
    ``weight_sharing=True`` (False: "w/o WS"), ``pretrained=""`` (a local file, or "imagenet" where the
    cfg names torchvision weights), ``wa_init="zeros"``. Model-specific ones: ``model_kwargs(name)``.
    """
    fn = _get(name)
    accepted = model_kwargs(name)
    unknown = [k for k in kwargs if k not in accepted]
    if unknown:
        raise TypeError(f"create_model({name!r}): unknown argument(s) {unknown}; accepted: {accepted}")
    if "num_classes" not in kwargs:
        raise TypeError(f"create_model({name!r}): missing required argument(s) ['num_classes']")
    sig = inspect.signature(fn)
    takes_var = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    if not takes_var:  # a factory that spells its arguments out must spell all of them
        absent = [k for k in accepted if k not in sig.parameters]
        if absent:
            raise TypeError(f"model {name!r}: its factory does not take {absent} (see ffn_core.models._registry)")
    model = fn(**kwargs)
    model.model_cfg = _CFGS[name]
    model.model_name = name
    return model
