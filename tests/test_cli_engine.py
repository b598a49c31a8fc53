"""``python -m ffn_core train`` / ``eval``: run directory, cross-eval matrix, clear errors (exit 2)."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ffn_core.__main__ import main as ffn_main
from ffn_core.config import load_config

REPO = Path(__file__).resolve().parents[1]


def test_smoke_params_are_the_tiny_recipe():
    cfg = load_config(REPO / "params" / "smoke.yaml")
    assert (cfg.dataset, cfg.tier, cfg.model, cfg.crop_size, cfg.batch_size) == ("synthetic", "smoke", "tsm_tiny", 32, 8)
    assert 1 <= cfg.epochs <= 2 and cfg.device == "cpu" and cfg.num_workers == 0


def test_train_then_cross_eval(data_root, tmp_path, capsys):
    run = tmp_path / "run"
    # the smoke recipe, shrunk further for the test data (16 px, two frame counts)
    rc = ffn_main(["train", "--params", str(REPO / "params" / "smoke.yaml"), "strategy=ffn", "frames=2,4",
                   f"out_dir={run}", f"data_root={data_root}", "crop_size=16", "batch_size=4", "epochs=1"])
    assert rc == 0
    out = capsys.readouterr().out
    assert f"run dir: {run.resolve()}" in out and "clips/s" in out
    assert {p.name for p in run.iterdir()} >= {"config.yaml", "metrics.csv", "metrics.json", "last.pt", "best.pt"}
    assert load_config(run / "config.yaml").frames == (2, 4)

    ev = tmp_path / "eval"
    rc = ffn_main(["eval", "--checkpoint", str(run / "best.pt"), "--frames", "2,3,4,6", "--out", str(ev),
                   "num_clips=2"])
    assert rc == 0
    with open(ev / "cross_eval.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and rows[0]["name"] == "run" and rows[0]["trained_frames"] == "2 4"
    assert all(0.0 <= float(rows[0][str(t)]) <= 100.0 for t in (2, 3, 4, 6))
    data = json.loads((ev / "cross_eval.json").read_text())
    assert data["frames"] == [2, 3, 4, 6] and data["views"]["num_clips"] == 2
    assert data["rows"][0]["routed"] == {"2": 2, "3": 4, "4": 4, "6": 4}


def _cli(*args, **env):
    return subprocess.run([sys.executable, "-m", "ffn_core", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **env})


def test_eval_bad_checkpoint_path_exits_2(tmp_path):
    proc = _cli("eval", "--checkpoint", str(tmp_path / "missing.pt"), "--frames", "4", "--out", str(tmp_path / "e"))
    assert proc.returncode == 2
    assert "error: checkpoint" in proc.stderr and "missing.pt: not found" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("argv, message", [
    (["train", "epoch=3"], "unknown key"),
    (["train", "frames=4,4"], "duplicate"),
    (["eval", "--checkpoint", "x.pt", "--frames", "4", "--out", "o", "lr=0.1"], "only data/evaluation keys"),
    (["train", "dataset=ssv1", "data_root=/nonexistent", "out_dir=/tmp/_ffn_never"], "no such folder"),
])
def test_cli_errors_are_one_line(argv, message, capsys):
    assert ffn_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err
