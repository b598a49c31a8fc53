"""Execute the notebook chain 01..07 with the smoke parameters (papermill) and check what it writes.

The chain runs ONCE (module fixture, through ``ffn_core.suite.run_suite``: the papermill API) on a
36-clip subset of the smoke tier, 1 epoch, tiny model at 16 px; each test then asserts on one
notebook's result files. Further tests run the real ``papermill`` CLI with ``-p frames "[4,8,16]"``
(a string), a bad parameter (a clear ConfigError naming it), and a failing suite (stops at the
first failure, naming notebook and cell).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
FRAMES = (4, 8, 16)
ANY = [2, 4, 8, 12, 16, 20]
TFD = [4, 8, 12, 16]


def _subset(src: Path, dst: Path, per_class: int) -> None:
    from ffn_core.data import read_list_file, write_list_file

    seen, keep = {}, []
    for r in read_list_file(src):
        if seen.get(r.label, 0) < per_class:
            keep.append(r)
            seen[r.label] = seen.get(r.label, 0) + 1
    write_list_file(dst, keep)


@pytest.fixture(scope="module")
def params(tmp_path_factory) -> Path:
    """A params file inheriting params/smoke.yaml: 1 epoch, 16 px, 2 clips per class, small sweeps."""
    from ffn_core.data.synthetic import ensure_synthetic

    tmp = tmp_path_factory.mktemp("nbparams")
    data = ensure_synthetic(ROOT / "data" / "synthetic_smoke", "smoke", seed=0, workers=1, verbose=False)
    _subset(data / "train.txt", tmp / "train.txt", 2)
    _subset(data / "val.txt", tmp / "val.txt", 2)
    arch = tmp / "test_smoke_uniformer_xs.yaml"  # 03's Table 8 architecture (its own recipe, 32 px)
    arch.write_text(yaml.safe_dump({"inherit": str(tmp / "test_smoke.yaml"), "model": "uniformer_xs",
                                    "crop_size": 32, "suite": {"init_epochs": 1, "ffn_scratch": False}}))
    path = tmp / "test_smoke.yaml"
    path.write_text(yaml.safe_dump({
        "inherit": str(ROOT / "params" / "smoke.yaml"), "epochs": 1, "crop_size": 16, "data_root": str(data),
        "train_list": str(tmp / "train.txt"), "val_list": str(tmp / "val.txt"), "frames": list(FRAMES),
        "suite": {"lambdas": [2.0], "mixed_rhos": [0.5], "proportional_rhos": [0.5], "recal_batches": 2,
                  "any_frames": ANY, "tfd_frames": TFD, "cascade_taus": 5,
                  # as params/cpu.yaml: 03's second FFN and 04/06 start from ST-16; 05 from scratch
                  "init_epochs": 1, "ablation_init": True, "sequence_init": True, "baseline_init": False,
                  "architectures": [str(arch)]}}))
    return path


@pytest.fixture(scope="module")
def chain(params, tmp_path_factory) -> Path:
    from ffn_core.suite import run_suite

    runs = tmp_path_factory.mktemp("runs")
    assert run_suite(params, name="chain", runs_dir=runs) == 0
    return runs / "chain"


def _csv(chain: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(chain / "results" / name, dtype={"spec": str, "params": str}).fillna({"spec": ""})


def _acc(df: pd.DataFrame, method: str, t: int, spec: str | None = None) -> float:
    sel = df[(df.method == method) & (df.frames == t)]
    if spec is not None:
        sel = sel[sel.spec == spec]
    assert len(sel) == 1, (method, t, spec, sel)
    return float(sel.top1.iloc[0])


def _text(nb_path: Path) -> str:
    import nbformat

    out = []
    for cell in nbformat.read(nb_path, 4).cells:
        for o in cell.get("outputs", []):
            out.append(o.get("text", "") if o.output_type == "stream" else json.dumps(o.get("data", {})))
    return "\n".join(out)


def test_suite_ran_every_notebook(chain):
    log = json.loads((chain / "suite.json").read_text())
    assert [n[:2] for n in log["notebooks"]] == ["01", "02", "03", "04", "05", "06", "07"]
    assert all(v["status"] == "ok" for v in log["notebooks"].values())
    for nb in log["notebooks"]:
        assert (chain / f"{nb}.ipynb").is_file()


def test_suite_logs_one_line_per_epoch_and_evaluation(chain):
    """Headless runs are not silent: every training epoch and evaluation has a progress.log line
    (the suite echoes them as the notebook runs)."""
    lines = (chain / "progress.log").read_text().splitlines()
    runs = [p.parent.relative_to(chain).as_posix() for p in (chain / "models").rglob("metrics.csv")]
    assert len(runs) > 3
    for run in runs:
        epochs = len(pd.read_csv(chain / run / "metrics.csv"))
        mine = [ln for ln in lines if f" {run}: epoch " in ln]
        assert len(mine) == epochs, (run, mine)
    assert any(" evaluated " in ln for ln in lines)
    assert all(ln[2] == ":" and ln[5] == ":" for ln in lines)  # HH:MM:SS stamps


def test_01_data_prep(chain):
    info = json.loads((chain / "results" / "01_data.json").read_text())
    assert info["num_train"] == 36 and info["num_val"] == 36 and info["num_classes"] == len(info["class_names"]) == 18
    samp = _csv(chain, "01_sampling.csv")
    assert len(samp) == 2 * sum(FRAMES)
    for t in FRAMES:  # one index per segment, in order, in range
        val = samp[(samp.frames == t) & (samp["mode"] == "val")]["index"].to_numpy()
        assert list(val // (info["video_frames_max"] / t)) == list(range(t))
    for fig in ("01_sampling.png", "01_clips.png"):
        assert (chain / "figures" / fig).stat().st_size > 1000
    assert "image/png" in _text(chain / "01_data_prep.ipynb")  # figures render inline


def test_02_baseline_tfd(chain):
    cross = _csv(chain, "02_cross_eval.csv")
    assert set(cross.method) == {f"ST-{t}" for t in FRAMES} and len(cross) == len(FRAMES) * len(TFD)
    assert set(cross[cross.trained].apply(lambda r: (r.method, r.frames), axis=1)) == {(f"ST-{t}", t) for t in FRAMES}
    assert cross.top1.between(0, 100).all()
    gm = cross.groupby("frames").gmacs.first()  # same architecture: GMACs grow linearly with T
    assert gm[16] == pytest.approx(4 * gm[4], rel=1e-6)
    tfd = pd.read_csv(chain / "results" / "02_tfd_matrix.csv", index_col=0)
    assert all(tfd.loc[f"ST-{t}", str(t)] == 0 for t in FRAMES)
    bn = _csv(chain, "02_bn_stats.csv")
    assert set(bn.model) == {"ST-4", "ST-16"} and bn.layer.str.startswith("layer4").all()
    for fig in ("02_cross_eval_heatmap.png", "02_tfd_heatmap.png", "02_acc_vs_gmacs.png", "02_bn_stats.png"):
        assert (chain / "figures" / fig).is_file()


def test_03_train_ffn(chain):
    ffn = _csv(chain, "03_ffn.csv")
    assert list(dict.fromkeys(ffn.method)) == ["FFN", "FFN (init ST-16)"]
    for _, rows in ffn.groupby("method"):
        assert set(rows[rows.trained].frames) == set(FRAMES)
    init_cfg = yaml.safe_load((chain / "models" / "ffn_4-8-16_init-st16_e1" / "config.yaml").read_text())
    assert init_cfg["init_from"].endswith("st_16_e1/best.pt") and init_cfg["strategy"] == "ffn"
    comp = _csv(chain, "03_comparison.csv")
    assert list(dict.fromkeys(comp.method)) == ["H-trained", "ST", "FFN", "FFN (init ST-16)"]
    cross = _csv(chain, "02_cross_eval.csv")
    for t in FRAMES:  # the comparison reuses 02's numbers
        assert _acc(comp, "ST", t) == _acc(cross, f"ST-{t}", t)
        assert _acc(comp, "H-trained", t) == _acc(cross, "ST-16", t)
    costs = _csv(chain, "03_costs.csv")
    st_costs = _csv(chain, "02_costs.csv")
    assert (costs.params > st_costs.params.iloc[0]).all()  # private norms + WA cost a few parameters
    t8 = _csv(chain, "03_table8.csv")  # Table 8: this model (from 02/03) and uniformer_xs (trained by 03)
    assert list(dict.fromkeys(t8.model)) == ["tsm_tiny", "uniformer_xs"]
    assert list(dict.fromkeys(t8.family)) == ["TSM", "Uniformer"] and t8.main.tolist() == [True] * 9 + [False] * 9
    for model, g in t8.groupby("model"):
        assert sorted(zip(g.role, g.frames)) == sorted((r, t) for r in ("FFN", "H-trained", "ST") for t in FRAMES)
    uni = t8[t8.model == "uniformer_xs"]
    assert set(uni.run[uni.role == "FFN"]) == {"ffn_4-8-16_init-st16_e1"}
    assert _acc(uni, "H-trained", 16) == _acc(uni, "ST", 16)  # ST-16 is the H-trained model
    run = chain / "models" / "uniformer_xs" / "ffn_4-8-16_init-st16_e1"
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["model"] == "uniformer_xs" and cfg["crop_size"] == 32 and cfg["frames"] == list(FRAMES)
    assert cfg["init_from"] == str(chain / "models" / "uniformer_xs" / "st_16_e1" / "best.pt")


def test_04_ablations(chain):
    abl = _csv(chain, "04_ablations.csv")
    got = set(zip(abl.method, abl.spec))
    assert {("ST", ""), ("FFN", ""), ("w/o SN", ""), ("w/o WA", ""), ("w/o TD", ""), ("w/o WS", ""),
            ("FFN", "λ=2")} <= got
    p = {m: float(abl[abl.method == m].params.iloc[0].rstrip("M").split("×")[0]) for m in ("FFN", "w/o WS")}
    assert p["w/o WS"] > 2.5 * p["FFN"]  # private convolutions: ~3x the parameters
    cfg = yaml.safe_load((chain / "models" / "ffn_4-8-16_wo-sn_init-st16_e1" / "config.yaml").read_text())
    assert cfg["private_norm"] is False and cfg["strategy"] == "ffn" and cfg["init_from"].endswith("st_16_e1/best.pt")


def test_05_baselines(chain):
    b = _csv(chain, "05_baselines.csv")
    assert {"H-trained", "Mixed", "Proportional", "Fine-tuning", "Ensemble", "ST", "FFN", "BN recalibration"} <= set(b.method)
    st = _csv(chain, "02_cross_eval.csv")
    for t in FRAMES:  # the ensemble runs all three ST models at t
        ens = b[(b.method == "Ensemble") & (b.frames == t)].iloc[0]
        assert ens.gmacs == pytest.approx(3 * st[(st.method == "ST-16") & (st.frames == t)].gmacs.iloc[0])
    # BN recalibration leaves the model untouched at the count it was trained at
    assert _acc(b, "BN recalibration", 16) == _acc(b, "H-trained", 16)
    ft = yaml.safe_load((chain / "models" / "finetune_16to4_e1" / "config.yaml").read_text())
    assert ft["finetune_from"].endswith("st_16_e1/best.pt") and ft["frames"] == [4]
    assert "reuse: st_16_e1" in _text(chain / "05_baselines.ipynb")  # 02's runs were not retrained


def test_06_any_frame(chain):
    a = _csv(chain, "06_any_frame.csv")
    for m in ("FFN(2)", "FFN(3)", "FFN(4)", "H-trained"):
        assert sorted(a[a.method == m].frames) == ANY, m
    assert sorted(a[a.method == "ST"].frames) == list(FRAMES)
    ffn = _csv(chain, "03_ffn.csv")
    for t in FRAMES:  # FFN(3) (sequence_init) is 03's init model: same checkpoint, same data, same numbers
        assert _acc(a, "FFN(3)", t) == _acc(ffn, "FFN (init ST-16)", t)
    c = _csv(chain, "06_cascade.csv")
    p = _csv(chain, "06_cascade_points.csv")
    sel = _csv(chain, "06_cascade_selection.csv")
    for model in ("FFN", "ST"):
        cm = c[(c.model == model) & (c.chain == "4→8→16")].set_index("tau")
        pm = p[p.model == model].set_index("frames")
        assert cm.loc[0.0, "top1"] == pytest.approx(pm.loc[4, "top1"])
        assert cm.loc[0.0, "mean_gmacs"] == pytest.approx(pm.loc[4, "gmacs"])
        assert cm.loc[1.0, "mean_gmacs"] == pytest.approx(pm.gmacs.sum())
        assert cm.loc[1.0, "top1"] == pytest.approx(pm.loc[16, "top1"])
        # chain and τ picked on the smoke tier's held-out calib.txt; their val point lies on the val curve
        sm = sel[sel.model == model]
        assert set(sm.chain) == {"4→8→16", "4→16", "8→16"} and sm.chosen.sum() == 1
        assert sm.calib.str.endswith("calib.txt").all() and (sm.calib_mean_gmacs < pm.loc[16, "gmacs"]).all()
        pick = sm[sm.chosen].iloc[0]
        curve = c[(c.model == model) & (c.chain == pick.chain)]
        assert curve.picked.all() and (c[(c.model == model) & (c.chain != pick.chain)].picked == False).all()  # noqa: E712
        at = curve[np.isclose(curve.tau, pick.calib_tau)].iloc[0]
        assert (at.top1, at.mean_gmacs) == (pytest.approx(pick.val_top1), pytest.approx(pick.val_gmacs))
    ffn_run = chain / "models" / "ffn_4-8-16_init-st16_e1"
    assert sorted(f.name for f in (ffn_run / "preds_calib").glob("*.npz")) == ["T16.npz", "T4.npz", "T8.npz"]
    assert "explorer is skipped" in _text(chain / "06_any_frame.ipynb")  # headless: a note, no widget
    for fig in ("06_any_frame.png", "06_sequences.png", "06_cascade.png"):
        assert (chain / "figures" / fig).is_file()


def test_07_report(chain):
    text = (chain / "report.md").read_text()
    for header in ("## Claims", "## TFD", "## FFN vs ST across architectures (Table 8)",
                   "### Uniformer: `uniformer_xs`", "## Baselines (Table 1)", "## Design ablation (Table 4)",
                   "## Number and choice of sequences", "## Any-frame inference", "## Confidence-cascaded"):
        assert header in text
    claims = json.loads((chain / "results" / "claims.json").read_text())
    assert {"table8_uniformer_xs_tfd", "table8_uniformer_xs_near_st"} <= {c["id"] for c in claims}
    assert len(claims) >= 19 and all(c["verdict"] != "not measured" for c in claims), \
        [c for c in claims if c["holds"] is None]
    failed = [c for c in claims if c["holds"] is False]
    assert f"{len(claims) - len(failed)} of {len(claims)} claims hold" in text
    for c in failed:
        assert c["claim"] in text.split("## TFD")[0]
    assert "](figures/06_cascade.png)" in text
    started = next(line for line in text.splitlines() if line.startswith("- started from `st_16_e1`"))
    assert "`ffn_4-8-16_init-st16_e1`" in started and "`ffn_4-8-16_wo-sn_init-st16_e1`" in started
    assert "`ffn_4-8-16_e1`" not in started and "`mixed_4-16_rho0.5_e1`" not in started


def test_models_trained_once(chain):
    names = sorted(p.name for p in (chain / "models").iterdir())
    assert names == sorted([
        "st_4_e1", "st_8_e1", "st_16_e1", "ffn_4-8-16_e1", "ffn_4-8-16_init-st16_e1",
        "ffn_4-8-16_wo-sn_init-st16_e1", "ffn_4-8-16_wo-wa_init-st16_e1", "ffn_4-8-16_wo-td_init-st16_e1",
        "ffn_4-8-16_wo-ws_init-st16_e1", "ffn_4-8-16_lambda2_init-st16_e1", "mixed_4-16_rho0.5_e1",
        "proportional_4-16_rho0.5_e1", "finetune_16to4_e1", "ffn_4-16_init-st16_e1", "ffn_4-8-12-16_init-st16_e1",
        "uniformer_xs"])
    assert sorted(p.name for p in (chain / "models" / "uniformer_xs").iterdir()) == [
        "ffn_4-8-16_init-st16_e1", "st_16_e1", "st_4_e1", "st_8_e1"]


def test_papermill_cli_frames_as_string(chain, params, tmp_path):
    """The real CLI, run from another cwd, with frames given as the STRING "[4,8,16]": reuses 03's run."""
    before = (chain / "models" / "ffn_4-8-16_e1" / "metrics.json").stat().st_mtime_ns
    exe = Path(sys.executable).with_name("papermill")
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "papermill"]
    out = tmp_path / "out.ipynb"
    r = subprocess.run(cmd + [str(ROOT / "notebooks" / "03_train_ffn.ipynb"), str(out), "-p", "frames", "[4,8,16]",
                              "-p", "params_file", str(params), "-p", "out_dir", str(chain), "--cwd", str(tmp_path)],
                       capture_output=True, text=True, env={**os.environ, "FFN_HEADLESS": "1"}, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    text = _text(out)
    assert "frames (4, 8, 16)" in text and "reuse: ffn_4-8-16_e1" in text
    assert (chain / "models" / "ffn_4-8-16_e1" / "metrics.json").stat().st_mtime_ns == before


def test_bad_parameter_is_a_clear_error(chain, params, tmp_path):
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    out = tmp_path / "bad.ipynb"
    with pytest.raises(PapermillExecutionError) as info:
        pm.execute_notebook(str(ROOT / "notebooks" / "03_train_ffn.ipynb"), str(out), progress_bar=False,
                            parameters={"frames": "[4,4]", "params_file": str(params), "out_dir": str(chain)})
    assert info.value.ename == "ConfigError" and "frames" in info.value.evalue and "duplicate" in info.value.evalue
    assert "nb.setup(" in info.value.source  # raised by the parameter check, before any work
    assert "ConfigError" in out.read_text()


def test_suite_stops_at_first_failure(params, tmp_path):
    bad = tmp_path / "bad_option.yaml"
    bad.write_text(yaml.safe_dump({"inherit": str(params), "suite": {"ablation_epochs": "zero"}}))
    r = subprocess.run([sys.executable, "-m", "ffn_core", "suite", "--params", str(bad), "--name", "fail",
                        "--runs-dir", str(tmp_path), "--only", "01,04,07"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 1
    assert "FAILED in notebook 04_ablations.ipynb at cell" in r.stderr and "ConfigError" in r.stderr
    assert "ablation_epochs" in r.stderr
    run = tmp_path / "fail"
    assert (run / "01_data_prep.ipynb").is_file() and not (run / "07_report.ipynb").exists()
    log = json.loads((run / "suite.json").read_text())
    assert log["notebooks"]["04_ablations"]["status"] == "failed" and "07_report" not in log["notebooks"]


def test_cpu_tier_path_ffn_from_st_with_ce_all(chain, params, tmp_path):
    """As params/cpu.yaml: no FFN from scratch, the ST-16-started run with ``loss: ce_all`` is the FFN
    row (its own run dir), 04's MFAL reference is untouched, and the report checks it once, naming its start."""
    import shutil

    from ffn_core.suite import run_suite

    cpu_like = tmp_path / "cpu_like.yaml"
    cpu_like.write_text(yaml.safe_dump({"inherit": str(params), "loss": "ce_all",
                                        "suite": {"ffn_scratch": False, "init_epochs": 1}}))
    runs = tmp_path / "runs"
    shutil.copytree(chain, runs / "cpu_like", ignore=shutil.ignore_patterns("*.ipynb", "report.md"))
    assert run_suite(cpu_like, name="cpu_like", runs_dir=runs, only="01,03,07") == 0
    out = runs / "cpu_like"
    ffn = _csv(out, "03_ffn.csv")
    assert list(dict.fromkeys(ffn.method)) == ["FFN"] and set(ffn.run) == {"ffn_4-8-16_ce-all_init-st16_e1"}
    cfg = yaml.safe_load((out / "models" / "ffn_4-8-16_ce-all_init-st16_e1" / "config.yaml").read_text())
    assert cfg["loss"] == "ce_all" and cfg["init_from"].endswith("st_16_e1/best.pt")
    claims = {c["id"]: c for c in json.loads((out / "results" / "claims.json").read_text())}
    assert "ffn_init_near_st" not in claims and claims["ffn_near_st"]["ours"].startswith("started from ST-16, +1 epochs")
    text = (out / "report.md").read_text()
    assert "loss=ce_all" in text and "`ffn_4-8-16_ce-all_init-st16_e1`" in text


SMALL = ("uniformer_xs", "slowfast_tiny", "tea_tiny")


@pytest.mark.parametrize("model", SMALL)
def test_02_and_03_run_with_every_small_architecture(model, params, tmp_path):
    """``model=`` switches the whole notebook path: 02 (ST, TFD, BN statistics of the model's own
    last stage) and 03 (FFN) run with the small variant of every architecture."""
    from ffn_core.models import get_model_cfg
    from ffn_core.suite import run_suite

    p = tmp_path / f"{model}.yaml"
    p.write_text(yaml.safe_dump({"inherit": str(params), "crop_size": 32,
                                 "suite": {"init_epochs": 0, "ffn_scratch": True, "architectures": []}}))
    runs = tmp_path / "runs"
    assert run_suite(p, name=model, runs_dir=runs, only="02,03", extra={"model": model}) == 0
    out = runs / model
    cross = _csv(out, "02_cross_eval.csv")
    assert set(cross.method) == {f"ST-{t}" for t in FRAMES} and cross.top1.between(0, 100).all()
    bn = _csv(out, "02_bn_stats.csv")
    assert set(bn.model) == {"ST-4", "ST-16"} and bn.layer.str.startswith(get_model_cfg(model).stats_stage).all()
    ffn = _csv(out, "03_ffn.csv")
    assert set(ffn[ffn.trained].frames) == set(FRAMES) and list(dict.fromkeys(ffn.method)) == ["FFN"]
    t8 = _csv(out, "03_table8.csv")
    assert set(t8.model) == {model} and set(t8.family) == {get_model_cfg(model).family}
    for run in ("st_4_e1", "ffn_4-8-16_e1"):
        assert yaml.safe_load((out / "models" / run / "config.yaml").read_text())["model"] == model
