"""Model-level analyses of the notebooks: BN statistics (Fig. 3), the confidence cascade, and what
the frame-count explorer widget needs (loaded models, per-T validation sets, GMACs)."""
from __future__ import annotations

from functools import lru_cache
from typing import Mapping, Sequence

import pandas as pd

from ffn_core.config import Config

from . import runs as R
from .cascade import cascade_curve, default_taus, single_stream_points
from .experiments import Exp
from .tables import bn_statistics

__all__ = ["bn_stats_table", "cascade_tables", "load_models", "val_dataset_factory", "gmacs_lookup"]


def bn_stats_table(exps: Sequence[Exp], which: str = "best", stage: str | None = "layer4") -> pd.DataFrame:
    """:func:`tables.bn_statistics` of each experiment's model (column ``model`` = its method)."""
    from ffn_core.engine import load_checkpoint

    parts = []
    for e in exps:
        model, _ = load_checkpoint(R.checkpoint_of(e.run_dir, which), device="cpu")
        parts.append(bn_statistics(model, stage).assign(model=e.method))
    return pd.concat(parts, ignore_index=True)


def cascade_tables(ctx, systems: Mapping[str, Mapping[int, Exp]], taus: Sequence[float] | None = None,
                   which: str = "best") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cascade curves and single-count points for several systems.

    ``systems``: ``{name: {T: experiment that answers at T}}`` — one FFN model for every T (``{4: ffn,
    8: ffn, 16: ffn}``) or one ST model per T. Returns ``(curves, points)`` with a ``model`` column.
    """
    curves, points = [], []
    for name, by_t in systems.items():
        probs, costs, labels = {}, {}, None
        for t, e in sorted(by_t.items()):
            preds = R.evaluate_runs({e.run_dir.name: e.run_dir}, [int(t)], ctx.cfg, which=which)
            p, y = preds[e.run_dir.name][int(t)]
            probs[int(t)], labels = p, y
            costs[int(t)] = R.model_costs(e.run_dir, [int(t)], which=which)["gmacs"][int(t)]
        curves.append(cascade_curve(probs, labels, costs, default_taus() if taus is None else taus).assign(model=name))
        points.append(single_stream_points(probs, labels, costs).assign(model=name))
    return pd.concat(curves, ignore_index=True), pd.concat(points, ignore_index=True)


def load_models(exps: Mapping[str, Exp], which: str = "best") -> dict:
    """``{name: model in eval mode}`` (CPU) for the explorer."""
    from ffn_core.engine import load_checkpoint

    return {name: load_checkpoint(R.checkpoint_of(e.run_dir, which), device="cpu")[0] for name, e in exps.items()}


def val_dataset_factory(cfg: Config):
    """``T -> validation dataset sampled at T frames`` (cached per T)."""
    from ffn_core.data import build_dataset

    @lru_cache(maxsize=None)
    def factory(T: int):
        return build_dataset(cfg, "val", frames=(int(T),))

    return factory


def gmacs_lookup(models: Mapping[str, object], size: int):
    """``(name, T) -> GMACs`` of the loaded models (cached)."""
    from ffn_core.models import gmacs_per_clip

    @lru_cache(maxsize=None)
    def lookup(name: str, T: int) -> float:
        return gmacs_per_clip(models[name], int(T), size=size)

    return lookup
