"""``python -m ffn_core predict --checkpoint best.pt VIDEO [VIDEO ...] (--frames N | --budget GMACS | --cascade TAU)``.

Classifies a user's own videos (an mp4/webm/avi file or a folder of frames) with a trained model,
at a chosen frame count, the largest trained count within a compute budget, or with 06's confidence
cascade, and prints the top-5 classes with probabilities, the frame count(s) that ran, the stream
that served them and the GMACs spent (``--json``: one JSON object per video, in a list).

Decode and transforms are evaluation's own: the video is read through a one-line list and a
:class:`~ffn_core.data.VideoListDataset` with the checkpoint's crop, test resize, views
(``num_clips`` x ``test_crops``), normalisation and TSN test sampling, so a clip predicted here is
the clip ``eval`` would score. A frame folder is read with the checkpoint dataset's frame template
(``--template`` overrides it; default ``{:05d}.jpg`` starting at 1).

* ``--frames N``: any N; an untrained count is served by the nearest trained stream (ties higher).
* ``--budget G``: the largest *trained* frame count whose GMACs per video (all views) are <= G.
* ``--cascade TAU``: the trained counts in increasing order; stop at the first whose top
  probability is >= TAU (or at the last); the GMACs are the sum of every count that ran.

A missing or undecodable file is one ``error:`` line naming it, exit code 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

import torch

from ffn_core.config import ConfigError

from .cli import one_line

__all__ = ["Predictor", "main"]


class Predictor:
    """A loaded checkpoint that classifies videos (module docstring)."""

    def __init__(self, checkpoint: str | Path, device: str = "cpu", template: Optional[str] = None):
        from .checkpoint import load_checkpoint
        from .distributed import resolve_device

        self.device = resolve_device(device)
        self.model, self.cfg = load_checkpoint(checkpoint, device=self.device)
        self.checkpoint = Path(checkpoint)
        self.num_classes = int(self.model.num_classes) if hasattr(self.model, "num_classes") else None
        self.class_names = list(getattr(self.model, "class_names", []) or [])
        self.spec = self._spec(template)
        self._gmacs: dict[int, float] = {}

    def _spec(self, template: Optional[str]):
        from ffn_core.data.datasets import get_dataset_spec, model_normalization

        try:
            from ffn_core.data.prepare.description import prepared_spec

            spec = prepared_spec(self.cfg.data_root, self.cfg.dataset)
        except (OSError, ValueError, KeyError):  # the training data is not on this machine
            spec = get_dataset_spec(self.cfg.dataset)
        spec = model_normalization(self.cfg, spec)
        n = len(self.class_names) or self.num_classes
        frames_template = template or (spec.template if spec.kind == "frames" else "{:05d}.jpg")
        return dataclasses.replace(spec, num_classes=n, template=frames_template)

    @property
    def frames(self) -> tuple:
        return tuple(int(t) for t in self.model.frames)

    @property
    def views(self) -> int:
        return int(self.cfg.num_clips) * int(self.cfg.test_crops)

    def gmacs(self, T: int) -> float:
        """GMACs of one video at T frames, every view (``accounting.gmacs_per_clip`` x views)."""
        if T not in self._gmacs:
            from ffn_core.models.accounting import gmacs_per_clip

            self._gmacs[T] = gmacs_per_clip(self.model, int(T), size=int(self.cfg.crop_size)) * self.views
        return self._gmacs[T]

    def frames_for_budget(self, budget: float) -> int:
        fits = [t for t in self.frames if self.gmacs(t) <= budget]
        if not fits:
            cheapest = min(self.frames)
            raise ConfigError(f"--budget {budget:g}: no trained frame count fits; the cheapest, {cheapest} frames, "
                              f"needs {self.gmacs(cheapest):.4f} GMACs per video")
        return max(fits)

    def _dataset(self, video: Path, T: int):
        from ffn_core.data import VideoListDataset, open_reader

        kind = "frames" if video.is_dir() else "video"
        spec = dataclasses.replace(self.spec, kind=kind)
        with open_reader(str(video), kind, template=spec.template, start_index=spec.start_index,
                         backend=self.cfg.video_backend) as reader:
            n = reader.num_frames()
        tmp = tempfile.TemporaryDirectory(prefix="ffn_predict_")
        lst = Path(tmp.name) / "predict.txt"
        lst.write_text(f"{video.name} {n} 0\n")
        ds = VideoListDataset(lst, str(video.parent), spec, (int(T),), train=False, crop_size=self.cfg.crop_size,
                              resize=self.cfg.test_resize, num_clips=self.cfg.num_clips,
                              test_crops=self.cfg.test_crops, backend=self.cfg.video_backend, on_error="raise")
        return ds, tmp

    @torch.no_grad()
    def probabilities(self, video: str | Path, T: int) -> torch.Tensor:
        """Softmax (C,) of ``video`` at T frames, averaged over the views."""
        from .evaluate import _batch_probs
        from .step import autocast_context

        video = Path(video)
        if not video.exists():
            raise FileNotFoundError(f"{video}: no such video file or frame folder")
        ds, tmp = self._dataset(video, T)
        try:
            (clip,), _ = ds[0]
        finally:
            tmp.cleanup()
        x = clip.unsqueeze(0).to(self.device)
        probs, _ = _batch_probs([self.model], x, autocast_context(self.device, self.cfg.amp))
        return probs[0][0].float().cpu()

    def _name(self, c: int) -> str:
        return self.class_names[c] if c < len(self.class_names) else f"class {c}"

    def predict(self, video: str | Path, frames: Optional[int] = None, budget: Optional[float] = None,
                cascade: Optional[float] = None, topk: int = 5) -> dict:
        """One video -> ``{"video", "frames_run", "streams", "gmacs", "top5": [(class, name, p)], "mode"}``."""
        if sum(v is not None for v in (frames, budget, cascade)) != 1:
            raise ConfigError("predict: give exactly one of --frames, --budget, --cascade")
        if frames is not None and (isinstance(frames, bool) or int(frames) < 1):
            raise ConfigError(f"--frames {frames!r}: expected a positive integer")
        if cascade is not None and not 0 <= cascade <= 1:
            raise ConfigError(f"--cascade {cascade!r}: expected a threshold in [0, 1]")
        if frames is not None:
            chain, mode = [int(frames)], f"frames={int(frames)}"
        elif budget is not None:
            chain, mode = [self.frames_for_budget(float(budget))], f"budget={float(budget):g}"
        else:
            chain, mode = sorted(self.frames), f"cascade={float(cascade):g}"
        ran, p = [], None
        for T in chain:
            p = self.probabilities(video, T)
            ran.append(T)
            if cascade is not None and float(p.max()) >= cascade:
                break
        k = min(topk, p.numel())
        top = torch.topk(p, k)
        return {"video": str(video), "mode": mode, "frames_run": ran,
                "streams": [int(self.model.route(t)) for t in ran],
                "gmacs": round(sum(self.gmacs(t) for t in ran), 6),
                "top5": [{"class": int(c), "name": self._name(int(c)), "prob": round(float(v), 6)}
                         for v, c in zip(top.values, top.indices)]}


def _format(r: dict) -> str:
    ran = "->".join(map(str, r["frames_run"]))
    lines = [f"{r['video']}: {ran} frames (stream {'->'.join(map(str, r['streams']))}), {r['gmacs']:.4f} GMACs [{r['mode']}]"]
    lines += [f"  {i + 1}. {t['name']:<28} {100 * t['prob']:6.2f} %" for i, t in enumerate(r["top5"])]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ffn_core predict", description=__doc__.split("\n\n")[1])
    p.add_argument("--checkpoint", required=True, help="best.pt / last.pt written by train")
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files or frame folders")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--frames", type=int, help="run at this many frames")
    g.add_argument("--budget", type=float, help="GMACs per video: the largest trained count that fits")
    g.add_argument("--cascade", type=float, metavar="TAU", help="fewest frames first; stop at top prob >= TAU")
    p.add_argument("--template", default=None, help="frame file names in a frame folder, e.g. img_{:05d}.jpg")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of text")
    a = p.parse_args(argv)
    from ffn_core.data import DataError, VideoReadError

    from .checkpoint import CheckpointError

    try:
        pred = Predictor(a.checkpoint, a.device, a.template)
        results = []
        for v in a.videos:
            results.append(pred.predict(v, frames=a.frames, budget=a.budget, cascade=a.cascade))
            if not a.json:
                print(_format(results[-1]), flush=True)
    except (ConfigError, CheckpointError, FileNotFoundError, DataError, VideoReadError) as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    if a.json:
        print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
