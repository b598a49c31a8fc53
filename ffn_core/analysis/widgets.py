"""An ipywidgets explorer: one validation video, a frame-count slider, ST and FFN side by side.

For the chosen video and frame count T it shows the T sampled frames, each model's top class
probabilities (the true class in green), the stream that ran (FFN routes an untrained T to the
nearest trained count) and the GMACs. The computation lives in :func:`explore` so tests reach it
without a frontend; :func:`show_explorer` prints a note instead of a widget when headless
(papermill, nbconvert: :func:`ffn_core.analysis.notebook.is_headless`).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Callable, Mapping

import numpy as np

from .plots import denormalize, plot_class_probs, plot_clips

__all__ = ["explore", "frame_explorer", "show_explorer"]


def explore(models: Mapping[str, object], dataset_for: Callable[[int], object], index: int, T: int,
            gmacs_for: Callable[[str, int], float] | None = None) -> dict:
    """Run every model on validation video ``index`` sampled at ``T`` frames.

    Args:
        models: ``{name: model}``; each takes ``(1, T, 3, H, W)`` and returns logits ``(1, C)``.
        dataset_for: ``T -> dataset`` whose item ``index`` is ``((clip (T, 3, H, W),), label)``.
        gmacs_for: ``(name, T) -> GMACs`` (optional).

    Returns:
        ``{"frames": uint8 (T, H, W, 3), "label": int, "probs": {name: (C,)}, "stream": {name: int},
        "gmacs": {name: float}}``.
    """
    import torch

    ds = dataset_for(int(T))
    if not 0 <= int(index) < len(ds):
        raise IndexError(f"video index {index}: expected 0..{len(ds) - 1}")
    clips, label = ds[int(index)]
    clip = clips[0] if isinstance(clips, (tuple, list)) else clips
    if clip.dim() == 5:  # several eval views: show and classify the first
        clip = clip[0]
    out = {"frames": denormalize(clip, *_norm_stats(ds)), "label": int(label), "probs": {}, "stream": {}, "gmacs": {}}
    for name, model in models.items():
        device = next(model.parameters()).device
        with torch.no_grad():
            logits = model(clip.unsqueeze(0).to(device))
        out["probs"][name] = torch.softmax(logits.float(), dim=1)[0].cpu().numpy()
        out["stream"][name] = int(model.route(int(T))) if hasattr(model, "route") else int(T)
        if gmacs_for is not None:
            out["gmacs"][name] = float(gmacs_for(name, int(T)))
    return out


def _norm_stats(ds) -> tuple:
    spec = getattr(ds, "spec", None)
    if spec is not None and hasattr(spec, "mean"):
        return tuple(spec.mean), tuple(spec.std)
    return (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def frame_explorer(models: Mapping[str, object], dataset_for: Callable[[int], object], class_names,
                   gmacs_for: Callable[[str, int], float] | None = None, frames_range: tuple = (2, 20),
                   start_frames: int = 8, num_videos: int | None = None):
    """The widget: sliders for the frame count and the video, an output area redrawn on change."""
    import ipywidgets as W
    from IPython.display import display

    dataset_for = lru_cache(maxsize=None)(dataset_for)
    n = num_videos or len(dataset_for(int(start_frames)))
    t_slider = W.IntSlider(value=int(start_frames), min=int(frames_range[0]), max=int(frames_range[1]), step=1,
                           description="frames", continuous_update=False)
    v_slider = W.IntSlider(value=0, min=0, max=max(n - 1, 0), step=1, description="video", continuous_update=False)
    info = W.HTML()
    out = W.Output()

    def redraw(*_):
        r = explore(models, dataset_for, v_slider.value, t_slider.value, gmacs_for)
        label = r["label"]
        parts = [f"<b>{class_names[label]}</b> (label {label}), {t_slider.value} frames"]
        for name in models:
            p = r["probs"][name]
            g = r["gmacs"].get(name)
            parts.append(f"{name}: top-1 <b>{class_names[int(np.argmax(p))]}</b> ({p.max():.2f}), stream "
                         f"{r['stream'][name]}F" + (f", {g:.3g} GMACs" if g is not None else ""))
        info.value = "<br>".join(parts)
        with out:
            out.clear_output(wait=True)
            display(plot_clips([r["frames"]], [f"video {v_slider.value} at {t_slider.value} frames"], max_frames=20))
            display(plot_class_probs(r["probs"], class_names, label=label))

    t_slider.observe(redraw, names="value")
    v_slider.observe(redraw, names="value")
    redraw()
    return W.VBox([W.HBox([t_slider, v_slider]), info, out])


def show_explorer(*args, headless: bool | None = None, **kwargs):
    """Display :func:`frame_explorer` in a notebook frontend; print a note (and return None) headless."""
    from .notebook import is_headless

    if is_headless() if headless is None else headless:
        print("widgets: no notebook frontend (papermill / nbconvert / plain Python), so the frame-count explorer "
              "is skipped. Open this notebook in JupyterLab to use it.")
        return None
    from IPython.display import display

    w = frame_explorer(*args, **kwargs)
    display(w)
    return w
