"""Seed-to-seed spread of the headline numbers: ST-4/8/16 and the FFN at 4/8/16 frames, per seed.

    python tools/seed_spread.py --params params/cpu.yaml --seeds 0 1 2 [--out runs/seed_spread]

Trains, for every training seed, exactly the runs that notebooks 02 and 03 train for the main table
(ST at each count of ``frames``, and 03's FFN with the params' ``suite:`` options: from scratch
and/or from ST-H for ``init_epochs``), on the same data (the data seed stays the params'
``data_seed``), then evaluates each at its trained counts. A seed whose runs are already in
``runs/<params stem>/models`` (the suite's own seed) reuses them: same config, same run dir layout
(``analysis.runs.train_or_load``). Writes ``seed_spread.csv`` (one row per seed, method and count)
and ``seed_spread.md`` (mean, sample standard deviation, min and max per method and count).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from ffn_core.analysis import experiments as ex
from ffn_core.analysis.notebook import repo_root, setup


def spread(df: pd.DataFrame) -> pd.DataFrame:
    """Mean / std (ddof=1) / min / max of top-1 over seeds, per method and frame count."""
    g = df.groupby(["method", "frames"], sort=False).top1
    out = pd.DataFrame({"seeds": g.count(), "mean": g.mean(), "std": g.std(ddof=1), "min": g.min(), "max": g.max()})
    return out.reset_index()


def run_seed(params: str, seed: int, out: Path) -> pd.DataFrame:
    stem = Path(params).stem
    folder = repo_root() / "runs" / stem if seed == 0 else out / f"seed{seed}"  # seed 0 = the suite's runs
    ctx = setup(params, folder, seed=seed)
    ex.ensure_data(ctx.cfg, data_seed=ctx.option("data_seed", default=0))
    st = ex.st_exps(ctx, ctx.cfg.frames)
    init_ep = ctx.count_option("init_epochs", None, default=0)
    ffn = ex.main_ffn_exps(ctx, ctx.cfg.frames, ctx.bool_option("ffn_scratch", None, default=True), init_ep)
    ex.train([*st, *ffn])
    rows = [ex.accuracy_rows(ctx, [e], e.cfg.frames) for e in st]
    rows.append(ex.accuracy_rows(ctx, ffn, ctx.cfg.frames))
    df = pd.concat(rows, ignore_index=True)
    df["method"] = df.method.where(~df.method.str.startswith("ST-"), "ST")
    df.insert(0, "seed", seed)
    return df[["seed", "method", "frames", "top1", "run"]]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", default="params/cpu.yaml")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default="runs/seed_spread", help="folder of the extra seeds' runs and the tables")
    a = ap.parse_args(argv)
    out = repo_root() / a.out
    out.mkdir(parents=True, exist_ok=True)
    df = pd.concat([run_seed(a.params, s, out) for s in a.seeds], ignore_index=True)
    df.to_csv(out / "seed_spread.csv", index=False)
    table = spread(df)
    md = [f"Seeds {a.seeds}, params {a.params}: top-1 % on val (`python tools/seed_spread.py --params {a.params} "
          f"--seeds {' '.join(map(str, a.seeds))}`)", "", "| method | frames | seeds | mean | std | min | max |",
          "|---|---|---|---|---|---|---|"]
    md += [f"| {r.method} | {r.frames} | {r.seeds} | {r['mean']:.1f} | {r['std']:.1f} | {r['min']:.1f} | {r['max']:.1f} |"
           for _, r in table.iterrows()]
    (out / "seed_spread.md").write_text("\n".join(md) + "\n")
    print(df.to_string(index=False))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
