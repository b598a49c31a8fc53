"""Multi-Frequency Alignment loss (MFAL, paper Sec. 4.2, Eq. 3-5).

    L = CE(z_H, y) + lambda * sum_{s < H} KL( softmax(z_H).detach() || softmax(z_s) )

* CE only on the highest frame count's logits z_H (Eq. 3); integer labels (B,) or soft labels (B, C)
  (mixup/cutmix) -> soft-target cross-entropy ``-sum_k y_k log p_k`` averaged over the batch.
* Each KL term is ``F.kl_div(log_softmax(z_s), softmax(z_H.detach()), reduction="batchmean")``: summed
  over classes, averaged over the batch, temperature 1, no T^2 factor, and the teacher is detached so
  KL gradients reach only the lower streams (Eq. 4; as in all three official code bases).
* lambda multiplies every KL term (Eq. 5; lambda = 1 in the paper, never tuned).
* ``mode="ce_all"`` is the "w/o TD" ablation (Table 4): CE on every stream, summed, no KL.
* ``mode="ce_kl"`` (ours, not in the paper): CE on every stream *and* lambda * KL to each lower
  stream, i.e. ``sum_s CE(z_s, y) + lambda * sum_{s<H} KL(p_H.detach() || p_s)``: the labels reach
  the low streams directly and the teacher term is the paper's. On the synthetic ``cpu`` tier it
  measured below ``ce_all`` at every count (docs/synthetic_benchmark.md).
* With one stream (ST) the loss is plain CE.

Softmaxes are computed in float32 whatever the logits' dtype (AMP-safe).
"""
from __future__ import annotations

from typing import Dict, Mapping, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ffn_core.config import LOSSES as LOSS_MODES

__all__ = ["MFALoss", "soft_cross_entropy", "LOSS_MODES"]


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """CE for integer targets (B,) or probability targets (B, C); mean over the batch."""
    logits = logits.float()
    if target.dim() == 1:
        if target.dtype.is_floating_point:
            raise ValueError("MFALoss: 1-D targets must be integer class indices, got dtype "
                             f"{target.dtype}; soft labels must be (B, C)")
        return F.cross_entropy(logits, target, label_smoothing=label_smoothing)
    if target.dim() != 2 or target.shape != logits.shape:
        raise ValueError(f"MFALoss: soft target shape {tuple(target.shape)} does not match logits "
                         f"{tuple(logits.shape)}; expected (B,) class indices or (B, C) probabilities")
    target = target.float()
    if label_smoothing:
        target = target * (1 - label_smoothing) + label_smoothing / target.shape[1]
    return -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


class MFALoss(nn.Module):
    """``loss(logits, target) -> (total, terms)`` for ``logits = {T: (B, C) tensor}``.

    Args:
        lambda_kl: weight of every KL term (Eq. 5).
        mode: ``"mfal"`` (CE on the highest T + KL to each lower stream), ``"ce_all"`` ("w/o TD")
            or ``"ce_kl"`` (CE on every stream + KL to each lower stream; ours).
        label_smoothing: applied to the CE term(s) only (0 in the paper's TSM recipe).
    Returns:
        ``total`` (a scalar with grad) and ``terms``, detached scalars: ``"ce"`` (highest stream),
        ``"kl_<T>"`` per lower stream (mfal, ce_kl), ``"ce_<T>"`` per stream (ce_all, ce_kl), ``"total"``.
    """

    def __init__(self, lambda_kl: float = 1.0, mode: str = "mfal", label_smoothing: float = 0.0):
        super().__init__()
        if mode not in LOSS_MODES:
            raise ValueError(f"MFALoss(mode={mode!r}): expected one of {LOSS_MODES} ('ce_all' is the "
                             "'w/o TD' ablation; 'ce_kl' adds CE on the lower streams to MFAL)")
        if not float(lambda_kl) >= 0:
            raise ValueError(f"MFALoss(lambda_kl={lambda_kl!r}): expected a number >= 0")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"MFALoss(label_smoothing={label_smoothing!r}): expected a number in [0, 1)")
        self.lambda_kl, self.mode, self.label_smoothing = float(lambda_kl), mode, float(label_smoothing)

    def forward(self, logits: Mapping[int, torch.Tensor], target: torch.Tensor) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        if not isinstance(logits, Mapping) or not logits:
            raise ValueError("MFALoss: expected a non-empty dict {frame_count: logits (B, C)}, "
                             f"got {type(logits).__name__}")
        shapes = {t: tuple(z.shape) for t, z in logits.items()}
        ref = next(iter(shapes.values()))
        if len(ref) != 2 or any(s != ref for s in shapes.values()):
            raise ValueError(f"MFALoss: every stream's logits must be (B, C) of the same shape, got {shapes}")
        if not torch.is_tensor(target) or target.shape[0] != ref[0]:
            raise ValueError(f"MFALoss: target must be a tensor with batch size {ref[0]}, got "
                             f"{tuple(target.shape) if torch.is_tensor(target) else type(target).__name__}")
        streams = sorted(logits)
        high = streams[-1]
        terms: Dict[str, torch.Tensor] = {}
        if self.mode in ("ce_all", "ce_kl"):
            ces = {t: soft_cross_entropy(logits[t], target, self.label_smoothing) for t in streams}
            total = sum(ces.values())
            terms["ce"] = ces[high]
            terms.update({f"ce_{t}": ces[t] for t in streams})
        else:
            total = terms["ce"] = soft_cross_entropy(logits[high], target, self.label_smoothing)
        if self.mode in ("mfal", "ce_kl"):
            teacher = F.softmax(logits[high].detach().float(), dim=1)
            for t in streams[:-1]:
                kl = F.kl_div(F.log_softmax(logits[t].float(), dim=1), teacher, reduction="batchmean")
                terms[f"kl_{t}"] = kl
                total = total + self.lambda_kl * kl
        terms["total"] = total
        return total, {k: v.detach() for k, v in terms.items()}

    def extra_repr(self) -> str:
        return f"lambda_kl={self.lambda_kl}, mode={self.mode!r}, label_smoothing={self.label_smoothing}"
