"""The one place where torchvision is imported.

The PyPI wheel of ``torchvision==0.28.0`` is a CUDA build: its C++ extension ``_C.so`` links
``libtorch_cuda.so``, which the CPU build of ``torch==2.13.0`` lacks. The extension then fails to
load silently and ``import torchvision`` raises ``RuntimeError: operator torchvision::nms does not
exist`` (from ``torchvision/_meta_registrations.py``).

Workaround (measured on the project machine, see the environment notes in the README):

1. try ``torch.ops.load_library(<torchvision>/_C.so)``; where it loads (CUDA torch with its
   matching torchvision, or a CPU torchvision build) nothing else happens;
2. otherwise define the schemas of ``torchvision::nms`` and ``torchvision::qnms`` with
   ``torch.library.Library("torchvision", "DEF")`` and register a plain-PyTorch CPU kernel for
   ``nms``, then import torchvision.

After that, ``torchvision.models`` and ``torchvision.transforms.v2`` work on CPU. What does not
work in the fallback mode: ``torchvision.io`` image decoding and ``deform_conv2d`` (we read JPEGs
with PIL and never use deformable convolutions).

Every module of ``ffn_core`` imports torchvision as ``from ffn_core._tv import torchvision``.
"""
from __future__ import annotations

import importlib.util
import os

import torch

__all__ = ["torchvision", "EXTENSION_LOADED", "FALLBACK_ACTIVE"]

EXTENSION_LOADED = False
FALLBACK_ACTIVE = False
_LIBRARY = None  # keep the Library object alive: dropping it unregisters the ops


def _nms_cpu(dets: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression in plain PyTorch (boxes as x1, y1, x2, y2)."""
    if dets.numel() == 0:
        return torch.empty((0,), dtype=torch.long, device=dets.device)
    x1, y1, x2, y2 = dets.unbind(1)
    areas = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    order = scores.argsort(descending=True)
    keep = []
    suppressed = torch.zeros(dets.shape[0], dtype=torch.bool, device=dets.device)
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        xx1 = torch.maximum(x1[i], x1)
        yy1 = torch.maximum(y1[i], y1)
        xx2 = torch.minimum(x2[i], x2)
        yy2 = torch.minimum(y2[i], y2)
        inter = (xx2 - xx1).clamp(min=0) * (yy2 - yy1).clamp(min=0)
        iou = inter / (areas[i] + areas - inter).clamp(min=1e-12)
        suppressed |= iou > iou_threshold
    return torch.tensor(keep, dtype=torch.long, device=dets.device)


def _prepare() -> None:
    global EXTENSION_LOADED, FALLBACK_ACTIVE, _LIBRARY
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.submodule_search_locations is None:
        raise ImportError(
            "torchvision is not installed: run `make test` (or `pip install -r requirements.txt`), "
            "which installs the pinned torchvision==0.28.0"
        )
    pkg_dir = list(spec.submodule_search_locations)[0]
    so_files = [f for f in os.listdir(pkg_dir) if f.startswith("_C") and f.endswith((".so", ".pyd"))]
    for name in so_files:
        try:
            torch.ops.load_library(os.path.join(pkg_dir, name))
            EXTENSION_LOADED = True
            return
        except (OSError, RuntimeError):
            pass
    if hasattr(torch.ops, "torchvision") and hasattr(torch.ops.torchvision, "nms"):
        try:  # defined already (an earlier import in this process)
            torch.ops.torchvision.nms.default  # noqa: B018
            return
        except (AttributeError, RuntimeError):
            pass
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define(
        "qnms(Tensor dets, Tensor scores, float iou_threshold, float scale, int zero_point) -> Tensor"
    )
    lib.impl("nms", _nms_cpu, "CPU")
    _LIBRARY = lib
    FALLBACK_ACTIVE = True


_prepare()
import torchvision  # noqa: E402  (must come after _prepare)
