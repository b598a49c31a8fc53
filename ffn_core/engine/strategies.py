"""Training strategies: which model is built, which clips are loaded, and what one step feeds it.

=============  ==========================  ===================  ========================================
strategy       model streams               clips loaded         per iteration
=============  ==========================  ===================  ========================================
``st``         ``(T,)``                    ``(T,)``             CE on the T-frame clip (Separated Training)
``ffn``        ``frames`` (e.g. 4, 8, 16)  ``frames``           every stream; MFAL (Eq. 3-5) or ``ce_all``
``mixed``      ``(H,)``                    ``(L, H)``           with prob. rho: L-clip mixed into 4
                                                                consecutive frames of the H-clip; CE
``proportional`` ``(H,)``                  ``(L, H)``           with prob. rho the H-clip, else the L-clip; CE
``finetune``   the source checkpoint's     ``(T,)`` target      CE on the T-frame clip, starting from
               streams (e.g. ``(16,)``)                         ``finetune_from`` (trained at another T)
=============  ==========================  ===================  ========================================

Paper Sec. 5.1 / Table 1 describes the baselines in one sentence each and released no
code; what we implement exactly:

* **Mixed Sampling (rho)**: per iteration, with probability rho (one draw per iteration, shared by the
  batch), every sample's H-clip gets ``x_H[s:s+L] = 0.5 * x_H[s:s+L] + 0.5 * x_L`` with a start
  ``s ~ U{0, ..., H-L}`` drawn per sample. The mixup weight is fixed at 0.5 (the paper gives none;
  a fixed weight keeps the L-clip as visible as the H-frames it overlays). Labels are unchanged: both
  clips come from the same video. The model always sees H frames.
* **Proportional Sampling (rho)**: per iteration, the whole batch trains on the H-clip with
  probability rho, else on the L-clip, through the model's single stream (the shift uses the
  clip's own T).
* **Fine-tuning**: the model is rebuilt with the source checkpoint's streams and weights (model
  only: optimiser and schedule start fresh) and trained on ``frames`` (the target T).
* **Ensemble** is an evaluation (``evaluate.cross_evaluate(..., ensemble=True)``), not a strategy.

Random decisions of a strategy come from a generator seeded by ``(seed, epoch)`` (the same on every
rank), so a resumed run makes the same decisions. Inputs are returned highest T first: the teacher
of the MFAL loss is computed first, which is what ``stream_backward`` needs.
"""
from __future__ import annotations

from functools import partial
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import CheckpointError, load_model_state, read_checkpoint

__all__ = ["Strategy", "build_strategy", "StreamInput"]

StreamInput = tuple  # (stream: int | None, clip (B, T, 3, H, W)); stream None = route by T


def _ce_loss(logits: dict, target: torch.Tensor, label_smoothing: float = 0.0):
    (z,) = logits.values()
    loss = F.cross_entropy(z.float(), target, label_smoothing=label_smoothing)
    return loss, {"ce": loss.detach()}


def _init_from(cfg, model: nn.Module) -> nn.Module:
    """``init_from`` (ours): start from a trained single-frame-count checkpoint of the same model
    (e.g. ST-16's ``best.pt``) via :func:`~ffn_core.models.convert_st_to_ffn` - shared weights and
    ``fc`` copied, the single norm into every private copy, weight alteration at its init."""
    if not cfg.init_from:
        return model
    from ffn_core.models import convert_st_to_ffn
    from ffn_core.models.official import OfficialCheckpointError, init_from_official, official_spec

    try:
        spec = official_spec(cfg.init_from)
    except OfficialCheckpointError as e:
        raise CheckpointError(f"init_from: {e}") from None
    if spec is not None:  # a checkpoint released with the original FFN code
        try:
            rep = init_from_official(model, spec[0])
        except (OfficialCheckpointError, FileNotFoundError) as e:
            raise CheckpointError(str(e)) from None
        routed = ", ".join(f"{t}<-{r}" for t, r in rep["routed"].items())
        print(f"init_from={cfg.init_from}: {rep['model']} streams {routed}"
              + (f"; dropped {', '.join(rep['dropped'])} (other classes)" if rep["dropped"] else ""), flush=True)
        return model
    ckpt = read_checkpoint(cfg.init_from)
    src_model = ckpt.get("config", {}).get("model")
    if src_model not in (None, cfg.model):
        raise CheckpointError(f"init_from={cfg.init_from}: a {src_model} checkpoint, but "
                              f"model={cfg.model}; set model={src_model}")
    try:
        convert_st_to_ffn(ckpt["model"], model)
    except ValueError as e:
        raise CheckpointError(f"init_from={cfg.init_from}: {e}") from None
    return model


class Strategy:
    """Base: single-stream Separated Training (``st``) on ``cfg.frames[0]``."""

    name = "st"

    def __init__(self, cfg):
        self.cfg = cfg

    # -- what to build ----------------------------------------------------------------------------
    def model_frames(self) -> tuple:
        return tuple(self.cfg.frames)

    def data_frames(self) -> tuple:
        return tuple(self.cfg.frames)

    @property
    def best_frames(self) -> int:
        """Frame count whose accuracy selects ``best.pt`` (the highest trained T, like the paper)."""
        return max(self.cfg.frames)

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """Hook run once on the freshly built model: ``init_from`` (fine-tuning loads its source here)."""
        return _init_from(self.cfg, model)

    def loss_fn(self) -> Callable:
        return partial(_ce_loss, label_smoothing=self.cfg.label_smoothing)

    # -- one iteration ----------------------------------------------------------------------------
    def inputs(self, clips: Sequence[torch.Tensor], gen: torch.Generator) -> list:
        """``[(stream, clip), ...]``, highest T first, for the clips of one batch (on the device)."""
        return [(None, clips[0])]


class FFNStrategy(Strategy):
    """All trained frame counts through one shared network; MFAL loss (paper Eq. 3-5).

    With ``init_from`` (every strategy but ``finetune``) it starts from a single-T checkpoint: the
    synthetic benchmark's stand-in for the paper's "start from a good pretrained model"."""

    name = "ffn"

    def loss_fn(self) -> Callable:
        from ffn_core.losses import MFALoss

        return MFALoss(lambda_kl=self.cfg.lambda_kl, mode=self.cfg.loss, label_smoothing=self.cfg.label_smoothing)

    def inputs(self, clips, gen):
        return [(t, x) for t, x in sorted(zip(self.cfg.frames, clips), key=lambda p: -p[0])]


class MixedStrategy(Strategy):
    """Mixed Sampling (Table 1): a single-stream H-frame model; see the module docstring."""

    name = "mixed"
    mix_weight = 0.5

    def model_frames(self):
        return (max(self.cfg.frames),)

    def inputs(self, clips, gen):
        (low_t, high_t), (x_low, x_high) = self.cfg.frames, clips
        if float(torch.rand((), generator=gen)) < self.cfg.rho:
            starts = torch.randint(0, high_t - low_t + 1, (x_high.shape[0],), generator=gen).tolist()
            x_high = x_high.clone()
            for b, s in enumerate(starts):
                x_high[b, s:s + low_t] = self.mix_weight * x_high[b, s:s + low_t] + (1 - self.mix_weight) * x_low[b]
        return [(high_t, x_high)]


class ProportionalStrategy(Strategy):
    """Proportional Sampling (Table 1): the H-clip with probability rho, else the L-clip."""

    name = "proportional"

    def model_frames(self):
        return (max(self.cfg.frames),)

    def inputs(self, clips, gen):
        use_high = float(torch.rand((), generator=gen)) < self.cfg.rho
        return [(max(self.cfg.frames), clips[1] if use_high else clips[0])]


class FinetuneStrategy(Strategy):
    """Fine-tuning (Table 1): start from ``finetune_from`` (another T) and train at ``frames``."""

    name = "finetune"

    def __init__(self, cfg):
        super().__init__(cfg)
        self._source: Optional[dict] = None

    def _read(self) -> dict:
        if self._source is None:
            ckpt = read_checkpoint(self.cfg.finetune_from)
            frames = tuple(int(t) for t in ckpt.get("frames") or ckpt["config"]["frames"])
            self._source = {"state": ckpt["model"], "frames": frames, "model": ckpt["config"].get("model")}
            if self._source["model"] not in (None, self.cfg.model):
                raise CheckpointError(
                    f"finetune_from={self.cfg.finetune_from}: a {self._source['model']} checkpoint, but "
                    f"model={self.cfg.model}; set model={self._source['model']}")
        return self._source

    def model_frames(self):
        return self._read()["frames"]

    def prepare_model(self, model):
        src = self._read()
        load_model_state(model, src["state"], f"finetune_from={self.cfg.finetune_from}")
        return model


_STRATEGIES = {c.name: c for c in (Strategy, FFNStrategy, MixedStrategy, ProportionalStrategy, FinetuneStrategy)}


def build_strategy(cfg) -> Strategy:
    if cfg.strategy not in _STRATEGIES:
        raise ValueError(f"strategy={cfg.strategy!r}: expected one of {', '.join(_STRATEGIES)}")
    return _STRATEGIES[cfg.strategy](cfg)
