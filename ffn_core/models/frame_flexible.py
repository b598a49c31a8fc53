"""The backbone-agnostic model contract of a Frame Flexible Network (paper Sec. 4, Fig. 4).

:class:`FrameFlexibleModel` owns everything that is the same for every backbone:

* **the stream API** - ``model(x)`` with clips ``x`` (B, T, 3, H, W) runs the stream ``model.route(T)``
  (T itself if trained, else the nearest trained count, ties higher: paper Sec. 5.3);
  ``model(x, stream=T)`` overrides the routing; ``model([clip_4, clip_8, clip_16])`` is the training
  forward :meth:`forward_streams` (one clip per trained count, DDP-safe because it goes through
  ``__call__``) returning ``{T: logits}``;
* **the active stream** - :meth:`forward_features` is a template method: it checks the input, picks
  the stream and runs the backbone's :meth:`_features` inside :func:`~.flexible_norm.use_stream`, so
  every private norm / weight alteration / temporal module of the backbone sees the stream and the
  input's T. A backbone never calls ``use_stream`` itself;
* **the head** - :meth:`forward_head` takes per-frame features (B, T', D) (2D backbones: TSN "avg"
  consensus, the classifier runs per frame and the logits are averaged over time, before softmax) or
  pooled features (B, D) (3D backbones), applies dropout and the shared classifier;
* ``get_classifier()`` - the classifier module, named by the variant's declared cfg.

A new backbone subclasses it and writes ``_features(x) -> (B, T', D) | (B, D)`` (plus its own
``__init__`` with the norm factory / weight alteration built from :mod:`.flexible_norm`); it sets
``self.frames``, ``self.num_classes``, ``self.num_features`` and a classifier at ``model_cfg.classifier``.

:class:`SeparateStreams` is the "w/o WS" ablation (Table 4) for any backbone: one full single-count
model per stream, sharing nothing, behind the same stream API. :func:`build_frame_flexible` is what
every registered factory calls (weight sharing on/off, pretrained weights, cfg attached).
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence, Union

import torch
from torch import nn

from .flexible_norm import check_frames, route_stream, stream_key, use_stream

__all__ = ["FrameFlexibleModel", "SeparateStreams", "build_frame_flexible", "ffn_switches", "to_channels_last"]


def ffn_switches(frames: Sequence[int], private_norm: bool, weight_alteration: bool) -> tuple[bool, bool]:
    """``(private_norm, weight_alteration)`` actually used: with ONE frame count (an ST model) there
    is nothing to specialise, so both are off and the model is exactly the plain backbone."""
    multi = len(check_frames(frames)) > 1
    return bool(private_norm and multi), bool(weight_alteration and multi)


class FrameFlexibleModel(nn.Module):
    """Stream API + template ``forward_features`` + shared head (see the module docstring)."""

    frames: tuple = ()
    in_chans: int = 3
    num_classes: int = 0
    num_features: int = 0
    model_cfg = None   # the registered variant's ModelCfg (set by create_model)
    model_name = ""
    default_classifier = "fc"  # the classifier's attribute when no cfg is attached (a class built directly)

    # -- routing and input checks ------------------------------------------------------------------
    def route(self, num_frames: int) -> int:
        """Trained frame count whose stream runs a ``num_frames``-frame input (nearest, ties higher)."""
        return route_stream(num_frames, self.frames)

    def _select(self, x: torch.Tensor, stream: Optional[int]) -> int:
        if not torch.is_tensor(x) or x.dim() != 5 or x.shape[2] != self.in_chans:
            shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(
                f"{type(self).__name__}: expected clips of shape (B, T, {self.in_chans}, H, W), got {shape} "
                "(flatten evaluation views into the batch: (B*V, T, 3, H, W))"
            )
        if stream is None:
            return self.route(int(x.shape[1]))
        if stream not in self.frames:
            raise ValueError(f"stream={stream!r}: expected one of the trained frame counts {self.frames}")
        return int(stream)

    # -- forward -------------------------------------------------------------------------------------
    def forward(self, x, stream: Optional[int] = None):
        if isinstance(x, (list, tuple)):
            if stream is not None:
                raise ValueError("stream= cannot be combined with a list of clips (one clip per stream)")
            return self.forward_streams(x)
        s = self._select(x, stream)
        return self.forward_head(self.forward_features(x, s), s)

    def forward_streams(self, clips: Sequence[torch.Tensor]) -> Dict[int, torch.Tensor]:
        """Training forward: ``clips[k]`` is (B_k, frames[k], 3, H, W); returns ``{frames[k]: logits}``."""
        if len(clips) != len(self.frames):
            raise ValueError(
                f"forward_streams: got {len(clips)} clips for frames={self.frames}; pass one clip per "
                "trained frame count, in the order of model.frames"
            )
        out = {}
        for k, (t, clip) in enumerate(zip(self.frames, clips)):
            if not torch.is_tensor(clip) or clip.dim() != 5 or clip.shape[1] != t:
                shape = tuple(clip.shape) if torch.is_tensor(clip) else type(clip).__name__
                raise ValueError(f"forward_streams: clips[{k}] has shape {shape}, expected (B, {t}, 3, H, W)")
            out[t] = self.forward_head(self.forward_features(clip, t), t)
        return out

    def forward_features(self, x: torch.Tensor, stream: Optional[int] = None) -> torch.Tensor:
        """(B, T, 3, H, W) -> features through stream ``route(T)`` (or ``stream``): per-frame (B, T', D)
        or pooled (B, D), whichever the backbone's :meth:`_features` returns."""
        s = self._select(x, stream)
        with use_stream(self, s, int(x.shape[1])):
            return self._features(x)

    def _features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement _features(x)")

    def forward_head(self, feats: torch.Tensor, stream: Optional[int] = None) -> torch.Tensor:
        """(B, T', D) -> dropout -> classifier -> mean over T' (TSN avg consensus); (B, D) -> dropout
        -> classifier. ``stream`` is unused: the head is shared by all streams."""
        if feats.dim() not in (2, 3) or feats.shape[-1] != self.num_features:
            raise ValueError(f"forward_head: expected features (B, T, {self.num_features}) or (B, "
                             f"{self.num_features}), got {tuple(feats.shape)}")
        dropout = getattr(self, "dropout", None)
        logits = self.get_classifier()(dropout(feats) if dropout is not None else feats)
        return logits.mean(dim=1) if logits.dim() == 3 else logits

    def get_classifier(self) -> nn.Module:
        """The shared classifier (``model_cfg.classifier``; the class's ``default_classifier`` when the
        model was built without the registry)."""
        name = self.model_cfg.classifier if self.model_cfg is not None else self.default_classifier
        return self.get_submodule(name)

    def extra_repr(self) -> str:
        return f"frames={self.frames}"


class SeparateStreams(FrameFlexibleModel):
    """"w/o WS" ablation (Table 4): one full single-frame-count model per stream, sharing nothing.

    ``streams.t{T}`` is the backbone built with ``frames=(T,)`` (own convolutions, norms and
    classifier), so the model has K x the parameters of one; routing and ``forward_streams`` are the
    shared model's, so the same MFAL training applies.
    """

    def __init__(self, frames: Sequence[int], build: Callable[[tuple], FrameFlexibleModel]):
        super().__init__()
        self.frames = check_frames(frames)
        self.streams = nn.ModuleDict({stream_key(t): build((t,)) for t in self.frames})
        first = self.streams[stream_key(self.frames[0])]
        self.in_chans, self.num_classes, self.num_features = first.in_chans, first.num_classes, first.num_features

    def _stream(self, s: int) -> FrameFlexibleModel:
        if s not in self.frames:
            raise ValueError(f"stream={s!r}: expected one of the trained frame counts {self.frames}")
        return self.streams[stream_key(s)]

    def forward_features(self, x: torch.Tensor, stream: Optional[int] = None) -> torch.Tensor:
        return self._stream(self._select(x, stream)).forward_features(x)

    def forward_head(self, feats: torch.Tensor, stream: Optional[int] = None) -> torch.Tensor:
        s = self.route(int(feats.shape[1])) if stream is None and feats.dim() == 3 else stream
        if s is None:
            raise ValueError("SeparateStreams.forward_head: pooled (B, D) features need stream=")
        return self._stream(s).forward_head(feats)

    def get_classifier(self) -> nn.Module:
        """Every stream's own classifier (a ModuleList over the real modules)."""
        return nn.ModuleList([m.get_classifier() for m in self.streams.values()])


def to_channels_last(model: nn.Module) -> nn.Module:
    """``model`` with channels-last weights in the format of its layout: ``channels_last`` (NHWC) for
    frame-wise 2D backbones, ``channels_last_3d`` (NDHWC) for clip (3D) backbones, whose Conv3d
    weights cannot take the 4-D format."""
    cfg = getattr(model, "model_cfg", None)
    fmt = torch.channels_last_3d if cfg is not None and cfg.layout == "clip" else torch.channels_last
    return model.to(memory_format=fmt)


def build_frame_flexible(build: Callable[..., FrameFlexibleModel], *, frames, weight_sharing: bool = True,
                         pretrained: Union[str, dict] = "", cfg=None, name: str = "",
                         **kwargs) -> FrameFlexibleModel:
    """What every registered factory does: ``build(frames=..., **kwargs)``, or one such model per
    stream when ``weight_sharing`` is off ("w/o WS"); then ``pretrained`` weights into every private
    copy (:func:`~.pretrained.load_pretrained`, using the cfg's key mapping). ``cfg``/``name`` are
    attached to every (sub-)model so the pretrained loader and the classifier lookup can read them."""
    frames = check_frames(frames)

    def one(fr: tuple) -> FrameFlexibleModel:
        m = build(frames=fr, **kwargs)
        m.model_cfg, m.model_name = cfg, name
        return m

    model = one(frames) if weight_sharing or len(frames) == 1 else SeparateStreams(frames, one)
    model.model_cfg, model.model_name = cfg, name
    if pretrained:
        from .pretrained import load_pretrained

        model.pretrained_report = load_pretrained(model, pretrained)
    return model
