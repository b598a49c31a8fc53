"""Seaborn figures for the notebooks and the report (one function per figure of the paper).

Every function builds a :class:`matplotlib.figure.Figure` without pyplot's global state (so it
neither leaks figures in loops nor double-displays in notebooks), saves it to ``path`` when given
(PNG, parent folders created) and returns it; a notebook cell that ends with the call shows it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ffn_core.atomic import atomic_path

__all__ = ["plot_sampling", "plot_clips", "plot_heatmap", "plot_acc_vs_gmacs", "plot_bn_stats",
           "plot_accuracy_lines", "plot_grouped_bars", "plot_cascade", "plot_cascade_results", "plot_class_probs", "denormalize"]


def _fig(w: float = 6.0, h: float = 4.0, ncols: int = 1, nrows: int = 1):
    import seaborn as sns
    from matplotlib.figure import Figure

    sns.set_theme(style="whitegrid", context="notebook")
    fig = Figure(figsize=(w, h), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _save(fig, path) -> None:
    if path is not None:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120, format=Path(path).suffix.lstrip(".") or "png")


def denormalize(clip, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)) -> np.ndarray:
    """A normalised clip (T, 3, H, W) (tensor or array) -> uint8 frames (T, H, W, 3) for display."""
    x = clip.detach().cpu().numpy() if hasattr(clip, "detach") else np.asarray(clip)
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"denormalize: expected a clip (T, 3, H, W), got shape {x.shape}")
    x = x * np.asarray(std)[None, :, None, None] + np.asarray(mean)[None, :, None, None]
    return (np.clip(x, 0, 1) * 255).round().astype(np.uint8).transpose(0, 2, 3, 1)


def plot_sampling(indices, num_frames: int, path=None, title: str = ""):
    """Sampled frame indices of one video, one row per frame count / mode (paper §3.1, TSN).

    ``indices``: ``{row label: indices}`` or a DataFrame with ``label`` and ``index`` columns
    (:func:`ffn_core.analysis.experiments.sampling_table`)."""
    if isinstance(indices, pd.DataFrame):
        indices = {k: g["index"].to_numpy() for k, g in indices.groupby("label", sort=False)}
    fig, ax = _fig(7, 0.55 * len(indices) + 1.4)
    ax = ax[0, 0]
    labels = list(indices)
    for row, label in enumerate(labels):
        idx = np.asarray(indices[label])
        ax.scatter(idx, np.full(idx.shape, row), s=28, marker="|" if len(idx) > 24 else "o")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlim(-0.5, num_frames - 0.5)
    ax.set_xlabel(f"frame index (video of {num_frames} frames)")
    ax.invert_yaxis()
    ax.set_title(title or "TSN segment sampling: one index per segment")
    _save(fig, path)
    return fig


def plot_clips(clips: Sequence, titles: Sequence[str], path=None, max_frames: int = 16):
    """One row per clip (uint8 (T, H, W, 3) or normalised (T, 3, H, W)), frames left to right."""
    frames = [c if (np.asarray(c).ndim == 4 and np.asarray(c).shape[-1] == 3) else denormalize(c) for c in clips]
    ncols = min(max(len(f) for f in frames), max_frames)
    fig, axes = _fig(1.0 * ncols + 1, 1.1 * len(frames) + 0.3, ncols=ncols, nrows=len(frames))
    for r, (f, title) in enumerate(zip(frames, titles)):
        for c in range(ncols):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(f):
                ax.imshow(f[c])
        axes[r, 0].set_title(title, loc="left", fontsize=9)
    _save(fig, path)
    return fig


def plot_heatmap(matrix: pd.DataFrame, path=None, title: str = "", center: float | None = None,
                 cmap: str = "viridis", label: str = "top-1 (%)"):
    """Cross-evaluation (rows = trained at, columns = evaluated at) or TFD heat map (Fig. 1/2)."""
    import seaborn as sns

    fig, ax = _fig(1.0 + 0.75 * max(len(matrix.columns), 3), 1.2 + 0.55 * max(len(matrix), 2))
    sns.heatmap(matrix.astype(float), annot=True, fmt=".1f", cmap=cmap, center=center, ax=ax[0, 0],
                cbar_kws={"label": label})
    ax[0, 0].set_xlabel("evaluated at (frames)")
    ax[0, 0].set_ylabel("model")
    ax[0, 0].set_title(title)
    _save(fig, path)
    return fig


def plot_acc_vs_gmacs(df: pd.DataFrame, path=None, title: str = "", st_label: str = "ST"):
    """Accuracy vs GMACs per clip (Fig. 1): one line per model over its evaluated frame counts,
    plus the ST curve (each model at its own count, dashed) where ``trained`` marks it."""
    import seaborn as sns

    fig, ax = _fig(6.5, 4.2)
    ax = ax[0, 0]
    d = df.dropna(subset=["gmacs", "top1"])
    sns.lineplot(data=d, x="gmacs", y="top1", hue="method", hue_order=list(dict.fromkeys(d["method"])),
                 marker="o", ax=ax, sort=True)
    if "trained" in d.columns:
        st = d[d["trained"].astype(bool) & d["method"].str.startswith("ST-")].sort_values("gmacs")
        if len(st) > 1:
            ax.plot(st["gmacs"], st["top1"], "k--", lw=1.5, label=st_label)
            ax.legend()
    for _, r in d.iterrows():
        ax.annotate(f"{int(r['frames'])}F", (r["gmacs"], r["top1"]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ax.set_xlabel("GMACs per clip (paper: 'GFLOPs')")
    ax.set_ylabel("top-1 (%)")
    ax.set_title(title or "accuracy vs computation")
    _save(fig, path)
    return fig


def plot_bn_stats(df: pd.DataFrame, path=None, title: str = ""):
    """Channel-averaged BN running mean / variance per layer for several models (Fig. 3).

    ``df``: :func:`ffn_core.analysis.tables.bn_statistics` rows with a ``model`` column."""
    import seaborn as sns

    fig, axes = _fig(10, 3.6, ncols=2)
    for ax, stat, name in zip(axes[0], ("mean", "var"), ("running mean μ", "running variance σ²")):
        sns.lineplot(data=df, x="index", y=stat, hue="model", marker="o", ax=ax)
        ax.set_xlabel("BN layer (order within the stage)")
        ax.set_ylabel(f"channel-averaged {name}")
    fig.suptitle(title or "BN statistics differ between frame counts")
    _save(fig, path)
    return fig


def plot_accuracy_lines(df: pd.DataFrame, path=None, title: str = "", hue: str = "method",
                        trained_range: tuple | None = None):
    """Top-1 vs evaluated frame count, one line per ``hue`` (Fig. 8 / Tables 6-7); the trained range
    is shaded so out-of-range counts stand out."""
    import seaborn as sns

    fig, ax = _fig(7, 4.2)
    ax = ax[0, 0]
    d = df.dropna(subset=["top1"])
    sns.lineplot(data=d, x="frames", y="top1", hue=hue, hue_order=list(dict.fromkeys(d[hue])), marker="o", ax=ax)
    if trained_range:
        ax.axvspan(trained_range[0], trained_range[1], color="0.9", zorder=0, label="trained range")
    ax.set_xlabel("inference frames")
    ax.set_ylabel("top-1 (%)")
    ax.set_title(title)
    _save(fig, path)
    return fig


def plot_grouped_bars(df: pd.DataFrame, path=None, title: str = "", label: str = "method"):
    """Top-1 per evaluated frame count as grouped bars, one bar per row label (Tables 1 and 4)."""
    import seaborn as sns

    d = df.dropna(subset=["top1"]).copy()
    d["label"] = d["method"] + np.where(d["spec"].astype(str) != "", " " + d["spec"].astype(str), "")
    fig, ax = _fig(max(6.0, 0.55 * d["label"].nunique() * max(d["frames"].nunique(), 1) / 2 + 3), 4.2)
    sns.barplot(data=d, x="frames", y="top1", hue="label", ax=ax[0, 0])
    ax[0, 0].set_xlabel("inference frames")
    ax[0, 0].set_ylabel("top-1 (%)")
    ax[0, 0].legend(fontsize=7, ncols=2)
    ax[0, 0].set_title(title)
    _save(fig, path)
    return fig


def plot_cascade(curves: Mapping[str, pd.DataFrame], points: Mapping[str, pd.DataFrame], path=None,
                 title: str = "", group_of: Mapping[str, str] | None = None, dashed: Sequence[str] = ()):
    """Cascade accuracy vs mean GMACs over τ (lines) against single-frame-count points (markers).

    ``group_of`` maps a curve name to the points name that shares its colour (e.g. every chain of
    "FFN" in FFN's colour); curves named in ``dashed`` are drawn dashed."""
    fig, ax = _fig(6.5, 4.2)
    ax = ax[0, 0]
    group_of = dict(group_of or {})
    colors = {name: f"C{i}" for i, name in enumerate(dict.fromkeys(
        [*points, *(group_of.get(n, n) for n in curves)]))}
    for name, c in curves.items():
        c = c.sort_values("mean_gmacs")
        ax.plot(c["mean_gmacs"], c["top1"], "--" if name in dashed else "-", marker=".",
                color=colors[group_of.get(name, name)], label=f"{name} cascade (τ from 0 to 1)")
    for name, p in points.items():
        ax.scatter(p["gmacs"], p["top1"], s=60, marker="s", zorder=3, color=colors[name],
                   label=f"{name}, one frame count")
        for _, r in p.iterrows():
            ax.annotate(f"{int(r['frames'])}F", (r["gmacs"], r["top1"]), fontsize=8, xytext=(4, -10),
                        textcoords="offset points")
    ax.set_xlabel("mean GMACs per clip")
    ax.set_ylabel("top-1 (%)")
    ax.legend(fontsize=8)
    ax.set_title(title or "confidence-cascaded inference")
    _save(fig, path)
    return fig


def plot_cascade_results(curves: pd.DataFrame, points: pd.DataFrame, path=None, title: str = ""):
    """:func:`plot_cascade` of ``inference.cascade_tables`` output: one line per (model, chain), the
    chain picked on held-out clips marked "picked", one set of single-count points per model."""
    keys = [k for k in ("model", "chain", "picked") if k in curves.columns]
    lines, group_of, dashed = {}, {}, []
    for key, c in curves.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        parts = dict(zip(keys, key))
        name = " ".join(str(parts[k]) for k in ("model", "chain") if k in parts)
        many = "chain" in parts and curves.loc[curves["model"] == parts["model"], "chain"].nunique() > 1
        name += " (picked on held-out)" if many and bool(parts.get("picked")) else ""
        lines[name], group_of[name] = c, parts["model"]
        if many and not bool(parts.get("picked")):
            dashed.append(name)
    pts = {m: g for m, g in points.groupby("model", sort=False)}
    return plot_cascade(lines, pts, path, title, group_of=group_of, dashed=dashed)


def plot_class_probs(probs: Mapping[str, np.ndarray], class_names: Sequence[str], label: int | None = None,
                     path=None, title: str = "", top: int = 10):
    """Per-class probabilities of one video for several models side by side (widget panel)."""
    names = list(probs)
    fig, axes = _fig(4.2 * len(names), 3.4, ncols=len(names))
    for ax, name in zip(axes[0], names):
        p = np.asarray(probs[name])
        order = np.argsort(-p)[:top]
        colors = ["tab:green" if i == label else "tab:blue" for i in order]
        ax.barh([class_names[i] for i in order][::-1], p[order][::-1], color=colors[::-1])
        ax.set_xlim(0, 1)
        ax.set_title(name, fontsize=10)
        ax.tick_params(axis="y", labelsize=7)
    fig.suptitle(title)
    _save(fig, path)
    return fig
