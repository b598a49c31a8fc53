"""Spatial transforms for clips (torchvision.transforms.v2 on ``tv_tensors.Video``).

One call transforms all frames of one sample at once: the frames of every stream (4, 8, 16 ...)
are concatenated along the first axis, so ONE random crop / scale / flip is shared by all streams,
as in the original code (reference notes §3.1: "the 28 images of one training sample go through
one transform call").

* Train (TSM/TSN recipe, reference §3.3): multi-scale crop in the style of TSN's
  ``GroupMultiScaleCrop`` -- crop width and height are ``short_side * s`` with ``s`` drawn from
  ``scales`` independently for w and h, at most one scale step apart (``max_distort=1``); a side
  within 3 px of ``crop_size`` snaps to ``crop_size``; the crop sits at one of 13 fixed offsets
  (corners, centre, edge midpoints, quarter points; 5 with ``more_fix_crop=False``) -- then resize
  to ``crop_size x crop_size`` and, if ``flip``, a horizontal flip with p = 0.5.
* Test: resize the short side to ``resize``, then a centre crop (``test_crops=1``) or three crops
  along the long side (left/centre/right or top/centre/bottom; ``test_crops=3``).
* Both end with ``float32`` in [0, 1] and per-channel ``(x - mean) / std``.

Randomness comes only from torch's global RNG (``torch.randint`` / the v2 transforms' own draws),
so ``torch.manual_seed`` -- and the per-worker seeding of ``DataLoader`` -- make it reproducible.
*Deliberate difference*: the original draws crops and flips with Python's ``random`` module.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from ffn_core._tv import torchvision  # noqa: F401  (the one torchvision import)
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

__all__ = ["build_transform", "MultiScaleCrop", "ClipTransform", "crop_offsets", "DEFAULT_SCALES"]

DEFAULT_SCALES = (1, 0.875, 0.75, 0.66)


def crop_offsets(img_w: int, img_h: int, crop_w: int, crop_h: int, more_fix_crop: bool = True) -> list:
    """The fixed ``(left, top)`` crop offsets of TSN's multi-scale crop (5 or 13 positions)."""
    ws, hs = (img_w - crop_w) // 4, (img_h - crop_h) // 4
    grid = [(0, 0), (4, 0), (0, 4), (4, 4), (2, 2)]
    if more_fix_crop:
        grid += [(0, 2), (4, 2), (2, 4), (2, 0), (1, 1), (3, 1), (1, 3), (3, 3)]
    return [(i * ws, j * hs) for i, j in grid]


class MultiScaleCrop(v2.Transform):
    """TSN-style multi-scale fixed-offset crop, then resize to ``size x size`` (see module doc)."""

    def __init__(self, size: int, scales: Sequence[float] = DEFAULT_SCALES, max_distort: int = 1,
                 more_fix_crop: bool = True) -> None:
        super().__init__()
        if not scales or any(not 0 < s <= 1 for s in scales):
            raise ValueError(f"scales={tuple(scales)!r}: expected a non-empty list of numbers in (0, 1]")
        self.size, self.scales = int(size), tuple(float(s) for s in scales)
        self.max_distort, self.more_fix_crop = int(max_distort), bool(more_fix_crop)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = F.get_size(flat_inputs[0])
        base = min(h, w)
        sides = [int(base * s) for s in self.scales]
        sides = [self.size if abs(x - self.size) < 3 else x for x in sides]
        pairs = [(sw, sh) for i, sh in enumerate(sides) for j, sw in enumerate(sides)
                 if abs(i - j) <= self.max_distort and 0 < sw <= w and 0 < sh <= h]
        if not pairs:  # a frame smaller than every candidate: use the whole frame
            pairs = [(w, h)]
        cw, ch = pairs[int(torch.randint(len(pairs), ()).item())]
        offsets = crop_offsets(w, h, cw, ch, self.more_fix_crop)
        left, top = offsets[int(torch.randint(len(offsets), ()).item())]
        return {"top": top, "left": left, "height": ch, "width": cw}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        out = F.crop(inpt, params["top"], params["left"], params["height"], params["width"])
        if tuple(out.shape[-2:]) == (self.size, self.size):  # already the size: resize is the identity
            return out
        return F.resize(out, [self.size, self.size], antialias=True)


class ClipTransform:
    """Callable: uint8 ``(N, 3, H, W)`` -> float32 ``(N, 3, c, c)`` (or ``(3, N, 3, c, c)``)."""

    def __init__(self, train: bool, crop_size: int, resize: int, mean: Sequence[float], std: Sequence[float],
                 flip: bool, scales: Sequence[float] = DEFAULT_SCALES, test_crops: int = 1,
                 more_fix_crop: bool = True) -> None:
        if not isinstance(crop_size, int) or crop_size <= 0:
            raise ValueError(f"crop_size={crop_size!r}: expected a positive integer (pixels)")
        if not train and (not isinstance(resize, int) or resize < crop_size):
            raise ValueError(f"resize={resize!r}: expected an integer >= crop_size={crop_size} (test short side)")
        if test_crops not in (1, 3):
            raise ValueError(f"test_crops={test_crops!r}: expected 1 (centre) or 3 (three crops)")
        for key, value in (("mean", mean), ("std", std)):
            if len(value) != 3:
                raise ValueError(f"{key}={tuple(value)!r}: expected 3 per-channel values (RGB)")
        if any(s <= 0 for s in std):
            raise ValueError(f"std={tuple(std)!r}: expected positive values")
        self.train, self.crop_size, self.resize = bool(train), crop_size, resize
        self.test_crops = 1 if train else test_crops
        self.flip = bool(flip)
        if train:
            steps = [MultiScaleCrop(crop_size, scales, more_fix_crop=more_fix_crop)]
            if flip:
                steps.append(v2.RandomHorizontalFlip(p=0.5))
            self.spatial = v2.Compose(steps)
        else:
            steps = [v2.Resize(resize, antialias=True)]
            if test_crops == 1:
                steps.append(v2.CenterCrop(crop_size))
            self.spatial = v2.Compose(steps)
        # (x / 255 - mean) / std as one subtract and one multiply on the uint8 frames (the same
        # function as v2.ToDtype(scale=True) + v2.Normalize, equal to float rounding, without their
        # per-call dispatch: ~0.1 ms of a 0.6 ms sample on the cpu tier)
        self._shift = torch.tensor([255.0 * m for m in mean]).view(3, 1, 1)
        self._scale = torch.tensor([1.0 / (255.0 * s) for s in std]).view(3, 1, 1)

    def _three_crops(self, video: torch.Tensor) -> list:
        h, w = video.shape[-2:]
        c = self.crop_size
        mid_h, mid_w = int(round((h - c) / 2.0)), int(round((w - c) / 2.0))  # as v2.CenterCrop
        if w >= h:
            return [F.crop(video, mid_h, left, c, c) for left in (0, mid_w, w - c)]
        return [F.crop(video, top, mid_w, c, c) for top in (0, mid_h, h - c)]

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        if not isinstance(frames, torch.Tensor) or frames.dtype != torch.uint8 or frames.ndim != 4 \
                or frames.shape[1] != 3:
            got = f"{frames.dtype} {tuple(frames.shape)}" if isinstance(frames, torch.Tensor) else type(frames).__name__
            raise ValueError(f"clip transform: expected a uint8 tensor (N, 3, H, W), got {got}")
        if self.train:  # the Compose above, on the plain tensor (tv_tensor dispatch was ~40 % of a cached sample)
            video = self._train_spatial(frames)
        else:
            video = self.spatial(tv_tensors.Video(frames)).as_subclass(torch.Tensor)
        if self.test_crops == 3:
            return torch.stack([self.normalize(v) for v in self._three_crops(video)])
        return self.normalize(video)

    def _train_spatial(self, frames: torch.Tensor) -> torch.Tensor:
        """``self.spatial`` (MultiScaleCrop, then RandomHorizontalFlip) with the same random draws in
        the same order - equal output, equal RNG state after (tested against the Compose)."""
        crop = self.spatial.transforms[0]
        p = crop.make_params([frames])
        out = frames[..., p["top"]:p["top"] + p["height"], p["left"]:p["left"] + p["width"]]
        if tuple(out.shape[-2:]) != (crop.size, crop.size):
            out = F.resize(out, [crop.size, crop.size], antialias=True)
        if self.flip and torch.rand(1) < self.spatial.transforms[1].p:  # v2: skip when rand(1) >= p
            out = out.flip(-1)
        return out

    def normalize(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 ``(..., 3, h, w)`` -> float32 ``(x / 255 - mean) / std``."""
        return frames.to(torch.float32).sub_(self._shift).mul_(self._scale)

    def __repr__(self) -> str:
        return (f"ClipTransform(train={self.train}, crop_size={self.crop_size}, resize={self.resize}, "
                f"flip={self.flip}, test_crops={self.test_crops}, spatial={self.spatial})")


def build_transform(train: bool, crop_size: int, resize: int, mean: Sequence[float], std: Sequence[float],
                    flip: bool, scales: Sequence[float] = DEFAULT_SCALES, test_crops: int = 1,
                    more_fix_crop: bool = True) -> ClipTransform:
    """The clip transform for training (``train=True``) or testing; see the module docstring.

    Input: uint8 ``(N, 3, H, W)`` (all frames of all streams of one sample). Output: float32
    normalised ``(N, 3, crop_size, crop_size)``; with ``train=False, test_crops=3``:
    ``(3, N, 3, crop_size, crop_size)``. ``resize`` is used only for testing.
    """
    return ClipTransform(train, crop_size, resize, mean, std, flip, scales, test_crops, more_fix_crop)
