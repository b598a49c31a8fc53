"""BN recalibration baseline: re-estimate BatchNorm statistics of a trained model at another T.

The paper attributes Temporal Frequency Deviation mainly to shifted normalization statistics
(Sec. 3, Eq. 1). A cheap baseline is therefore to keep every weight of a model trained at one frame
count and only re-estimate its BN running statistics on clips of the evaluation frame count.

:func:`recalibrate_bn` resets the running mean/var of the BN layers the chosen stream uses and
re-estimates them as a cumulative average over the given batches (``momentum=None``), in training mode
under ``torch.no_grad()`` (nothing else changes: no weights, no other stream's statistics). The
previous train/eval mode of every module and each BN's momentum are restored afterwards.
"""
from __future__ import annotations

from typing import Iterable, Optional

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["recalibrate_bn"]


def recalibrate_bn(model: nn.Module, batches: Iterable[torch.Tensor], stream: Optional[int] = None) -> nn.Module:
    """Re-estimate BN running statistics from ``batches`` of clips (B, T, 3, H, W); returns ``model``.

    Args:
        model: a model of this package (typically a single-T "ST" model); called as ``model(x, stream)``.
        batches: clips at the new frame count (e.g. a list, or a generator over a DataLoader).
        stream: the stream whose statistics are re-estimated (default: routed from each batch's T).
            BN layers not used by that stream keep their statistics.
    """
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    if not bns:
        raise ValueError("recalibrate_bn: the model has no BatchNorm layer with running statistics")
    modes = {m: m.training for m in model.modules()}
    saved = {m: (m.momentum, m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())
             for m in bns}
    n = 0
    try:
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average over all batches
        model.train()
        with torch.no_grad():
            for x in batches:
                model(x, stream=stream)
                n += 1
        if n == 0:
            raise ValueError("recalibrate_bn: `batches` yielded no batch")
    except BaseException:
        for m, (_, *stats) in saved.items():  # leave the model as it was
            _restore(m, *stats)
        raise
    finally:
        for m, (momentum, *_rest) in saved.items():
            m.momentum = momentum
        for m, training in modes.items():
            m.train(training)
    for m, (_, *stats) in saved.items():
        if int(m.num_batches_tracked) == 0:  # not used by this stream: restore
            _restore(m, *stats)
    return model


def _restore(m: _BatchNorm, mean: torch.Tensor, var: torch.Tensor, count: torch.Tensor) -> None:
    m.running_mean.copy_(mean)
    m.running_var.copy_(var)
    m.num_batches_tracked.copy_(count)
