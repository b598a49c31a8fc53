"""One optimisation step: forward every stream, the loss, backward (summed or stream by stream), update.

Summed backward (default; the original code): forward all streams, ``loss = CE_H + λ Σ KL``, one
``backward()``. Peak activation memory is the *sum* of the streams' graphs.

``stream_backward``: streams run highest T first. The H stream's loss (its CE) is back-propagated
at once, its logits are kept *detached* as the teacher, then each lower stream is forwarded and its
loss (KL to the detached teacher, or its CE for ``ce_all``) back-propagated before the next stream
runs. The gradients are the same as the summed backward's - the teacher is detached in the MFAL loss
anyway (Eq. 4-5: the teacher is detached in all three official code bases), so no term couples two graphs - but only one
stream's graph is alive at a time: peak activation memory is that of the largest stream. Under DDP,
every backward but the last runs inside ``no_sync()``, so gradients are all-reduced once per step.
The per-stream losses are computed by the same loss function on ``{H: teacher.detach(), s: z_s}``,
which needs the loss to be a sum over streams (true for ``mfal`` and ``ce_all``; checked by a test).

Clipping unscales first under fp16 AMP (the original ``--gd`` was silently skipped with ``--amp``).
"""
from __future__ import annotations

import contextlib
from typing import Callable, Optional, Sequence

import torch
from torch import nn

__all__ = ["forward_backward", "optimizer_step", "autocast_context", "resolve_amp", "cpu_has_bf16"]


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (oneDNN: avx512_bf16 or AMX). Without it, CPU
    autocast in bf16 is emulated: measured 8.6x *slower* than float32 for the tiny FFN's ST-8 epoch
    on an AVX2-only AMD EPYC (226 vs 26 s), while it is 1.65x faster on a CPU with avx512_bf16."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_amp(amp: str, device: torch.device) -> str:
    """The precision a run really uses: ``auto`` is ``bf16`` where the device computes it natively
    (a CUDA GPU with bf16 support, a CPU with :func:`cpu_has_bf16`) and ``none`` (float32) elsewhere;
    ``fp16`` off CUDA is ``none`` (what autocast then does); every other value is returned as given."""
    if amp == "fp16" and device.type != "cuda":
        return "none"
    if amp != "auto":
        return amp
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "none"
    if device.type == "cpu":
        return "bf16" if cpu_has_bf16() else "none"
    return "none"


def autocast_context(device: torch.device, amp: str) -> Callable[[], contextlib.AbstractContextManager]:
    """A factory of autocast contexts: ``bf16`` on CUDA and on CPU (PyTorch's CPU autocast: the same
    code path as on a GPU, so CPU tests exercise it), ``fp16`` on CUDA only, ``auto`` as
    :func:`resolve_amp` decides; a no-op otherwise."""
    amp = resolve_amp(amp, device)
    if amp == "none" or device.type not in ("cuda", "cpu"):
        return contextlib.nullcontext
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def _key(stream, x) -> int:
    return int(stream) if stream is not None else int(x.shape[1])


def _detach(v) -> torch.Tensor:
    return v.detach() if torch.is_tensor(v) else torch.tensor(float(v))


def forward_backward(model: nn.Module, inputs: Sequence[tuple], target: torch.Tensor, loss_fn: Callable, *,
                     stream_backward: bool = False, autocast: Callable = contextlib.nullcontext,
                     scaler: Optional[torch.amp.GradScaler] = None,
                     no_sync: Optional[Callable] = None) -> tuple[torch.Tensor, dict, torch.Tensor]:
    """Forward ``inputs`` (``[(stream, clip), ...]``, highest T first) and back-propagate the loss.

    ``model`` may be DDP-wrapped (it is only called, ``model(clip, stream=s)``); ``no_sync`` is its
    ``no_sync`` method (or ``None``). Returns ``(total loss, detached; terms; detached logits of the
    first = highest stream)`` - gradients are left in ``.grad``.
    """
    scale = scaler.scale if scaler is not None else (lambda t: t)
    if not stream_backward or len(inputs) == 1:
        with autocast():
            logits = {}
            for stream, x in inputs:
                logits[_key(stream, x)] = model(x, stream=stream)
            total, terms = loss_fn(logits, target)
        scale(total).backward()
        first = next(iter(logits.values()))
        return total.detach(), {k: _detach(v) for k, v in terms.items()}, first.detach()

    terms: dict = {}
    total = None
    teacher_key, teacher = None, None
    for i, (stream, x) in enumerate(inputs):
        last = i == len(inputs) - 1
        ctx = no_sync() if (no_sync is not None and not last) else contextlib.nullcontext()
        key = _key(stream, x)
        with ctx:
            with autocast():
                z = model(x, stream=stream)
                part, part_terms = loss_fn({key: z} if i == 0 else {teacher_key: teacher, key: z}, target)
            scale(part).backward()
        part = part.detach()
        if i == 0:
            teacher_key, teacher, first_part = key, z.detach(), part
            total = part
        else:
            total = total + (part - first_part)  # the teacher's own term is repeated in every part
        for k, v in part_terms.items():
            terms.setdefault(k, _detach(v))
        del z
    if "total" in terms:  # the loss's own total of the first part is the teacher's term only
        terms["total"] = total
    return total, terms, teacher


def optimizer_step(model: nn.Module, optimizer: torch.optim.Optimizer, scaler: Optional[torch.amp.GradScaler],
                   clip_grad: float = 0.0) -> Optional[torch.Tensor]:
    """Unscale (AMP) -> clip -> step -> update the scaler -> zero the grads. Returns the grad norm
    (before clipping) when clipping is on, else ``None``."""
    norm = None
    if clip_grad > 0:
        if scaler is not None:
            scaler.unscale_(optimizer)
        norm = torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], clip_grad)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return norm
