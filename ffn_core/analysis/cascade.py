"""Confidence-cascaded inference with one frame-flexible model (our addition; not in the paper).

A video is first classified with the fewest frames; only when the top class probability is
below a threshold τ is it classified again with the next frame count, and so on up to the
largest. A sample pays the GMACs of every stream it ran (frames are re-sampled per count, no
feature is reused), so

    cost(τ) = mean_i  Σ_{k <= stop_i(τ)} GMACs(T_k),      acc(τ) = mean_i [ŷ_i(T_{stop_i}) = y_i].

τ = 0 always stops at the lowest count; τ = 1 always runs every count (special-cased: a float32
softmax can round to exactly 1.0, which would otherwise stop early). One FFN checkpoint makes
this possible because it is accurate at every count; with ST it needs one model per count. The
original FFN code has no cascade.

**Which counts to chain, and τ**, are chosen on held-out clips, never on the reported validation
set (:func:`select_chain`): every chain that ends at the highest count is a candidate (for 4/8/16:
4→8→16, 8→16, 4→16), and the (chain, τ) with the best held-out accuracy among those cheaper than
running the highest count alone is kept. Every sample that does not exit at a stream pays for it
too, so a cheap but weak first stream (4 frames here) can cost more than it saves.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["cascade_curve", "single_stream_points", "cheapest_matching", "default_taus", "candidate_chains",
           "select_chain", "chain_name"]


def default_taus(n: int = 21) -> np.ndarray:
    """``n`` thresholds from 0 to 1 inclusive, denser near 1 where confident exits change most."""
    if n < 2:
        raise ValueError(f"n={n}: expected at least 2 thresholds (0 and 1)")
    lin = np.linspace(0.0, 1.0, n)
    return np.unique(np.round(1.0 - (1.0 - lin) ** 2, 6))


def _check_inputs(probs_by_t: Mapping[int, np.ndarray], labels: np.ndarray,
                  gmacs_by_t: Mapping[int, float]) -> tuple[list[int], np.ndarray, np.ndarray]:
    if not probs_by_t:
        raise ValueError("probs_by_t is empty: expected {frame count: (N, C) probabilities}")
    ts = sorted(int(t) for t in probs_by_t)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    n = labels.shape[0]
    stack = []
    for t in ts:
        p = np.asarray(probs_by_t[t], dtype=np.float64)
        if p.ndim != 2 or p.shape[0] != n:
            raise ValueError(f"probs_by_t[{t}] has shape {p.shape}: expected (N={n}, C) like labels")
        if stack and p.shape[1] != stack[0].shape[1]:
            raise ValueError(f"probs_by_t[{t}] has {p.shape[1]} classes, probs_by_t[{ts[0]}] has "
                             f"{stack[0].shape[1]}")
        if t not in gmacs_by_t:
            raise ValueError(f"gmacs_by_t has no entry for frame count {t} (have {sorted(gmacs_by_t)})")
        stack.append(p)
    costs = np.array([float(gmacs_by_t[t]) for t in ts])
    return ts, np.stack(stack), costs  # (K, N, C)


def cascade_curve(probs_by_t: Mapping[int, np.ndarray], labels: Sequence[int],
                  gmacs_by_t: Mapping[int, float], taus: Sequence[float] | None = None) -> pd.DataFrame:
    """Accuracy and mean GMACs of the cascade for every threshold τ.

    Args:
        probs_by_t: ``{T: probs (N, C)}`` softmax outputs for the same N samples in the same order
            (e.g. from ``ffn_core.engine.predict`` at each trained frame count).
        labels: ``(N,)`` integer labels.
        gmacs_by_t: ``{T: GMACs of one clip at T}``.
        taus: thresholds in [0, 1]; default :func:`default_taus`. 0 and 1 are always included.

    Returns:
        DataFrame with one row per τ (ascending): ``tau, top1 (%), mean_gmacs`` and
        ``exit_T<T>`` (fraction of samples that stopped at each count).
    """
    ts, probs, costs = _check_inputs(probs_by_t, labels, gmacs_by_t)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    taus = default_taus() if taus is None else np.asarray(taus, dtype=np.float64)
    if np.any((taus < 0) | (taus > 1)):
        raise ValueError(f"taus must lie in [0, 1]; got {taus.min()}..{taus.max()}")
    taus = np.unique(np.concatenate([taus, [0.0, 1.0]]))
    conf = probs.max(axis=2)                      # (K, N)
    correct = probs.argmax(axis=2) == labels[None]  # (K, N)
    cum_cost = np.cumsum(costs)                   # cost when stopping at stream k
    k_count, n = conf.shape
    rows = []
    for tau in taus:
        if tau >= 1.0:
            stop = np.full(n, k_count - 1)
        else:
            confident = conf >= tau
            confident[-1] = True                  # the last stream always answers
            stop = confident.argmax(axis=0)       # first confident stream
        row = {"tau": float(tau),
               "top1": 100.0 * float(correct[stop, np.arange(n)].mean()) if n else float("nan"),
               "mean_gmacs": float(cum_cost[stop].mean()) if n else float("nan")}
        for k, t in enumerate(ts):
            row[f"exit_T{t}"] = float((stop == k).mean()) if n else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def single_stream_points(probs_by_t: Mapping[int, np.ndarray], labels: Sequence[int],
                         gmacs_by_t: Mapping[int, float]) -> pd.DataFrame:
    """Top-1 (%) and GMACs of running exactly one frame count: the points the cascade competes with."""
    ts, probs, costs = _check_inputs(probs_by_t, labels, gmacs_by_t)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    acc = (probs.argmax(axis=2) == labels[None]).mean(axis=1) * 100.0
    return pd.DataFrame({"frames": ts, "top1": acc, "gmacs": costs})


def cheapest_matching(curve: pd.DataFrame, target_top1: float, tol: float = 0.0) -> dict | None:
    """The lowest-cost cascade row whose top-1 is >= ``target_top1 - tol``; None if none is."""
    ok = curve[curve["top1"] >= target_top1 - tol]
    if ok.empty:
        return None
    row = ok.sort_values(["mean_gmacs", "tau"]).iloc[0]
    return {k: (float(v) if isinstance(v, (int, float, np.number)) else v) for k, v in row.items()}


def chain_name(chain: Sequence[int]) -> str:
    """``(8, 16)`` -> ``"8→16"``."""
    return "→".join(str(int(t)) for t in chain)


def candidate_chains(frames: Sequence[int]) -> list[tuple[int, ...]]:
    """Every sorted chain of at least two of ``frames`` that ends at the highest count, longest first."""
    ts = sorted({int(t) for t in frames})
    if len(ts) < 2:
        raise ValueError(f"frames={ts}: a cascade needs at least two frame counts")
    low, top = ts[:-1], ts[-1]
    chains = [tuple(t for k, t in enumerate(low) if mask >> k & 1) + (top,) for mask in range(1, 2 ** len(low))]
    return sorted(chains, key=lambda c: (-len(c), c))


def select_chain(probs_by_t: Mapping[int, np.ndarray], labels: Sequence[int], gmacs_by_t: Mapping[int, float],
                 taus: Sequence[float] | None = None) -> tuple[dict, pd.DataFrame]:
    """Pick the chain and τ on held-out predictions (never on the reported validation set).

    The budget is the cost of running the highest count alone. For each :func:`candidate_chains`
    chain, the τ with the highest held-out top-1 among those that cost less than the budget (ties:
    the cheaper); the picked chain is the one with the highest such top-1 (ties: cheaper, then
    longer). τ = 0 always fits the budget, so every chain has a point.

    Returns ``(choice, table)``: ``choice`` = ``{chain, name, tau, top1, mean_gmacs, target_top1,
    target_gmacs, reaches}`` (held-out numbers; ``reaches``: top-1 >= the highest count's) and
    one row per candidate chain (``tau, top1, mean_gmacs, reaches, chosen``).
    """
    ts = sorted(int(t) for t in probs_by_t)
    points = single_stream_points(probs_by_t, labels, gmacs_by_t).set_index("frames")
    target, budget = float(points.loc[ts[-1], "top1"]), float(points.loc[ts[-1], "gmacs"])
    rows = []
    for chain in candidate_chains(ts):
        curve = cascade_curve({t: probs_by_t[t] for t in chain}, labels, gmacs_by_t, taus)
        fits = curve[curve["mean_gmacs"] < budget * (1 - 1e-9)]
        best = fits.sort_values(["top1", "mean_gmacs"], ascending=[False, True], kind="stable").iloc[0]
        rows.append({"chain": chain_name(chain), "length": len(chain), "tau": float(best["tau"]),
                     "top1": float(best["top1"]), "mean_gmacs": float(best["mean_gmacs"]),
                     "reaches": bool(best["top1"] >= target)})
    table = pd.DataFrame(rows)
    k = table.assign(neg_len=-table["length"]).sort_values(["top1", "mean_gmacs", "neg_len"],
                                                             ascending=[False, True, True], kind="stable").index[0]
    pick = table.loc[k]
    choice = {"chain": candidate_chains(ts)[k], "name": pick["chain"], "tau": pick["tau"], "top1": pick["top1"],
              "mean_gmacs": pick["mean_gmacs"], "target_top1": target, "target_gmacs": budget,
              "reaches": bool(pick["reaches"])}
    table["chosen"] = table.index == k
    return choice, table
