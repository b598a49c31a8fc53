"""Model registry (timm-style): ``@register_model`` factories, ``create_model(name, ...)``, ``list_models``.

A factory is a function ``name(num_classes, frames=..., **documented kwargs) -> nn.Module``; its
function name is the registry name. ``create_model`` checks the name and the keyword arguments
against the factory's signature before calling it, so a typo gives a clear error listing the valid
choices instead of a deep ``TypeError``.
"""
from __future__ import annotations

import fnmatch
import inspect
from typing import Callable, Dict, List

from torch import nn

__all__ = ["register_model", "create_model", "list_models", "model_kwargs"]

_MODELS: Dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: register ``fn`` under ``fn.__name__`` (a duplicate name is an error)."""
    name = fn.__name__
    if name in _MODELS and _MODELS[name] is not fn:
        raise ValueError(f"register_model: a model named {name!r} is already registered")
    _MODELS[name] = fn
    return fn


def list_models(filter: str = "") -> List[str]:  # noqa: A002  (timm's argument name)
    """Sorted registered names; ``filter`` is a glob (``"tsm_r*"``) or, without wildcards, a substring."""
    names = sorted(_MODELS)
    if not filter:
        return names
    if any(ch in filter for ch in "*?["):
        return [n for n in names if fnmatch.fnmatch(n, filter)]
    return [n for n in names if filter in n]


def model_kwargs(name: str) -> List[str]:
    """The keyword arguments factory ``name`` accepts."""
    return list(inspect.signature(_get(name)).parameters)


def _get(name: str) -> Callable[..., nn.Module]:
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(list_models()) or '(none)'}")
    return _MODELS[name]


def create_model(name: str, **kwargs) -> nn.Module:
    """Build registered model ``name``, e.g. ``create_model("tsm_r50", num_classes=174, frames=(4, 8, 16))``.

    Common kwargs of the TSM factories: ``num_classes`` (required), ``frames``, ``dropout=0.5``,
    ``private_norm=True``, ``weight_alteration=True``, ``weight_sharing=True``, ``pretrained=""``
    ("imagenet" or a ``.pth`` path: calls ``load_pretrained``), ``wa_init="zeros"``; ``tsm_tiny``
    also takes ``width=1.0``.
    """
    fn = _get(name)
    sig = inspect.signature(fn)
    unknown = [k for k in kwargs if k not in sig.parameters]
    if unknown:
        raise TypeError(
            f"create_model({name!r}): unknown argument(s) {unknown}; accepted: {list(sig.parameters)}"
        )
    missing = [
        k for k, p in sig.parameters.items()
        if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and k not in kwargs
    ]
    if missing:
        raise TypeError(f"create_model({name!r}): missing required argument(s) {missing}")
    return fn(**kwargs)
