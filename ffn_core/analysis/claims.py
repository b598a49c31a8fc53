"""The paper's claims, checked against this run's numbers (used by ``07_report``).

Each check reads the long results tables the notebooks wrote (:data:`tables.RESULT_COLUMNS`) and
returns a :class:`Claim`: the claim, the paper's evidence, ours, and a verdict computed from the
numbers — ``True`` (holds), ``False`` (does not hold, with by how much) or ``None`` (not measured:
the notebook that produces the numbers was not run). Thresholds are stated in each claim's text.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Mapping

import numpy as np
import pandas as pd

from .cascade import cheapest_matching

__all__ = ["Claim", "check_claims", "CHECKS"]

TOL = 1.0  # points of top-1 treated as noise where a claim says "about as good"


def _gap(a: float, b: float) -> float:
    """``a - b`` in points of top-1, rounded to 1e-6: accuracies are counts over N clips, and their float
    difference must not decide a verdict at a threshold (63.9 - 64.9 = -1.0000000000000142 < -1)."""
    return round(float(a) - float(b), 6)


@dataclass
class Claim:
    id: str
    claim: str
    paper: str
    ours: str
    holds: bool | None
    source: str

    @property
    def verdict(self) -> str:
        return {True: "holds", False: "**does not hold**", None: "not measured"}[self.holds]

    def to_dict(self) -> dict:
        return {**asdict(self), "verdict": self.verdict}


def _acc(df: pd.DataFrame, method: str, t: int, spec: str | None = None) -> float:
    """Top-1 of (method[, spec]) at t frames; NaN if absent."""
    if df is None or df.empty:
        return float("nan")
    sel = df[(df["method"] == method) & (df["frames"] == t)]
    if spec is not None:
        sel = sel[sel["spec"].astype(str) == spec]
    return float(sel["top1"].iloc[0]) if len(sel) else float("nan")


def _trained_frames(df: pd.DataFrame, prefix: str = "ST-") -> list[int]:
    if df is None or df.empty:
        return []
    names = df["method"][df["method"].str.fullmatch(prefix + r"\d+")].unique()
    return sorted(int(n[len(prefix):]) for n in names)


def _missing(cid: str, claim: str, paper: str, source: str, what: str) -> Claim:
    return Claim(cid, claim, paper, f"no data ({what})", None, source)


def _f(x: float) -> str:
    return "–" if np.isnan(x) else f"{x:.2f}"


# ---------------------------------------------------------------------------------------------
def tfd(r: Mapping) -> Claim:
    cross = r.get("cross_eval")
    st = _trained_frames(cross)
    claim = f"TFD: the ST model trained at the most frames loses > {TOL:g} points at the fewest frames vs the ST model trained there"
    paper = "ST-16 at 4F = 20.60% vs ST-4 = 39.71% (Table 6)"
    if len(st) < 2:
        return _missing("tfd", claim, paper, "02", "run 02_baseline_tfd with >= 2 frame counts")
    lo, hi = st[0], st[-1]
    x, y = _acc(cross, f"ST-{hi}", lo), _acc(cross, f"ST-{lo}", lo)
    return Claim("tfd", claim, paper, f"ST-{hi} at {lo}F = {_f(x)}% vs ST-{lo} = {_f(y)}% ({x - y:+.2f})",
                 bool(_gap(x, y) < -TOL), "02")


def nearby(r: Mapping) -> Claim:
    cross = r.get("cross_eval")
    st = _trained_frames(cross)
    claim = f"Nearby alleviation: the H-trained model's accuracy rises as the inference count approaches H (each step down <= {TOL:g})"
    paper = "ST-16 at 4/6/8/10/12/14/16F: 20.60/30.23/37.36/42.72/45.97/47.49/48.55 (Table 6)"
    if not st:
        return _missing("nearby", claim, paper, "02", "run 02_baseline_tfd")
    hi = st[-1]
    row = cross[(cross["method"] == f"ST-{hi}") & (cross["frames"] <= hi)].sort_values("frames")
    if len(row) < 3:
        return _missing("nearby", claim, paper, "02", "fewer than 3 inference counts <= H")
    accs = row["top1"].to_numpy()
    worst = min(_gap(b, a) for a, b in zip(accs[:-1], accs[1:]))
    seq = "/".join(_f(a) for a in accs)
    return Claim("nearby", claim, paper, f"ST-{hi} at {'/'.join(map(str, row['frames']))}F: {seq} "
                 f"(largest drop {min(worst, 0):+.2f})", bool(worst >= -TOL), "02")


def bn_shift(r: Mapping) -> Claim:
    bn = r.get("bn_stats")
    claim = "Normalization shifting: stage-4 BN running statistics of the L- and H-trained models differ (mean relative difference of σ² > 10%)"
    paper = "Fig. 3: the channel-averaged μ and σ² curves of TSM-4F and TSM-16F differ"
    if bn is None or bn.empty or bn["model"].nunique() < 2:
        return _missing("bn_shift", claim, paper, "02", "run 02_baseline_tfd")
    models = list(dict.fromkeys(bn["model"]))
    a = bn[bn["model"] == models[0]].set_index("index")
    b = bn[bn["model"] == models[-1]].set_index("index")
    idx = a.index.intersection(b.index)
    rel_var = float(np.mean(np.abs(a.loc[idx, "var"] - b.loc[idx, "var"]) /
                            np.maximum(np.abs(b.loc[idx, "var"]), 1e-8)))
    rel_mu = float(np.mean(np.abs(a.loc[idx, "mean"] - b.loc[idx, "mean"]) /
                           np.maximum(np.abs(b.loc[idx, "mean"]), 1e-8)))
    return Claim("bn_shift", claim, paper, f"{models[0]} vs {models[-1]} over {len(idx)} layers: "
                 f"σ² differs by {100 * rel_var:.1f}%, μ by {100 * rel_mu:.1f}% on average",
                 bool(rel_var > 0.10), "02")


def _ffn_vs_st(r: Mapping, method: str = "FFN"):
    ffn, cross = r.get("ffn"), r.get("cross_eval")
    if ffn is None or ffn.empty or cross is None or cross.empty:
        return None
    ffn = ffn[ffn["method"] == method]
    trained = sorted(ffn[ffn["trained"].astype(bool)]["frames"].unique())
    diffs = {}
    for t in trained:
        a, b = _acc(ffn, method, int(t)), _acc(cross, f"ST-{int(t)}", int(t))
        if not np.isnan(a) and not np.isnan(b):
            diffs[int(t)] = (a, b, _gap(a, b))
    return diffs or None


def _ffn_start(r: Mapping, method: str = "FFN") -> str:
    """``"started from ST-16, +5 epochs: "`` when 03's ``method`` rows come from an ``init_from`` run
    (``ffn_scratch: false``), else ``""``."""
    ffn = r.get("ffn")
    if ffn is None or ffn.empty or "run" not in ffn.columns:
        return ""
    sel = ffn[ffn["method"] == method]
    m = sel["run"].astype(str).str.extract(r"_init-st(\d+)_e(\d+)$").dropna()
    return f"started from ST-{m.iloc[0, 0]}, +{m.iloc[0, 1]} epochs: " if len(m) else ""


def ffn_near_st(r: Mapping) -> Claim:
    claim = f"FFN >= ST - {TOL:g} at every trained frame count (one model instead of one per count)"
    paper = "FFN - ST = +3.14/+2.57/+2.24 at 4/8/16F (Table 1)"
    d = _ffn_vs_st(r)
    if not d:
        return _missing("ffn_near_st", claim, paper, "02+03", "run 02 and 03")
    ours = _ffn_start(r) + ", ".join(f"{t}F: {a:.2f} vs {b:.2f} ({g:+.2f})" for t, (a, b, g) in d.items())
    worst = min(g for _, _, g in d.values())
    return Claim("ffn_near_st", claim, paper, ours + ("" if worst >= -TOL else f"; short by {-worst - TOL:.2f} beyond the tolerance"),
                 bool(worst >= -TOL), "02+03")


def ffn_init_near_st(r: Mapping) -> Claim | None:
    """Ours: the FFN of 03 started from ST-H (``init_epochs``), against the same ST models. ``None``
    (not applicable) when that run is 03's only FFN (``ffn_scratch: false``): :func:`ffn_near_st`
    checks it then."""
    ffn = r.get("ffn")
    methods = [] if ffn is None or ffn.empty else [m for m in ffn["method"].unique() if str(m).startswith("FFN (init")]
    if not methods and _ffn_start(r):
        return None
    claim = f"FFN started from ST-H (ours, 03 init_epochs) >= ST - {TOL:g} at every trained frame count"
    paper = "the paper's FFN starts from ImageNet weights (Table 1: +3.14/+2.57/+2.24 over ST)"
    d = _ffn_vs_st(r, methods[0]) if methods else None
    if not d:
        return _missing("ffn_init_near_st", claim, paper, "02+03", "03 with init_epochs > 0")
    ours = f"{methods[0]}: " + ", ".join(f"{t}F: {a:.2f} vs {b:.2f} ({g:+.2f})" for t, (a, b, g) in d.items())
    return Claim("ffn_init_near_st", claim, paper, ours, bool(min(g for _, _, g in d.values()) >= -TOL), "02+03")


def ffn_beats_st(r: Mapping) -> Claim:
    claim = "FFN > ST at every trained frame count (the paper's stronger claim)"
    paper = "+3.14/+2.57/+2.24 at 4/8/16F (Table 1); same sign on 4 architectures and 4 datasets (Tables 8, 9)"
    d = _ffn_vs_st(r)
    if not d:
        return _missing("ffn_beats_st", claim, paper, "02+03", "run 02 and 03")
    losing = [f"{t}F ({g:+.2f})" for t, (_, _, g) in d.items() if g <= 0]
    ours = ", ".join(f"{t}F: {g:+.2f}" for t, (_, _, g) in d.items())
    return Claim("ffn_beats_st", claim, paper, ours + (f"; not above ST at {', '.join(losing)}" if losing else ""),
                 not losing, "02+03")


def ffn_vs_htrained(r: Mapping) -> Claim:
    ffn, cross = r.get("ffn"), r.get("cross_eval")
    claim = "FFN removes TFD: at the fewest frames it is far (> 5 points) above the model trained at the most frames"
    paper = "4F: FFN 42.85 vs TSM trained at 16F 20.60 (+22.25, Table 1)"
    st = _trained_frames(cross)
    if ffn is None or ffn.empty or not st:
        return _missing("ffn_vs_h", claim, paper, "02+03", "run 02 and 03")
    lo = int(ffn[ffn["trained"].astype(bool)]["frames"].min())
    a, b = _acc(ffn, "FFN", lo), _acc(cross, f"ST-{st[-1]}", lo)
    return Claim("ffn_vs_h", claim, paper, f"{lo}F: FFN {_f(a)} vs ST-{st[-1]} {_f(b)} ({a - b:+.2f})",
                 bool(_gap(a, b) > 5.0), "02+03")


def overhead(r: Mapping) -> Claim:
    ffn, cross = r.get("ffn_costs"), r.get("st_costs")
    claim = "FFN costs < 1% more GMACs than one ST model at each frame count (parameters reported beside)"
    paper = "GFLOPs 32.7 -> 32.8 (8F), 65.4 -> 65.5 (16F); params 25.6M -> 25.7M (Table 1)"
    if ffn is None or cross is None or ffn.empty or cross.empty:
        return _missing("overhead", claim, paper, "02+03", "run 02 and 03")
    if "model" in ffn.columns:  # 03 may list a second FFN (init ST-H): same architecture, same costs
        ffn = ffn[ffn["model"] == ffn["model"].iloc[0]]
    rows = []
    worst = 0.0
    for _, f in ffn.iterrows():
        s = cross[cross["frames"] == f["frames"]]
        if len(s):
            over = f["gmacs"] / float(s["gmacs"].iloc[0]) - 1
            worst = max(worst, over)
            rows.append(f"{int(f['frames'])}F +{100 * over:.2f}%")
    if not rows:
        return _missing("overhead", claim, paper, "02+03", "no common frame count")
    p = float(ffn["params"].iloc[0]) / float(cross["params"].iloc[0]) - 1
    return Claim("overhead", claim, paper, f"GMACs {', '.join(rows)}; parameters +{100 * p:.2f}% over one ST model",
                 bool(worst < 0.01), "02+03")


def baselines(r: Mapping) -> Claim:
    b = r.get("baselines")
    claim = "FFN is at least as accurate as every Table 1 baseline at every trained frame count"
    paper = "FFN is best in every column of Table 1 (Mixed, Proportional, Fine-tuning, Ensemble, ST)"
    if b is None or b.empty or "FFN" not in set(b["method"]):
        return _missing("baselines", claim, paper, "05", "run 05_baselines")
    frames = sorted(b[(b["method"] == "FFN") & b["trained"].astype(bool)]["frames"].unique())
    beaten = []
    for t in frames:
        ffn = _acc(b, "FFN", int(t))
        others = b[(b["frames"] == t) & ~b["method"].astype(str).str.startswith("FFN")]
        for _, o in others.iterrows():
            if o["top1"] > ffn:
                beaten.append((o["top1"] - ffn, f"{o['method']} {o['spec']}".strip() +
                               f" at {int(t)}F (+{o['top1'] - ffn:.2f})"))
    if not beaten:
        return Claim("baselines", claim, paper, "FFN best everywhere", True, "05")
    beaten.sort(key=lambda b: -b[0])
    worst = "; ".join(text for _, text in beaten[:4]) + ("; ..." if len(beaten) > 4 else "")
    return Claim("baselines", claim, paper, f"beaten in {len(beaten)} (baseline, count) pairs; largest: {worst}",
                 False, "05")


def ablation(name: str, paper_gap: str) -> Callable[[Mapping], Claim]:
    def check(r: Mapping) -> Claim:
        a = r.get("ablations")
        claim = f"FFN {name} is worse than full FFN on average over the trained counts"
        if a is None or a.empty or name not in set(a["method"]) or "FFN" not in set(a["method"]):
            return _missing(f"abl_{name}", claim, paper_gap, "04", "run 04_ablations")
        full = a[(a["method"] == "FFN") & (a["spec"].astype(str) == "")]
        var = a[a["method"] == name]
        m = full.merge(var, on="frames", suffixes=("_ffn", "_abl"))
        gaps = m["top1_abl"] - m["top1_ffn"]
        per = "/".join(f"{g:+.2f}" for g in gaps)
        return Claim(f"abl_{name}", claim, paper_gap, f"{name} - FFN at {'/'.join(map(str, m['frames']))}F: {per} "
                     f"(mean {gaps.mean():+.2f})", bool(gaps.mean() < 0), "04")
    return check


def main_ffn_rows(a: pd.DataFrame, r: Mapping) -> pd.DataFrame:
    """Rows of 06's any-frame table for the main FFN (the frames of 03's FFN, else the first FFN(3))."""
    if a is None or a.empty:
        return pd.DataFrame()
    rows = a[a["method"].str.fullmatch(r"FFN\(\d+\)")]
    ffn = r.get("ffn")
    if ffn is not None and not ffn.empty:
        return rows[rows["spec"] == ffn["spec"].iloc[0]]
    rows = rows[rows["method"] == "FFN(3)"]
    return rows[rows["spec"] == rows["spec"].iloc[0]] if len(rows) else rows


def sequences(r: Mapping) -> Claim:
    a = r.get("any_frame")
    claim = "A 4th sequence helps at the count it adds: FFN(4) >= FFN(3) at 12F"
    paper = "12F: FFN(4) 49.77 vs FFN(3) 48.90 (Table 2)"
    main = main_ffn_rows(a, r)
    if main.empty or "FFN(4)" not in set(a["method"]):
        return _missing("sequences", claim, paper, "06", "run 06_any_frame with 3 and 4 sequences")
    base = set(map(int, main["spec"].iloc[0].split("/")))
    four = [sp for sp in a[a["method"] == "FFN(4)"]["spec"].unique() if base < set(map(int, sp.split("/")))]
    extra = sorted(set(map(int, four[0].split("/"))) - base) if four else []
    if not extra:
        return _missing("sequences", claim, paper, "06", "no FFN(4) that adds one count to the main FFN")
    t = extra[0]
    x, y = _acc(a, "FFN(4)", t, four[0]), _acc(main, main["method"].iloc[0], t)
    return Claim("sequences", claim.replace("12F", f"{t}F"), paper, f"{t}F: FFN(4) {_f(x)} vs FFN(3) {_f(y)} ({x - y:+.2f})",
                 bool(x >= y), "06")


def any_frame(r: Mapping) -> Claim:
    a = r.get("any_frame")
    claim = "Any-frame inference: FFN(3) >= ST at every count where an ST model exists, including untrained ones"
    paper = "Fig. 8 / Table 6: FFN - ST = +0.12 ... +3.14 at 2-20F (all positive)"
    main = main_ffn_rows(a, r)
    if main.empty or "ST" not in set(a["method"]):
        return _missing("any_frame", claim, paper, "06", "run 02 and 06_any_frame")
    m = main.merge(a[a["method"] == "ST"], on="frames", suffixes=("_ffn", "_st"))
    if m.empty:
        return _missing("any_frame", claim, paper, "06", "no common frame count")
    g = m["top1_ffn"] - m["top1_st"]
    losing = [f"{int(t)}F ({d:+.2f})" for t, d in zip(m["frames"], g) if d < 0]
    return Claim("any_frame", claim, paper, f"FFN(3) - ST at {'/'.join(map(str, m['frames']))}F: "
                 + "/".join(f"{d:+.2f}" for d in g) + (f"; below ST at {', '.join(losing)}" if losing else ""),
                 not losing, "06")


def out_of_range(r: Mapping) -> Claim:
    a = r.get("any_frame")
    claim = "Out-of-range inference: FFN(3) >= the H-trained model at counts below / above the trained range"
    paper = "Fig. 8: FFN beats ST at 2F (+0.12), 18F (+2.35), 20F (+2.73)"
    main = main_ffn_rows(a, r)
    if main.empty or "H-trained" not in set(a["method"]):
        return _missing("out_of_range", claim, paper, "06", "run 06_any_frame")
    spec = main["spec"].iloc[0]
    lo, hi = min(map(int, spec.split("/"))), max(map(int, spec.split("/")))
    m = main.merge(a[a["method"] == "H-trained"], on="frames", suffixes=("_ffn", "_h"))
    m = m[(m["frames"] < lo) | (m["frames"] > hi)]
    if m.empty:
        return _missing("out_of_range", claim, paper, "06", "no out-of-range count evaluated")
    g = m["top1_ffn"] - m["top1_h"]
    return Claim("out_of_range", claim, paper, "FFN(3) - H-trained at " + ", ".join(
        f"{int(t)}F {d:+.2f}" for t, d in zip(m["frames"], g)), bool((g >= 0).all()), "06")


def cascade(r: Mapping) -> Claim:
    """On val, the cascade of the chain picked on held-out clips (06) reaches the highest count's
    top-1 at a lower mean cost at some τ; the evidence also gives the held-out τ's val result."""
    c, p, sel = r.get("cascade"), r.get("cascade_points"), r.get("cascade_selection")
    claim = "Cascade (ours): confidence-cascaded FFN reaches FFN's highest-count accuracy at lower mean GMACs"
    paper = "not in the paper (one FFN model makes it possible; the original code has no cascade)"
    if c is None or c.empty or p is None or p.empty:
        return _missing("cascade", claim, paper, "06", "run 06_any_frame")
    c, p = c[c["model"] == "FFN"], p[p["model"] == "FFN"]
    if "picked" in c.columns:
        c = c[c["picked"].astype(bool)]
    chain = f"{c['chain'].iloc[0]} " if "chain" in c.columns and len(c) else ""
    picked = ""
    if sel is not None and not sel.empty and "val_top1" in sel.columns:
        row = sel[(sel["model"] == "FFN") & sel["chosen"].astype(bool)]
        if len(row) and pd.notna(row["val_top1"].iloc[0]):
            row = row.iloc[0]
            picked = (f"; chain {row['chain']} and τ={row['calib_tau']:.3g} picked on held-out clips give on val "
                      f"{row['val_top1']:.2f}% at {row['val_gmacs']:.4g} GMACs")
    top = p.sort_values("frames").iloc[-1]
    hit = cheapest_matching(c, float(top["top1"]))
    if hit and hit["mean_gmacs"] < float(top["gmacs"]):
        return Claim("cascade", claim, paper, f"{chain}τ={hit['tau']:.3g}: {hit['top1']:.2f}% at {hit['mean_gmacs']:.4g} GMACs "
                     f"vs {int(top['frames'])}F {top['top1']:.2f}% at {top['gmacs']:.4g} "
                     f"({100 * (1 - hit['mean_gmacs'] / top['gmacs']):.0f}% cheaper){picked}", True, "06")
    cheaper = c[c["mean_gmacs"] < float(top["gmacs"])]
    best = cheaper["top1"].max() if len(cheaper) else float("nan")
    return Claim("cascade", claim, paper, f"{int(top['frames'])}F: {top['top1']:.2f}% at {top['gmacs']:.4g} GMACs; "
                 f"best {chain}cascade below that cost: {_f(best)}% (short by {float(top['top1']) - best:.2f}){picked}",
                 False, "06")


CHECKS: list[Callable[[Mapping], Claim]] = [
    tfd, nearby, bn_shift, ffn_near_st, ffn_init_near_st, ffn_beats_st, ffn_vs_htrained, overhead, baselines,
    ablation("w/o SN", "35.79/46.80/44.62 vs 42.85/48.20/50.79 (Table 4)"),
    ablation("w/o WA", "41.91/47.92/49.84 vs 42.85/48.20/50.79 (Table 4)"),
    ablation("w/o TD", "39.61/45.65/48.07 vs 42.85/48.20/50.79 (Table 4)"),
    ablation("w/o WS", "41.51/47.16/48.23 vs 42.85/48.20/50.79 (Table 4)"),
    sequences, any_frame, out_of_range, cascade,
]


def check_claims(results: Mapping[str, pd.DataFrame]) -> list[Claim]:
    """Run every check in :data:`CHECKS` on the results tables (keys as in ``report.load_results``);
    a check that returns ``None`` does not apply to this run and is left out."""
    from .architectures import table8_claims

    out = []
    for check in (*CHECKS, table8_claims):
        try:
            claim = check(results)
            if isinstance(claim, list):
                out.extend(claim)
            elif claim is not None:
                out.append(claim)
        except (KeyError, IndexError, ValueError) as e:  # malformed file: say so, don't hide the rest
            out.append(Claim(check.__name__, check.__name__, "", f"could not be checked ({type(e).__name__}: {e})",
                             None, "?"))
    return out
