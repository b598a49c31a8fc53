"""Temporal Shift Module (TSM, Lin et al. 2019) as used on every residual branch of TSM-FFN.

Frame features arrive flattened as (N*T, C, H, W). They are viewed as (N, T, C, H, W); with
``fold = C // fold_div`` (fold_div = 8, as in TSM and the official TSM-FFN backbone):

* channels ``[0, fold)`` take the value of frame t+1 (zero at the last frame),
* channels ``[fold, 2*fold)`` take frame t-1 (zero at the first frame),
* the other channels are unchanged.

T is the T of the batch being processed: passed explicitly to :func:`temporal_shift`, or, in
:class:`TemporalShift`, read from the active stream state set by
:func:`ffn_core.models.flexible_norm.use_stream` (which the model sets from ``x.shape[1]``). It is
never a constructor constant. This fixes the original TSM-FFN bug (issue #3 of the official repo):
there every shift module was built with n_segment = 16 and used for the 4- and 8-frame streams too,
so a 4-frame batch was reshaped into pseudo 16-frame clips and features leaked between videos.

Works for any memory format (channels_last keeps its layout) and for non-contiguous input.
"""
from __future__ import annotations

import torch
from torch import nn

from .flexible_norm import StreamAware

__all__ = ["temporal_shift", "TemporalShift"]


def temporal_shift(x: torch.Tensor, num_frames: int, fold_div: int = 8) -> torch.Tensor:
    """Shift 1/fold_div of the channels one frame back, 1/fold_div one frame forward (zero padded).

    Args:
        x: (N*T, C, H, W) frame features, frames of one clip consecutive (clip-major order).
        num_frames: T, the frames per clip of THIS batch.
        fold_div: 1/fraction of channels shifted in each direction.
    Returns:
        a new tensor of the same shape, dtype and memory format; clips never exchange features.
    """
    if x.dim() != 4:
        raise ValueError(f"temporal_shift: expected (N*T, C, H, W) features, got shape {tuple(x.shape)}")
    if not isinstance(num_frames, int) or num_frames < 1:
        raise ValueError(f"temporal_shift: num_frames={num_frames!r}, expected a positive int")
    if fold_div < 1:
        raise ValueError(f"temporal_shift: fold_div={fold_div!r}, expected a positive int")
    nt, c, h, w = x.shape
    if nt % num_frames:
        raise ValueError(
            f"temporal_shift: batch dimension {nt} is not a multiple of num_frames={num_frames} "
            "(features must be (N*T, C, H, W) with the T of this batch)"
        )
    fold = c // fold_div
    if fold == 0:
        return x
    if torch.is_grad_enabled() and x.requires_grad:
        return _Shift.apply(x, num_frames, fold)
    return _shift(x, num_frames, fold, reverse=False)  # inference / export: plain tensor ops


def _shift(x: torch.Tensor, num_frames: int, fold: int, reverse: bool) -> torch.Tensor:
    """One pass: every element of the output is written once (no zero fill, no second copy).
    ``reverse`` moves the channels the other way - the gradient of the forward shift."""
    nt, c, h, w = x.shape
    src = x.reshape(nt // num_frames, num_frames, c, h, w)  # splits dim 0: a view in any memory format
    out = torch.empty_like(src)
    first, second = (slice(0, fold), slice(fold, 2 * fold)) if not reverse else (slice(fold, 2 * fold), slice(0, fold))
    out[:, :-1, first] = src[:, 1:, first]     # from the next frame
    out[:, -1:, first] = 0
    out[:, 1:, second] = src[:, :-1, second]   # from the previous frame
    out[:, :1, second] = 0
    out[:, :, 2 * fold:] = src[:, :, 2 * fold:]
    return out.reshape(nt, c, h, w)


class _Shift(torch.autograd.Function):
    """The shift and its gradient (the same shift in the other direction), each in one pass; the
    autograd of slice assignments into a zero tensor took a fill and several copies each way."""

    @staticmethod
    def forward(ctx, x, num_frames: int, fold: int):
        ctx.num_frames, ctx.fold = num_frames, fold
        return _shift(x, num_frames, fold, reverse=False)

    @staticmethod
    def backward(ctx, grad):
        return _shift(grad, ctx.num_frames, ctx.fold, reverse=True), None, None


class TemporalShift(StreamAware, nn.Module):
    """:func:`temporal_shift` with T taken from the active stream state (the input's T).

    Parameter-free and shared by all streams. Call it inside ``use_stream(model, stream, num_frames)``
    (the model's forward does this); called outside, it raises a clear error instead of guessing T.
    """

    def __init__(self, fold_div: int = 8):
        super().__init__()
        self.fold_div = int(fold_div)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return temporal_shift(x, self._require_state().num_frames, self.fold_div)

    def extra_repr(self) -> str:
        return f"fold_div={self.fold_div}"
