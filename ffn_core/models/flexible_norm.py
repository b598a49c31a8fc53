"""Frame-flexible building blocks: private norms, weight alteration, and the active-stream context.

FFN (paper Sec. 4.3, Eq. 6-9) shares every convolution between the frame counts ("streams") it is
trained on and keeps, per stream, a private copy of every normalization layer and a private
depth-wise "weight alteration" convolution. This file holds those pieces so that any backbone can use
them:

* :class:`FlexNorm` - a container with one private norm per frame count (``BatchNorm2d``,
  ``BatchNorm3d``, ``LayerNorm`` or any norm class), each with its own affine parameters and running
  statistics (Eq. 6). ``functools.partial(FlexNorm, nn.BatchNorm2d, frames)`` is a drop-in
  ``norm_layer`` factory for torchvision's ResNet blocks.
* :class:`WeightAlteration` - ``x + phi_T(x)`` with ``phi_T`` a private depth-wise 1x1 convolution
  per frame count (Eq. 7-9, Fig. 5).
* :func:`use_stream` - the ONE way the active stream is chosen. It is a context manager that sets the
  stream on the stream-aware modules *of one model* for the duration of a call and restores the
  previous value afterwards. There is no global: two models in one process, nested calls, DDP
  (each process owns its module) and DataParallel replicas (each replica's own modules are set inside
  its forward) never see each other's stream. The model's ``forward(x, stream=None)`` wraps its body
  in it, so users normally pass ``stream=`` (or nothing: it is routed from ``x.shape[1]``).
  Not thread-safe for *one* model used by two threads at once with different streams (like any
  BatchNorm in training mode).
* :func:`route_stream` - the any-frame inference rule (paper Sec. 5.3): a trained frame count runs its
  own stream, any other count runs the nearest trained one, ties going to the higher count.

Deliberate differences from the original code (``2D_Network/ops/backbone/resnet_TSM_FFN.py``):

* streams are a sorted tuple of frame counts used as module names (``t4``, ``t8``, ``t16``), not
  three copy-pasted attributes (``bn1_4``/``bn1_8``/``bn1_16``), so (4, 16), (4, 8, 16) and
  (4, 8, 12, 16) need no code change;
* weight alteration is initialised to zero (``init="zeros"``, default) or N(0, 1e-3)
  (``init="normal"``) and nothing re-initialises it afterwards: the original TSM-FFN's ResNet
  constructor overwrote it with Kaiming-normal (std sqrt(2/C)), so its blocks did NOT start as the
  pretrained network. With zeros, a freshly built FFN computes exactly the plain network (tested);
  the gradient w.r.t. ``phi`` is ``x * grad`` so zero is not a dead start.
"""
from __future__ import annotations

import contextlib
import operator
import weakref
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Sequence

import torch
from torch import nn

__all__ = [
    "StreamState",
    "StreamAware",
    "FlexNorm",
    "WeightAlteration",
    "use_stream",
    "route_stream",
    "check_frames",
    "stream_key",
]


def check_frames(frames, name: str = "frames") -> tuple:
    """Validate a frame-count tuple: non-empty, positive ints, strictly increasing.

    A single int is accepted as a one-stream tuple. Unsorted input is an error (not silently sorted)
    because clips passed to ``forward_streams`` are aligned with this order.
    """
    given = frames
    if hasattr(frames, "__index__"):
        frames = (frames,)
    try:
        frames = tuple(frames)
    except TypeError:
        raise TypeError(f"{name}={given!r}: expected a sorted tuple of frame counts, e.g. (4, 8, 16)") from None
    try:  # ints (also numpy ints), never bools or floats
        if any(isinstance(t, bool) for t in frames):
            raise TypeError
        frames = tuple(operator.index(t) for t in frames)
    except TypeError:
        frames = ()
    if not frames or min(frames) < 1:
        raise ValueError(f"{name}={given!r}: expected a non-empty tuple of positive ints, e.g. (4, 8, 16)")
    if any(a >= b for a, b in zip(frames, frames[1:])):
        raise ValueError(
            f"{name}={frames!r}: frame counts must be distinct and ascending; use {tuple(sorted(set(frames)))}"
        )
    return frames


def stream_key(num_frames: int) -> str:
    """Module name of the private copy for a frame count: ``t16`` (state-dict suffix ``.t16.``)."""
    return f"t{int(num_frames)}"


def route_stream(num_frames: int, frames: Sequence[int]) -> int:
    """The trained frame count whose stream handles ``num_frames`` input frames (paper Sec. 5.3).

    A trained count routes to itself; otherwise the nearest trained count, ties going to the higher
    one (e.g. frames (4, 8, 16): 6 -> 8, 10 -> 8, 12 -> 16, 2 -> 4, 20 -> 16). With one trained count,
    every input routes to it (this is how the TFD of a single-T model is measured). Unlike the
    original ``main_FFN.py::validate`` nothing (such as H = 16) is hard-coded.
    """
    try:
        n = -1 if isinstance(num_frames, bool) else operator.index(num_frames)
    except TypeError:
        n = -1
    if n < 1:
        raise ValueError(f"num_frames={num_frames!r}: expected a positive int")
    if not frames:
        raise ValueError("route_stream: no trained frame counts given")
    return int(min(frames, key=lambda f: (abs(f - n), -f)))


@dataclass(frozen=True)
class StreamState:
    """What a stream-aware module needs to know during one call.

    stream: the trained frame count whose private modules run (selects FlexNorm / WA copies).
    num_frames: the T of the batch actually flowing through (used by temporal ops such as the shift);
        differs from ``stream`` for any-frame inference (e.g. 10 input frames on the 8-frame stream).
    """

    stream: int
    num_frames: int


class StreamAware:
    """Mixin for modules that depend on the active stream (set only by :func:`use_stream`)."""

    _stream_state: Optional[StreamState] = None

    def _require_state(self) -> StreamState:
        state = self._stream_state
        if state is None:
            raise RuntimeError(
                f"{type(self).__name__} was called without an active stream: call the model as "
                "model(x) / model(x, stream=T) / model.forward_streams(clips), or wrap the call in "
                "`with ffn_core.models.use_stream(model, stream=T, num_frames=T): ...`"
            )
        return state


_STREAM_MODULES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _stream_modules(model: nn.Module) -> list:
    """The stream-aware modules of ``model``, found once per model object (not on every call). A
    copy (``deepcopy``) is another object and gets its own list; call :func:`forget_stream_modules`
    after adding stream-aware modules to a model that already ran."""
    found = _STREAM_MODULES.get(model)
    if found is None:
        found = [m for m in model.modules() if isinstance(m, StreamAware)]
        _STREAM_MODULES[model] = found
    return found


def forget_stream_modules(model: nn.Module) -> None:
    """Drop ``model``'s cached list of stream-aware modules (after changing its structure)."""
    _STREAM_MODULES.pop(model, None)


@contextlib.contextmanager
def use_stream(model: nn.Module, stream: int, num_frames: Optional[int] = None) -> Iterator[nn.Module]:
    """Activate ``stream`` (a trained frame count) on every stream-aware module inside ``model``.

    ``num_frames`` is the T of the batch (defaults to ``stream``). The previous state of each module is
    restored on exit, so calls nest and two models never interfere. Yields ``model``.
    """
    state = StreamState(int(stream), int(num_frames if num_frames is not None else stream))
    modules = _stream_modules(model)
    saved = [m._stream_state for m in modules]
    for m in modules:
        if isinstance(m, _PerStream) and stream_key(state.stream) not in m._modules:
            raise ValueError(
                f"stream={state.stream}: this model has no private modules for it; trained frame counts "
                f"are {m.frames}"
            )
        m._stream_state = state
    try:
        yield model
    finally:
        for m, s in zip(modules, saved):
            m._stream_state = s


class _PerStream(StreamAware, nn.Module):
    """Holds one child module per frame count, named ``t{T}``, and runs the active stream's child."""

    def __init__(self, frames: Sequence[int], build: Callable[[], nn.Module]):
        super().__init__()
        self.frames = check_frames(frames)
        for t in self.frames:
            self.add_module(stream_key(t), build())

    def copy_for(self, stream: int) -> nn.Module:
        """The private module of trained frame count ``stream``."""
        key = stream_key(stream)
        if key not in self._modules:
            raise KeyError(f"stream={stream}: no private copy; trained frame counts are {self.frames}")
        return self._modules[key]

    @property
    def copies(self) -> dict:
        """``{frame_count: private module}``."""
        return {t: self._modules[stream_key(t)] for t in self.frames}

    def active(self) -> nn.Module:
        if self._stream_state is None and len(self.frames) == 1:
            return self._modules[stream_key(self.frames[0])]  # one copy: nothing to choose
        return self.copy_for(self._require_state().stream)


class FlexNorm(_PerStream):
    """A private normalization layer per frame count (paper Eq. 6, "specialized normalization").

    ``FlexNorm(nn.BatchNorm2d, (4, 8, 16), 64)`` holds three ``BatchNorm2d(64)`` named ``t4``,
    ``t8``, ``t16`` (state-dict keys ``<name>.t8.weight``, ``<name>.t8.running_mean``, ...), each with
    its own affine parameters and running statistics. Only the active stream's copy runs, so the other
    streams' statistics are untouched by a forward pass.

    Args:
        norm: the norm class or factory (``nn.BatchNorm2d``, ``nn.BatchNorm3d``, ``nn.LayerNorm``...).
        frames: the trained frame counts (ascending).
        *args, **kwargs: passed to ``norm`` for every copy (e.g. ``num_features`` / ``normalized_shape``,
            ``eps``).
    """

    def __init__(self, norm: Callable[..., nn.Module], frames: Sequence[int], *args, **kwargs):
        super().__init__(frames, lambda: norm(*args, **kwargs))
        self.norm_name = getattr(norm, "__name__", type(norm).__name__)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.active()(x)

    def extra_repr(self) -> str:
        return f"norm={self.norm_name}, frames={self.frames}"


class WeightAlteration(_PerStream):
    """``x + phi_T(x)``: a private depth-wise 1x1 convolution per frame count, with residual (Eq. 7-9).

    Applied at the input of each residual branch (Fig. 5); the identity shortcut of the block keeps
    the unaltered input. ``phi_T`` has ``channels`` weights per stream and no bias, so it is a learned
    per-channel scale ``x * (1 + w_c)`` (as in the original code: not a temporal kernel). The weights
    live in depth-wise ``Conv{2,3}d`` modules (the original's parameter layout and keys), but the
    forward is that scale as one ``addcmul`` - the same numbers, without a grouped convolution.

    Args:
        channels: number of input channels C.
        frames: the trained frame counts (ascending).
        init: ``"zeros"`` (default: the block starts exactly as the plain network) or ``"normal"``
            (N(0, 1e-3), the original code's stated value). Never re-initialised by the backbone.
        dims: 2 for (N, C, H, W) features (``Conv2d``), 3 for (N, C, T, H, W) (``Conv3d``).
    """

    def __init__(self, channels: int, frames: Sequence[int], init: str = "zeros", dims: int = 2):
        if init not in ("zeros", "normal"):
            raise ValueError(f"WeightAlteration(init={init!r}): expected 'zeros' or 'normal'")
        if dims not in (2, 3):
            raise ValueError(f"WeightAlteration(dims={dims!r}): expected 2 (Conv2d) or 3 (Conv3d)")
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        super().__init__(frames, lambda: conv(channels, channels, 1, groups=channels, bias=False))
        self.channels, self.init, self.dims = channels, init, dims
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Near-identity init (see the class docstring); the backbone calls this after its own init."""
        with torch.no_grad():
            for conv in self.copies.values():
                if self.init == "zeros":
                    conv.weight.zero_()
                else:
                    conv.weight.normal_(0.0, 1e-3)

    reset_flex_parameters = reset_parameters  # the hook backbones call after their own init

    def scale(self) -> torch.Tensor:
        """``1 + w_c`` of the active stream, shape (C,)."""
        return 1 + self.active().weight.reshape(-1)

    def fold_into(self, conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``conv(x + phi_T(x))`` computed as ``conv`` with the stream's per-channel scale folded into
        its kernel: ``W'[o, i] = W[o, i] * (1 + w_i)``. The same function as ``conv(self(x))`` (exact
        at init, equal to rounding after), but the work is a kernel-sized product instead of
        activation-sized passes forward and backward: the cheapest form of Eq. 8, ``W* = phi* (x) W``.
        ``conv`` must be an ungrouped ``Conv2d``/``Conv3d`` over this module's channels."""
        if conv.groups != 1 or conv.in_channels != self.channels:
            raise ValueError(f"WeightAlteration.fold_into: needs an ungrouped conv over {self.channels} input "
                             f"channels, got {conv}")
        s = self.scale().reshape(1, -1, *([1] * (conv.weight.dim() - 2)))
        return conv._conv_forward(x, conv.weight * s, conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x + DWConv1x1(x) == x * (1 + w_c): computed as one fused multiply-add instead of a grouped
        # convolution (the same numbers; oneDNN's depth-wise 1x1 backward cost ~8 % of a tiny FFN step)
        w = self.active().weight
        return torch.addcmul(x, x, w.reshape(1, -1, *([1] * (x.dim() - 2))))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, frames={self.frames}, init={self.init}"
