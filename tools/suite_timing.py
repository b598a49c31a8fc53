"""Where the main job's time went: ``python tools/suite_timing.py runs/cpu``.

Reads what a suite run wrote - ``suite.json`` (seconds per notebook) and every
``models/**/metrics.csv`` (per epoch: ``data_time_s``, ``step_time_s``, ``epoch_time_s``) - and prints
two markdown tables: the notebooks, and the training runs with their data share. Runs under
``models/<architecture>/`` (Table 8's second architecture, ``architectures`` in the params) are
summed separately, so the time of everything else can be read off. Nothing is re-measured.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path


def run_rows(run_dir: Path) -> list[dict]:
    """One row per training run: name, table-8 flag, epochs, train s, data s, step s, data %."""
    rows = []
    models = run_dir / "models"
    for metrics in sorted(models.glob("**/metrics.csv")):
        rel = metrics.parent.relative_to(models)
        with open(metrics, newline="") as f:
            epochs = list(csv.DictReader(f))
        if not epochs:
            continue
        data = sum(float(e["data_time_s"] or 0) for e in epochs)
        step = sum(float(e["step_time_s"] or 0) for e in epochs)
        total = sum(float(e["epoch_time_s"] or 0) for e in epochs)
        rows.append({"run": str(rel), "table8": len(rel.parts) > 1, "epochs": len(epochs), "train_s": total,
                     "data_s": data, "step_s": step, "data_pct": 100 * data / max(data + step, 1e-9)})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", nargs="?", default="runs/cpu")
    a = p.parse_args(argv)
    run_dir = Path(a.run_dir)
    suite = run_dir / "suite.json"
    if not suite.is_file():
        raise SystemExit(f"error: {suite} not found (run the suite first: make reproduce)")
    notebooks = json.loads(suite.read_text())["notebooks"]
    rows = run_rows(run_dir)
    t8 = sum(r["train_s"] for r in rows if r["table8"])
    print("| notebook | status | seconds |\n|---|---|---|")
    for name, nb in notebooks.items():
        print(f"| {name} | {nb.get('status')} | {float(nb.get('seconds') or 0):.0f} |")
    total = sum(float(nb.get("seconds") or 0) for nb in notebooks.values())
    print(f"| **all** | | **{total:.0f}** ({total / 60:.1f} min) |")
    print(f"| of which Table 8 training (models/<architecture>/) | | {t8:.0f} |")
    print(f"| **all but Table 8's training** | | **{total - t8:.0f}** ({(total - t8) / 60:.1f} min) |")
    print("\n| run | epochs | training s | data s | step s | data % |\n|---|---|---|---|---|---|")
    for r in rows:
        name = r["run"] + (" (Table 8)" if r["table8"] else "")
        print(f"| {name} | {r['epochs']} | {r['train_s']:.0f} | {r['data_s']:.1f} | {r['step_s']:.0f} "
              f"| {r['data_pct']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
