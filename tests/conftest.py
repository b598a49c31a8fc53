"""Shared fixtures: tiny identifiable videos (mp4 via PyAV) and JPEG frame folders.

Frame ``i`` of :func:`identifiable_frames` has red channel ``10 * i + 5`` everywhere, a
horizontal gradient in green and a vertical gradient in blue, so the frame index survives
decoding, cropping, resizing and normalisation (see :func:`frame_ids`). Videos are written
losslessly (``libx264rgb``, ``qp=0``), so every backend must return them bit-exactly.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

# One intra-op thread: the tests use tiny tensors, where thread start-up costs more than it saves,
# and a loaded 2-core machine (CI beside other jobs) makes 2 threads up to 10x slower. Subprocesses
# (torchrun, papermill kernels) get the same through OMP_NUM_THREADS.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")

NUM_FRAMES, HEIGHT, WIDTH = 24, 32, 40


def identifiable_frames(n: int = NUM_FRAMES, h: int = HEIGHT, w: int = WIDTH) -> np.ndarray:
    """``uint8 (n, h, w, 3)``: red = 10 * i + 5 (frame id), green/blue = x/y gradients."""
    if n > 25:
        raise ValueError("identifiable_frames encodes at most 25 frames (red = 10 * i + 5 <= 255)")
    frames = np.empty((n, h, w, 3), np.uint8)
    frames[..., 0] = (10 * np.arange(n) + 5).astype(np.uint8)[:, None, None]
    frames[..., 1] = np.linspace(0, 255, w).astype(np.uint8)[None, None, :]
    frames[..., 2] = np.linspace(0, 255, h).astype(np.uint8)[None, :, None]
    return frames


def static_gradient_frames(n: int = NUM_FRAMES, h: int = HEIGHT, w: int = WIDTH, seed: int = 0) -> np.ndarray:
    """Frames constant in time, with a spatial pattern that differs under every crop and flip."""
    yy, xx = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(1, 4, size=2)
    img = np.stack([xx * 255 // (w - 1), yy * 255 // (h - 1), (a * xx + b * yy * xx / w) % 256], -1)
    return np.repeat(img.astype(np.uint8)[None], n, axis=0)


def frame_ids(values: np.ndarray) -> np.ndarray:
    """Frame ids from raw red values (any shape ``(..., H, W)``): the mean over H, W, inverted."""
    red = np.asarray(values, dtype=np.float64).mean(axis=(-2, -1))
    return np.rint((red - 5) / 10).astype(np.int64)


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: int = 8, faststart: bool = False) -> Path:
    """Write ``uint8 (N, H, W, 3)`` frames as a lossless H.264 (RGB) mp4 with PyAV."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream("libx264rgb", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt, stream.options = "rgb24", {"qp": "0"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_frame_folder(folder: str | os.PathLike, frames: np.ndarray, template: str = "{:05d}.jpg",
                       start_index: int = 1) -> Path:
    """Write frames as JPEGs (quality 95) named ``template.format(start_index + i)``."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / template.format(start_index + i), quality=95)
    return folder


@pytest.fixture(scope="session")
def media(tmp_path_factory):
    """Session-wide tiny media: an identifiable mp4, a JPEG folder of the same frames, a truncated
    (partly decodable) mp4 and an undecodable file. Treat them as read-only."""
    root = tmp_path_factory.mktemp("media")
    frames = identifiable_frames()
    video = write_video(root / "ids.mp4", frames)
    folder = write_frame_folder(root / "ids_frames", frames)
    full = write_video(root / "noise_full.mp4",
                       np.random.default_rng(0).integers(0, 256, (NUM_FRAMES, HEIGHT, WIDTH, 3), dtype=np.uint8),
                       faststart=True)
    truncated = root / "truncated.mp4"
    data = full.read_bytes()
    truncated.write_bytes(data[: int(len(data) * 0.97)])  # decord opens it, over-reports
    corrupt = root / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    return {"root": root, "frames": frames, "video": video, "folder": folder,
            "truncated": truncated, "corrupt": corrupt, "missing": root / "missing.mp4"}


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    """A tiny synthetic benchmark (16 train / 8 val clips, 16 frames, 32 px), made once per session."""
    from ffn_core.data.synthetic import TierSpec, generate

    root = tmp_path_factory.getbasetemp() / "engine_data"
    if not (root / "synthetic.json").is_file():
        generate(root, TierSpec("enginetest", num_train=16, num_val=8, num_frames=16, size=32), seed=0)
    return root
