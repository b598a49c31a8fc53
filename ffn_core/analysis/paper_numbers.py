"""The paper's reported numbers (Zhang et al., *Frame Flexible Network*, CVPR 2023) as data.

Every table is a long-format :class:`pandas.DataFrame` with the columns of :data:`COLUMNS`
(one row per method x evaluated frame count), the same shape our results files use, so the
report can put the two side by side (``ffn_core.analysis.report``).

Source: the paper's tables and figures (arXiv:2303.14817v1, main text and supplement; values that
the paper only shows in a plot carry ``approx=True``). All accuracies are top-1 % on
Something-Something V1 with TSM-ResNet-50 unless the table says otherwise; GFLOPs are the
paper's per-video "GFLOPs", which are multiply-accumulates (GMACs).
"""
from __future__ import annotations

import pandas as pd

__all__ = ["COLUMNS", "TABLES", "paper_table", "list_tables", "PAPER_GMACS", "FIG8_DELTA", "TABLE8", "table8_name"]

COLUMNS = ["table", "method", "spec", "params", "frames", "top1", "gmacs", "approx"]

#: TSM-R50 GFLOPs per video (Table 1) for ST/H-trained models and for FFN (+WA overhead).
PAPER_GMACS = {"ST": {4: 16.4, 8: 32.7, 16: 65.4}, "FFN": {4: 16.4, 8: 32.8, 16: 65.5}}

#: Fig. 8 inset: top-1 of TSM-FFN(3) minus ST at each inference frame count (2, 18, 20 are
#: outside the trained range 4..16).
FIG8_DELTA = {2: 0.12, 4: 3.14, 6: 2.84, 8: 2.57, 10: 1.50, 12: 1.19, 14: 2.46, 16: 2.24,
              18: 2.35, 20: 2.73}


def _rows(table: str, method: str, spec: str, params: str, accs: dict, gmacs: dict | None = None,
          approx: tuple = ()) -> list[dict]:
    gmacs = gmacs or {}
    return [dict(table=table, method=method, spec=spec, params=params, frames=int(t), top1=float(a),
                 gmacs=gmacs.get(t), approx=t in approx) for t, a in accs.items()]


def _lmh(values: tuple, frames: tuple = (4, 8, 16)) -> dict:
    return dict(zip(frames, values))


_ST, _FF = PAPER_GMACS["ST"], PAPER_GMACS["FFN"]
_ST3 = {t: round(3 * g, 1) for t, g in _ST.items()}


def _table1() -> list[dict]:
    t = "table1"
    r = []
    r += _rows(t, "H-trained", "16F", "25.6M", _lmh((20.60, 37.36, 48.55)), _ST)
    r += _rows(t, "Mixed", "ρ=0.50", "25.6M", _lmh((27.89, 41.07, 48.44)), _ST)
    r += _rows(t, "Mixed", "ρ=0.75", "25.6M", _lmh((30.43, 42.56, 47.81)), _ST)
    r += _rows(t, "Proportional", "ϱ=0.50", "25.6M", _lmh((37.56, 44.82, 45.37)), _ST)
    r += _rows(t, "Proportional", "ϱ=0.75", "25.6M", _lmh((32.06, 43.15, 47.14)), _ST)
    r += _rows(t, "Fine-tuning", "16F→4F", "25.6M", _lmh((39.95, 40.37, 28.96)), _ST)
    r += _rows(t, "Ensemble", "", "25.6×3M", _lmh((35.88, 46.25, 46.82)), _ST3)
    r += _rows(t, "ST", "", "25.6×3M", _lmh((39.71, 45.63, 48.55)), _ST)
    r += _rows(t, "FFN", "4/8/16", "25.7M", _lmh((42.85, 48.20, 50.79)), _FF)
    return r


def _table4() -> list[dict]:
    t = "table4"
    r = []
    r += _rows(t, "ST", "", "25.6×3M", _lmh((39.71, 45.63, 48.55)))
    r += _rows(t, "w/o SN", "", "25.7M", _lmh((35.79, 46.80, 44.62)))
    r += _rows(t, "w/o WA", "", "25.6M", _lmh((41.91, 47.92, 49.84)))
    r += _rows(t, "w/o TD", "", "25.7M", _lmh((39.61, 45.65, 48.07)))
    r += _rows(t, "w/o WS", "", "25.6×3M", _lmh((41.51, 47.16, 48.23)))
    r += _rows(t, "FFN", "", "25.7M", _lmh((42.85, 48.20, 50.79)))
    return r  # the paper reports no λ sweep (λ = 1 throughout)


def _table2() -> list[dict]:
    t, f = "table2", (4, 8, 12, 16)
    r = []
    r += _rows(t, "ST", "", "", _lmh((39.71, 45.63, 47.71, 48.55), f))
    r += _rows(t, "FFN(2)", "4/16", "", _lmh((41.69, 37.93, 48.10, 49.79), f))
    r += _rows(t, "FFN(3)", "4/8/16", "", _lmh((42.85, 48.20, 48.90, 50.79), f))
    r += _rows(t, "FFN(4)", "4/8/12/16", "", _lmh((43.40, 48.66, 49.77, 50.63), f))
    return r


def _table3() -> list[dict]:
    t, f = "table3", (4, 8, 16, 24)
    return (_rows(t, "ST", "", "25.6×4M", _lmh((39.71, 45.63, 48.55, 47.90), f))
            + _rows(t, "FFN(4)", "4/8/16/24", "25.7M", _lmh((41.28, 46.72, 49.79, 49.95), f)))


_F7 = (4, 6, 8, 10, 12, 14, 16)


def _table6() -> list[dict]:
    t = "table6"
    r = []
    r += _rows(t, "H-trained", "16F", "", _lmh((20.60, 30.23, 37.36, 42.72, 45.97, 47.49, 48.55), _F7))
    r += _rows(t, "ST", "", "", _lmh((39.71, 43.73, 45.63, 47.31, 47.71, 48.01, 48.55), _F7))
    r += _rows(t, "FFN", "v^M=8F", "", _lmh((42.85, 46.57, 48.20, 48.81, 48.90, 50.47, 50.79), _F7))
    r += _rows(t, "FFN", "v^M=10F", "", _lmh((43.10, 44.77, 47.81, 49.26, 49.63, 50.67, 51.12), _F7))
    r += _rows(t, "FFN", "v^M=12F", "", _lmh((42.92, 43.57, 46.82, 48.85, 49.73, 50.40, 50.79), _F7))
    return r


def _table7() -> list[dict]:
    t = "table7"
    r = []
    r += _rows(t, "H-trained", "16F", "", _lmh((20.60, 30.23, 37.36, 42.72, 45.97, 47.49, 48.55), _F7))
    r += _rows(t, "ST", "", "", _lmh((39.71, 43.73, 45.63, 47.31, 47.71, 48.01, 48.55), _F7))
    r += _rows(t, "FFN(2)", "4/16", "", _lmh((41.69, 42.07, 37.93, 46.11, 48.10, 49.37, 49.79), _F7))
    r += _rows(t, "FFN(3)", "4/8/16", "", _lmh((42.85, 46.57, 48.20, 48.81, 48.90, 50.47, 50.79), _F7))
    r += _rows(t, "FFN(4)", "4/8/12/16", "", _lmh((43.40, 46.51, 48.66, 48.92, 49.77, 50.11, 50.63), _F7))
    return r


def _fig2() -> list[dict]:
    """Fig. 1/2 + Supp. Fig. 9 (Nearby Alleviation): TSM trained at one count, evaluated at others.

    Only the diagonal (= ST) and the 16F row (Table 6) are exact; the rest was read off plots."""
    t, f = "fig2", (4, 8, 12, 16)
    r = []
    r += _rows(t, "ST-4", "4F", "", _lmh((39.71, 37.6, 29.9, 23.4), f), approx=(8, 12, 16))
    r += _rows(t, "ST-8", "8F", "", _lmh((36.2, 45.63, 45.1, 41.6), f), approx=(4, 12, 16))
    r += _rows(t, "ST-12", "12F", "", _lmh((27.6, 43.6, 47.71, 47.9), f), approx=(4, 8, 16))
    r += _rows(t, "ST-16", "16F", "", {4: 20.60, 6: 30.23, 8: 37.36, 10: 42.72, 12: 45.97,
                                       14: 47.49, 16: 48.55})
    return r


def _fig8() -> list[dict]:
    """Fig. 8: any-frame inference, FFN(3) vs ST; absolute values at 2/18/20 only from the plot."""
    t = "fig8"
    st = {4: 39.71, 6: 43.73, 8: 45.63, 10: 47.31, 12: 47.71, 14: 48.01, 16: 48.55}
    st_oob = {2: 26.8, 18: 48.2, 20: 47.7}
    ffn_oob = {2: 26.9, 18: 50.5, 20: 50.4}
    ffn = {n: round(st[n] + FIG8_DELTA[n], 2) for n in st}
    r = []
    r += _rows(t, "ST", "", "", {**st, **st_oob}, approx=tuple(st_oob))
    r += _rows(t, "FFN(3)", "4/8/16", "", {**ffn, **ffn_oob}, approx=tuple(ffn_oob))
    r += _rows(t, "FFN−ST", "Δ", "", FIG8_DELTA)
    return r


def _table9() -> list[dict]:
    """Table 9: other datasets (TSM-R50). ``table`` is ``table9_<dataset>``."""
    r = []
    data = {
        "ssv2": ((31.52, 51.55, 61.02), (53.38, 59.29, 61.02), (56.07, 61.86, 63.61)),
        "k400": ((64.10, 69.77, 73.16), (66.25, 70.38, 73.16), (68.96, 72.33, 74.35)),
        "hmdb51": ((42.16, 46.38, 48.30), (44.74, 46.77, 48.30), (45.67, 47.67, 48.80)),
    }
    for ds, (h, st, ffn) in data.items():
        t = f"table9_{ds}"
        r += _rows(t, "H-trained", "16F", "25.6M", _lmh(h), _ST)
        r += _rows(t, "ST", "", "25.6×3M", _lmh(st), _ST)
        r += _rows(t, "FFN", "4/8/16", "25.7M", _lmh(ffn), _FF)
    return r


#: Table 8 / Fig. 6 (SSv1): ST vs FFN on four architectures, (H-trained, ST, FFN) at (L, M, H); the
#: trained frame counts are those the model is fed (SlowFast: fast-pathway frames).
TABLE8 = {
    "TSM": ((4, 8, 16), (20.60, 37.36, 48.55), (39.71, 45.63, 48.55), (42.85, 48.20, 50.79)),
    "TEA": ((4, 8, 16), (21.78, 41.49, 51.23), (41.36, 48.37, 51.23), (44.97, 51.61, 54.04)),
    "SlowFast": ((16, 32, 64), (15.08, 35.08, 45.88), (39.91, 44.12, 45.88), (43.90, 47.11, 47.27)),
    "Uniformer": ((4, 8, 16), (22.38, 47.98, 56.71), (44.33, 51.49, 56.71), (51.41, 56.64, 58.88)),
}


def table8_name(family: str) -> str:
    """The :func:`paper_table` name of one architecture's Table 8 rows (``"table8_uniformer"``)."""
    if family not in TABLE8:
        raise KeyError(f"Table 8 has no architecture {family!r}; it has {', '.join(TABLE8)}")
    return f"table8_{family.lower()}"


def _table8() -> list[dict]:
    r = []
    for family, (frames, h, st, ffn) in TABLE8.items():
        t = table8_name(family)
        r += _rows(t, "H-trained", f"{frames[-1]}F", "", _lmh(h, frames))
        r += _rows(t, "ST", "", "", _lmh(st, frames))
        r += _rows(t, "FFN", "/".join(map(str, frames)), "", _lmh(ffn, frames))
    return r


_BUILDERS = {"table1": _table1, "table2": _table2, "table3": _table3, "table4": _table4,
             "table6": _table6, "table7": _table7, "fig2": _fig2, "fig8": _fig8}

#: Human-readable title of each table, as the paper names it.
TABLES = {
    "fig2": "Fig. 1/2, Supp. Fig. 9, Table 6 rows 1-2: TSM trained at one frame count, evaluated at others (TFD)",
    "table1": "Table 1: baselines vs FFN (TSM-R50, SSv1)",
    "table2": "Table 2: number of input sequences (SSv1, TSM)",
    "table3": "Table 3: more frames, 4 sequences 4/8/16/24 (SSv1, TSM)",
    "table4": "Table 4: design ablation (SSv1, TSM)",
    "table6": "Table 6 (Supp. C): choice of the middle sequence (SSv1, TSM)",
    "table7": "Table 7 (Supp. D): any-frame inference vs number of sequences (SSv1, TSM)",
    "fig8": "Fig. 8: any-frame inference incl. out-of-range counts (SSv1, TSM-FFN(3) vs ST)",
    "table9_ssv2": "Table 9: Something-Something V2 (TSM-R50)",
    "table9_k400": "Table 9: Kinetics-400 (TSM-R50)",
    "table9_hmdb51": "Table 9: HMDB51 (TSM-R50)",
    **{table8_name(f): f"Table 8: {f}-ST vs {f}-FFN (SSv1)" for f in TABLE8},
}


def _all_rows() -> list[dict]:
    rows = []
    for build in _BUILDERS.values():
        rows += build()
    return rows + _table9() + _table8()


def list_tables() -> list[str]:
    """Names accepted by :func:`paper_table`."""
    return list(TABLES)


def paper_table(name: str) -> pd.DataFrame:
    """The paper's table ``name`` (see :data:`TABLES`) in long format (:data:`COLUMNS`)."""
    if name not in TABLES:
        raise KeyError(f"paper table {name!r}: expected one of {', '.join(TABLES)}")
    rows = [r for r in _all_rows() if r["table"] == name]
    return pd.DataFrame(rows, columns=COLUMNS)
