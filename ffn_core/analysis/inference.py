"""Model-level analyses of the notebooks: BN statistics (Fig. 3), the confidence cascade, and what
the frame-count explorer widget needs (loaded models, per-T validation sets, GMACs)."""
from __future__ import annotations

from functools import lru_cache
from typing import Mapping, Sequence

import pandas as pd

from ffn_core.config import Config

from . import runs as R
from .cascade import cascade_curve, chain_name, default_taus, select_chain, single_stream_points
from .experiments import Exp
from .tables import bn_statistics

__all__ = ["bn_stats_table", "cascade_tables", "load_models", "val_dataset_factory", "gmacs_lookup"]


def bn_stats_table(exps: Sequence[Exp], which: str = "best", stage: str | None = "auto") -> pd.DataFrame:
    """:func:`tables.bn_statistics` of each experiment's model (column ``model`` = its method)."""
    from ffn_core.engine import load_checkpoint

    parts = []
    for e in exps:
        model, _ = load_checkpoint(R.checkpoint_of(e.run_dir, which), device="cpu")
        parts.append(bn_statistics(model, stage).assign(model=e.method))
    return pd.concat(parts, ignore_index=True)


def _system_predictions(ctx, by_t: Mapping[int, Exp], which: str, list_file=None) -> tuple[dict, dict, object]:
    probs, costs, labels = {}, {}, None
    for t, e in sorted(by_t.items()):
        preds = R.evaluate_runs({e.run_dir.name: e.run_dir}, [int(t)], ctx.cfg, which=which, list_file=list_file)
        probs[int(t)], labels = preds[e.run_dir.name][int(t)]
        costs[int(t)] = R.model_costs(e.run_dir, [int(t)], which=which)["gmacs"][int(t)]
    return probs, costs, labels


def cascade_tables(ctx, systems: Mapping[str, Mapping[int, Exp]], taus: Sequence[float] | None = None,
                   which: str = "best", calib_list=None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Cascade curves, single-count points and the held-out chain choice for several systems.

    ``systems``: ``{name: {T: experiment that answers at T}}`` — one FFN model for every T (``{4: ffn,
    8: ffn, 16: ffn}``) or one ST model per T. With ``calib_list`` (held-out clips, e.g. the
    synthetic ``calib.txt``) each system's chain and τ are picked on those clips
    (:func:`cascade.select_chain`); without one the full chain is used. Validation numbers never
    take part in the choice.

    Returns ``(curves, points, selection)``: curves on val with ``model``, ``chain`` and ``picked``
    (the full chain, plus the picked one when it differs); single-count points on val; and one row
    per system and candidate chain with its held-out numbers (``calib_*``) and, for the picked chain,
    val top-1 and GMACs at the held-out τ (``val_top1``, ``val_gmacs``).
    """
    taus = default_taus() if taus is None else taus
    curves, points, selection = [], [], []
    for name, by_t in systems.items():
        probs, costs, labels = _system_predictions(ctx, by_t, which)
        full = tuple(sorted(probs))
        if calib_list is not None:
            cprobs, _, clabels = _system_predictions(ctx, by_t, which, list_file=calib_list)
            choice, table = select_chain(cprobs, clabels, costs, taus)
            table = table.rename(columns={c: f"calib_{c}" for c in ("tau", "top1", "mean_gmacs")})
        else:
            choice = {"chain": full, "name": chain_name(full), "tau": float("nan")}
            table = pd.DataFrame([{"chain": choice["name"], "length": len(full), "chosen": True}])
        for chain in dict.fromkeys([full, choice["chain"]]):
            curve = cascade_curve({t: probs[t] for t in chain}, labels, costs, taus)
            curves.append(curve.assign(model=name, chain=chain_name(chain), picked=chain == choice["chain"]))
        if calib_list is not None:  # the picked τ is on the same grid: read its val point off the curve
            at = curves[-1].loc[curves[-1]["tau"] == choice["tau"]].iloc[0]
            table.loc[table["chosen"], ["val_top1", "val_gmacs"]] = [float(at["top1"]), float(at["mean_gmacs"])]
        selection.append(table.assign(model=name, calib=str(calib_list) if calib_list is not None else ""))
        points.append(single_stream_points(probs, labels, costs).assign(model=name))
    return (pd.concat(curves, ignore_index=True), pd.concat(points, ignore_index=True),
            pd.concat(selection, ignore_index=True))


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
