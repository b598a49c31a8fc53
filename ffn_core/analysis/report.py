"""``report.md``: every results file of the notebook chain, beside the paper's numbers, plus claims.

:func:`load_results` reads ``<out_dir>/results/*.csv`` (missing files give empty tables);
:func:`build_report` writes ``<out_dir>/report.md`` and ``<out_dir>/results/claims.json``. Each
section puts our table and the paper's (:mod:`.paper_numbers`) in one markdown table: for every
evaluated frame count an ``ours`` and a ``paper`` column. Rows are matched on (method, spec);
rows only the paper has are kept (our cells "–") so what was not run is visible. The "Claims"
section (:mod:`.claims`) says for every claim whether it holds on this run, computed from the
numbers, and lists plainly the ones that do not.
"""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Sequence

import pandas as pd
import yaml

from ffn_core.atomic import atomic_write_text

from . import paper_numbers
from .claims import check_claims, main_ffn_rows
from .tables import markdown_table, pivot, read_results

__all__ = ["RESULT_FILES", "load_results", "side_by_side", "build_report", "with_st_spec"]

#: results key -> file under <out_dir>/results (written by the notebook named in the prefix)
RESULT_FILES = {
    "cross_eval": "02_cross_eval.csv", "bn_stats": "02_bn_stats.csv", "st_costs": "02_costs.csv",
    "ffn": "03_ffn.csv", "ffn_costs": "03_costs.csv", "comparison": "03_comparison.csv", "table8": "03_table8.csv",
    "ablations": "04_ablations.csv", "baselines": "05_baselines.csv",
    "any_frame": "06_any_frame.csv", "cascade": "06_cascade.csv", "cascade_points": "06_cascade_points.csv",
    "cascade_selection": "06_cascade_selection.csv",
}

#: Table 9 holds the paper's numbers for datasets other than SSv1.
_DATASET_TABLE = {"ssv2": "table9_ssv2", "k400": "table9_k400", "hmdb51": "table9_hmdb51"}


def load_results(out_dir: str | Path) -> dict[str, pd.DataFrame]:
    """``{key: DataFrame}`` for every key of :data:`RESULT_FILES` (empty if the file is missing)."""
    res = Path(out_dir) / "results"
    out = {}
    for key, name in RESULT_FILES.items():
        path = res / name
        if key in ("bn_stats", "st_costs", "ffn_costs", "cascade", "cascade_points", "cascade_selection"):
            out[key] = pd.read_csv(path) if path.is_file() else pd.DataFrame()
        else:
            out[key] = read_results(path)
    return out


def side_by_side(ours: pd.DataFrame, paper: pd.DataFrame, frames: Sequence[int] | None = None,
                 paper_rows: bool = True, mark_approx: bool = True) -> pd.DataFrame:
    """One table: rows (method, spec), columns ``<T>F ours`` / ``<T>F paper`` per frame count.

    ``frames`` restricts the columns (default: every count either side has); ``paper_rows=False``
    drops rows only the paper has. With ``mark_approx`` and a paper table that has values read off
    plots, the paper columns become text with those values marked ``≈``."""
    o = pivot(ours) if ours is not None and not ours.empty else pd.DataFrame()
    p = pivot(paper) if paper is not None and not paper.empty else pd.DataFrame()
    approx = pivot(paper, values="approx") if mark_approx and paper is not None and "approx" in paper \
        and not paper.empty and paper["approx"].any() else None
    cols = sorted(set(o.columns) | set(p.columns)) if frames is None else [int(t) for t in frames]
    keys = list(o.index) + [k for k in p.index if k not in set(o.index) and paper_rows]
    rows = []
    for key in keys:
        method, spec = key if isinstance(key, tuple) else (key, "")
        row = {"method": method, "spec": spec}
        for t in cols:
            row[f"{t}F ours"] = o.loc[[key], t].iloc[0] if key in o.index and t in o.columns else float("nan")
            v = p.loc[[key], t].iloc[0] if key in p.index and t in p.columns else float("nan")
            if approx is not None:  # values read off a plot: "≈37.60"
                v = "–" if pd.isna(v) else (f"≈{v:.2f}" if bool(approx.loc[[key], t].iloc[0]) else f"{v:.2f}")
            row[f"{t}F paper"] = v
        rows.append(row)
    return pd.DataFrame(rows)


def _params_column(ours: pd.DataFrame) -> pd.DataFrame:
    if ours is None or ours.empty:
        return pd.DataFrame()
    return ours.groupby(["method", "spec"], sort=False)["params"].first().reset_index()


def _gmacs_column(ours: pd.DataFrame, frames: Sequence[int] | None) -> pd.DataFrame:
    """``GMACs (ours)``: per row, the GMACs per clip at each shown count, "0.14/0.28/0.56"."""
    if ours is None or ours.empty or "gmacs" not in ours or ours["gmacs"].isna().all():
        return pd.DataFrame()
    d = ours if frames is None else ours[ours["frames"].isin([int(t) for t in frames])]
    col = d.sort_values("frames").groupby(["method", "spec"], sort=False)["gmacs"].apply(
        lambda g: "/".join("–" if pd.isna(v) else f"{v:.3g}" for v in g))
    return col.rename("GMACs (ours)").reset_index()


def _section(title: str, ours: pd.DataFrame, paper: pd.DataFrame | None, note: str = "",
             frames: Sequence[int] | None = None, figures: Sequence[str] = (), paper_rows: bool = True) -> str:
    text = [f"## {title}\n"]
    if note:
        text.append(note.strip() + "\n")
    if (ours is None or ours.empty) and (paper is None or paper.empty):
        return "\n".join(text + ["_(not run)_\n"])
    if ours is None or ours.empty:
        text.append("_Not run on this chain: only the paper's numbers are shown._\n")
    if ours is not None and not ours.empty and "epochs" in ours and ours["epochs"].nunique() > 1:
        per = ours.groupby(["method", "spec"], sort=False, dropna=False)["epochs"].first()
        text.append("Epochs differ between rows: " + ", ".join(  # rows without a run (e.g. read from 02) have none
            f"{m} {'' if pd.isna(s) else s}".strip() + f" {int(e)}" for (m, s), e in per.items() if pd.notna(e)) + ".\n")
    table = side_by_side(ours, paper if paper is not None else pd.DataFrame(), frames, paper_rows)
    params = _params_column(ours)
    if not params.empty and params["params"].astype(str).str.len().any():
        table = table.merge(params.rename(columns={"params": "params (ours)"}), on=["method", "spec"], how="left")
    gm = _gmacs_column(ours, frames)
    if not gm.empty:
        table = table.merge(gm, on=["method", "spec"], how="left")
    text.append(markdown_table(table, index=False))
    for fig in figures:
        text.append(f"![{Path(fig).stem}]({fig})\n")
    return "\n".join(text)


def _run_info(out_dir: Path) -> str:
    info = out_dir / "results" / "01_data.json"
    cfg = out_dir / "results" / "config.yaml"
    lines = [f"- results folder: `{out_dir}`", f"- written: {_dt.datetime.now().isoformat(timespec='seconds')}"]
    if info.is_file():
        d = json.loads(info.read_text())
        lines.append(f"- data: {d.get('dataset')} at `{d.get('data_root')}` ({d.get('num_train')} train / "
                     f"{d.get('num_val')} val clips, {d.get('num_classes')} classes"
                     + (f"; {d['num_calib']} held-out calib clips for the cascade" if d.get("num_calib") else "") + ")")
        fp = d.get("fingerprint") or {}
        if fp:
            lines.append(f"- data fingerprint: sha256 `{fp['sha256']}` over the lists and {fp['videos']} videos "
                         f"({fp['bytes'] / 2**20:.0f} MiB{'; ' + str(fp['missing']) + ' missing' if fp.get('missing') else ''})"
                         " - runs with the same fingerprint trained on byte-identical data")
        env = d.get("environment") or {}
        if env:
            v = env.get("versions", {})
            lines.append("- environment: " + ", ".join(f"{k} {v[k]}" for k in ("python", "torch", "torchvision", "numpy",
                                                                          "av", "decord") if k in v)
                         + f"; {env.get('torch_threads')} torch threads (OMP_NUM_THREADS={env.get('OMP_NUM_THREADS') or 'unset'}),"
                         f" {env.get('cpu_count')} CPUs: {env.get('cpu')}")
        short = d.get("short_videos") or {}
        if any(short.values()):
            lines.append(f"- videos shorter than the most frames (frames repeat): train {short.get('train', 0)}, "
                         f"val {short.get('val', 0)}")
    if cfg.is_file():
        c = yaml.safe_load(cfg.read_text()) or {}
        keys = ("model", "frames", "epochs", "loss", "lambda_kl", "batch_size", "optimizer", "lr", "weight_decay",
                "schedule", "crop_size", "pretrained", "amp", "seed")
        lines.append("- recipe: " + ", ".join(f"{k}={c.get(k)}" for k in keys if k in c))
    skipped: dict = {}  # unreadable videos any run left out (on_bad_sample=skip), by split
    left_out = []
    for m in sorted((out_dir / "models").glob("**/metrics.json")):
        try:
            metrics = json.loads(m.read_text())
        except (OSError, ValueError):
            continue
        bad = metrics.get("bad_videos")
        for split, items in (bad.items() if isinstance(bad, dict) else ()):
            skipped.setdefault(split, set()).update(items)
        for T, e in (metrics.get("eval") or {}).items():
            if e.get("skipped"):
                left_out.append(f"`{m.parent.name}` @{T}F: {e['num_samples']} clips ({e['skipped']} left out)")
    for split, paths in sorted(skipped.items()):
        if paths:
            lines.append(f"- skipped unreadable {split} videos ({len(paths)}): " + ", ".join(f"`{p}`" for p in sorted(paths)))
    if left_out:
        lines.append("- accuracies over fewer clips than the list has: " + "; ".join(left_out))
    started = {}  # runs that did not start from scratch (init_from): source run -> runs
    for run_cfg in sorted((out_dir / "models").glob("*/config.yaml")):
        src = (yaml.safe_load(run_cfg.read_text()) or {}).get("init_from")
        if src:
            started.setdefault(Path(src).parent.name, []).append(run_cfg.parent.name)
    for src, names in started.items():
        lines.append(f"- started from `{src}` (init_from, not from scratch): " + ", ".join(f"`{n}`" for n in names))
    return "\n".join(lines) + "\n"


def _paper(name: str) -> pd.DataFrame:
    return paper_numbers.paper_table(name)


def build_report(out_dir: str | Path, title: str | None = None) -> Path:
    """Write ``<out_dir>/report.md`` (and ``results/claims.json``); return the report's path."""
    out_dir = Path(out_dir)
    r = load_results(out_dir)
    dataset = ""
    info = out_dir / "results" / "01_data.json"
    if info.is_file():
        dataset = json.loads(info.read_text()).get("dataset", "")
    claims = check_claims(r)
    atomic_write_text(out_dir / "results" / "claims.json", json.dumps([c.to_dict() for c in claims], indent=1))
    fig = lambda name: f"figures/{name}" if (out_dir / "figures" / name).is_file() else None  # noqa: E731
    figs = lambda *names: [f for f in map(fig, names) if f]  # noqa: E731

    held = [c for c in claims if c.holds is True]
    failed = [c for c in claims if c.holds is False]
    missing = [c for c in claims if c.holds is None]
    parts = [f"# {title or 'FFN reproduction report'}: `{out_dir.name}`\n", _run_info(out_dir)]
    parts.append(
        "Top-1 accuracy in %, one clip x one crop; GMACs per clip (what the paper prints as GFLOPs). "
        "The paper's numbers are TSM-ResNet-50 on Something-Something V1 (ImageNet-pretrained, 224 px) "
        "unless a table says otherwise; on the synthetic benchmark only the *relations* between rows "
        "(which is higher, by how much) are comparable, not the absolute values. Paper values marked "
        "≈ in the reference were read off plots.\n")
    parts.append("## Claims\n")
    parts.append(f"{len(held)} of {len(claims)} claims hold on this run, {len(failed)} do not, "
                 f"{len(missing)} were not measured.\n")
    if failed:
        parts.append("**Does not hold on this run:**\n\n" + "".join(f"- {c.claim} — ours: {c.ours}\n" for c in failed))
    parts.append(markdown_table(pd.DataFrame([{"claim": c.claim, "paper": c.paper, "ours": c.ours,
                                               "verdict": c.verdict} for c in claims]), index=False))

    parts.append(_section("TFD: single-frame-count models cross-evaluated (Fig. 1/2, Table 6 rows 1-2)",
                          with_st_spec(r["cross_eval"]), _paper("fig2"),
                          "Rows: ST model trained at that count; columns: inference frame count.",
                          figures=figs("02_tfd_heatmap.png", "02_cross_eval_heatmap.png", "02_acc_vs_gmacs.png",
                                       "02_bn_stats.png")))
    t8 = _DATASET_TABLE.get(dataset, "table1")
    paper_main = _paper(t8)
    if t8 == "table1":
        paper_main = paper_main[paper_main["method"].isin(["H-trained", "ST", "FFN"])]
    parts.append(_section(f"FFN vs ST (Table 8 / {'Table 9' if t8 != 'table1' else 'Table 1'} style)",
                          r["comparison"], paper_main, "Trained and untrained counts from one FFN checkpoint.",
                          figures=figs("03_ffn_vs_st.png")))
    parts.append(_table8_section(r["table8"]))
    parts.append(_section("Baselines (Table 1)", r["baselines"], _paper("table1"),
                          "BN recalibration (ST-H with BN statistics re-estimated at the inference count) is "
                          "our addition.", figures=figs("05_baselines.png")))
    parts.append(_section("Design ablation (Table 4)", r["ablations"], _paper("table4"),
                          "λ rows are ours (the paper fixes λ = 1 and reports no sweep).",
                          figures=figs("04_ablations.png")))
    seq = r["any_frame"]
    seq_in = seq[(seq["frames"] >= 4) & (seq["frames"] <= 16)] if not seq.empty else seq
    parts.append(_section("Number and choice of sequences (Tables 2, 7)", seq_in, _paper("table7"),
                          "FFN(k) = FFN trained on k sequences; untrained counts use the nearest trained "
                          "sub-network (ties to the higher count).", frames=_even_or_all(seq_in, (4, 16)),
                          figures=figs("06_sequences.png")))
    parts.append(_section("Choice of the middle sequence (Table 6)", _table6_rows(seq), _paper("table6"),
                          "FFN trained on L/v^M/H for every 3-sequence set 06 ran (pass e.g. "
                          "`sequence_sets=[[4,10,16],[4,12,16]]` to 06 for the paper's other rows).",
                          frames=_even_or_all(seq_in, (4, 16))))
    parts.append(_section("More frames: 4 sequences up to 24 (Table 3)", _table3_rows(seq), _paper("table3"),
                          "Needs `sequence_sets` with a set beyond the main range, e.g. [4,8,16,24], in 06."))
    parts.append(_section("Any-frame inference incl. out-of-range counts (Fig. 8)", _fig8_rows(seq, r),
                          _paper("fig8"), "ST exists only where an ST model was trained at that count; "
                          "FFN−ST is the difference where both exist.", figures=figs("06_any_frame.png")))
    parts.append(_cascade_section(r, figs("06_cascade.png")))
    parts.append("## Not measured here\n" + ("".join(f"- {c.claim}: {c.ours}\n" for c in missing) or "- nothing\n"))
    path = out_dir / "report.md"
    atomic_write_text(path, "\n".join(parts))
    return path


def _table8_section(t8: pd.DataFrame) -> str:
    """One table per architecture of ``03_table8.csv`` beside the paper's Table 8 group of its family."""
    from .architectures import table8_claims

    text = ["## FFN vs ST across architectures (Table 8)\n",
            "H-trained = the ST model trained at the most frames, evaluated at every trained count; ST = one "
            "model per count; FFN = one model for all counts. Every architecture trains on this chain's data, "
            "frame counts and its own recipe (03's `architectures` option); the paper's numbers are its SSv1 "
            "results for the same family (SlowFast counts fast-pathway frames).\n"]
    if t8 is None or t8.empty:
        return "\n".join(text + ["_(not run: 03 wrote no 03_table8.csv)_\n"])
    for model, group in t8.groupby("model", sort=False):
        family = str(group["family"].iloc[0])
        main = bool(group["main"].astype(bool).iloc[0]) if "main" in group else False
        text.append(f"### {family}: `{model}`" + (" (the chain's model)" if main else "") + "\n")
        name = paper_numbers.table8_name(family) if family in paper_numbers.TABLE8 else None
        paper = _paper(name) if name else pd.DataFrame()
        ours = group.drop(columns=["model", "family", "role", "main"], errors="ignore")
        table = side_by_side(ours, paper, frames=sorted(set(int(t) for t in group["frames"])), paper_rows=False)
        gm = _gmacs_column(ours, None)
        if not gm.empty:
            table = table.merge(gm, on=["method", "spec"], how="left")
        text.append(markdown_table(table, index=False))
        if name and paper_numbers.TABLE8[family][0] != tuple(sorted(set(int(t) for t in group["frames"]))):
            text.append(f"(The paper's {family} columns are {'/'.join(map(str, paper_numbers.TABLE8[family][0]))} "
                        "frames: not comparable column by column.)\n")
    claims = table8_claims({"table8": t8})
    if claims:
        text.append("Claims for the other architectures (also in the Claims section):\n")
        text.append("".join(f"- {c.claim}: {c.verdict} — ours: {c.ours}\n" for c in claims))
    return "\n".join(text)


def with_st_spec(cross: pd.DataFrame) -> pd.DataFrame:
    """Cross-eval rows with ``spec`` = the trained count (``ST-4`` -> ``4F``), as the paper's fig2 rows."""
    if cross is None or cross.empty:
        return cross
    d = cross.copy()
    d["spec"] = d["method"].str.replace("ST-", "", regex=False) + "F"
    return d


def _even_or_all(df: pd.DataFrame, rng: tuple) -> list[int] | None:
    if df is None or df.empty:
        return list(range(rng[0], rng[1] + 1, 2))
    return sorted(set(int(t) for t in df["frames"]) | set(range(rng[0], rng[1] + 1, 2)))


def _table6_rows(df: pd.DataFrame) -> pd.DataFrame:
    if df is None or df.empty:
        return pd.DataFrame()
    three = df[(df["method"] == "FFN(3)") & (df["spec"].str.count("/") == 2)].copy()
    three["spec"] = "v^M=" + three["spec"].str.split("/").str[1] + "F"
    three["method"] = "FFN"
    return pd.concat([df[df["method"].isin(["H-trained", "ST"])], three], ignore_index=True)


def _table3_rows(df: pd.DataFrame) -> pd.DataFrame:
    if df is None or df.empty:
        return pd.DataFrame()
    main_max = max((max(map(int, sp.split("/"))) for sp in df[df["method"] == "FFN(3)"]["spec"]), default=0)
    four = df[df["method"] == "FFN(4)"]
    four = four[four["spec"].map(lambda sp: max(map(int, sp.split("/"))) > main_max)]
    return pd.concat([df[df["method"] == "ST"], four], ignore_index=True) if len(four) else pd.DataFrame()


def _fig8_rows(df: pd.DataFrame, r: dict) -> pd.DataFrame:
    main = main_ffn_rows(df, r)
    if main.empty:
        return pd.DataFrame()
    d = pd.concat([df[df["method"] == "ST"], main], ignore_index=True)
    ffn = main.set_index("frames")["top1"]
    st = d[d["method"] == "ST"].set_index("frames")["top1"]
    delta = (ffn - st).dropna()
    extra = pd.DataFrame([dict(method="FFN−ST", spec="Δ", params="", frames=int(t), top1=float(v), gmacs=float("nan"),
                               trained=False, run="") for t, v in delta.items()])
    d["spec"] = d["spec"].where(d["method"] != "ST", "")
    return pd.concat([d, extra], ignore_index=True)


def _cascade_section(r: dict, figures: list[str]) -> str:
    c, p, sel = r.get("cascade"), r.get("cascade_points"), r.get("cascade_selection")
    text = ["## Confidence-cascaded inference (ours; not in the paper)\n",
            "Run the fewest frames first; run the next count only when the top probability is below τ. "
            "A sample pays the GMACs of every count it ran. τ=0: always the fewest frames; τ=1: every count.\n"]
    if c is None or c.empty:
        return "\n".join(text + ["_(not run)_\n"])
    text.append(markdown_table(p, floatfmt=".4g", index=False) if p is not None and not p.empty else "")
    if sel is not None and not sel.empty and "calib_top1" in sel.columns:
        text.append(f"Chain and τ picked on the held-out clips of `{Path(str(sel['calib'].iloc[0])).name}` (never on "
                    "val): the best held-out top-1 among points cheaper than the highest count alone. `val_*`: "
                    "the picked point on the validation set.\n")
        cols = [k for k in ("model", "chain", "calib_tau", "calib_top1", "calib_mean_gmacs", "chosen", "val_top1",
                            "val_gmacs") if k in sel.columns]
        text.append(markdown_table(sel[cols], floatfmt=".4g", index=False))
    elif sel is not None and not sel.empty:
        text.append("No held-out list: the cascade runs every trained count (no chain selection).\n")
    shown = c[c["picked"].astype(bool)] if "picked" in c.columns else c
    show = shown[[col for col in ("model", "chain", "tau", "top1", "mean_gmacs") if col in shown.columns]]
    text.append(markdown_table(show, floatfmt=".3g", index=False))
    text += [f"![cascade]({f})\n" for f in figures]
    return "\n".join(text)
