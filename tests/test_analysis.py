"""Unit tests of ffn_core.analysis on hand-made data (no training): cascade, tables, paper numbers,
claims/report, notebook helpers, cached runs, stripping, the suite's selection, the generator."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ffn_core.analysis import cascade, claims, experiments as ex, nbstrip, notebook as nb, paper_numbers, report, runs, tables
from ffn_core.config import Config, ConfigError

ROOT = Path(__file__).resolve().parents[1]


# ---- cascade ----------------------------------------------------------------------------------
def _two_stream():
    """4 samples, 3 classes. T=4 (1 GMAC): conf .9 .6 .4 .95, correct T F F F; T=8 (2): correct T T T F."""
    p4 = np.array([[.9, .05, .05], [.3, .6, .1], [.3, .4, .3], [.025, .95, .025]])
    p8 = np.array([[.8, .1, .1], [.7, .2, .1], [.9, .05, .05], [.3, .6, .1]])
    labels = np.array([0, 0, 0, 0])
    return {4: p4, 8: p8}, labels, {4: 1.0, 8: 2.0}


@pytest.mark.parametrize("tau, acc, cost, exit4", [(0.0, 25.0, 1.0, 1.0), (1.0, 75.0, 3.0, 0.0),
                                                     (0.7, 75.0, 2.0, 0.5), (0.92, 75.0, 2.5, 0.25)])
def test_cascade_hand_made(tau, acc, cost, exit4):
    probs, labels, gm = _two_stream()
    c = cascade.cascade_curve(probs, labels, gm, taus=[tau]).set_index("tau")
    assert c.loc[tau, "top1"] == pytest.approx(acc)
    assert c.loc[tau, "mean_gmacs"] == pytest.approx(cost)  # a sample pays every stream it ran
    assert c.loc[tau, "exit_T4"] == pytest.approx(exit4)
    assert c.loc[tau, "exit_T4"] + c.loc[tau, "exit_T8"] == pytest.approx(1.0)


def test_cascade_includes_endpoints_and_tau1_runs_all_even_at_prob_one():
    probs = {4: np.array([[1.0, 0.0]]), 8: np.array([[0.0, 1.0]])}
    c = cascade.cascade_curve(probs, [1], {4: 1.0, 8: 3.0}, taus=[0.5])
    assert list(c["tau"]) == [0.0, 0.5, 1.0]
    last = c.iloc[-1]
    assert last["mean_gmacs"] == 4.0 and last["top1"] == 100.0  # ran both, answered with T=8


@pytest.mark.parametrize("frames", [(4, 16), (4, 8, 16), (4, 8, 12, 16)])
def test_cascade_cost_monotone_and_matches_single_points(frames):
    rng = np.random.default_rng(0)
    n, c = 50, 5
    probs = {t: rng.dirichlet(np.ones(c), size=n) for t in frames}
    labels = rng.integers(0, c, n)
    gm = {t: float(t) for t in frames}
    curve = cascade.cascade_curve(probs, labels, gm)
    assert np.all(np.diff(curve["mean_gmacs"]) >= -1e-12)
    pts = cascade.single_stream_points(probs, labels, gm).set_index("frames")
    assert curve.iloc[0]["top1"] == pytest.approx(pts.loc[min(frames), "top1"])
    assert curve.iloc[-1]["top1"] == pytest.approx(pts.loc[max(frames), "top1"])
    assert curve.iloc[-1]["mean_gmacs"] == pytest.approx(sum(frames))


def test_cascade_bad_inputs_name_the_problem():
    probs, labels, gm = _two_stream()
    with pytest.raises(ValueError, match="frame count 8"):
        cascade.cascade_curve(probs, labels, {4: 1.0})
    with pytest.raises(ValueError, match=r"probs_by_t\[8\]"):
        cascade.cascade_curve({4: probs[4], 8: probs[8][:2]}, labels, gm)
    with pytest.raises(ValueError, match="taus"):
        cascade.cascade_curve(probs, labels, gm, taus=[1.5])


@pytest.mark.parametrize("frames, n", [((4, 16), 1), ((4, 8, 16), 3), ((4, 8, 12, 16), 7)])
def test_candidate_chains_end_at_the_highest_count(frames, n):
    chains = cascade.candidate_chains(frames)
    assert len(chains) == n == len(set(chains))
    assert chains[0] == tuple(frames)  # the full chain first
    assert all(c[-1] == max(frames) and len(c) >= 2 and list(c) == sorted(c) for c in chains)
    assert cascade.chain_name((8, 16)) == "8→16"
    with pytest.raises(ValueError, match="at least two"):
        cascade.candidate_chains([16])


def _weak_first_stream(n=60, c=4, seed=0):
    """T=4 confidently wrong on a third of the samples, T=8 right and confident on half, T=16 right
    on all but 3: skipping 4 frames is the accurate cheap chain."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    def onehot(pred, conf):
        p = np.full((n, c), (1 - conf) / (c - 1))
        p[np.arange(n), pred] = conf
        return p
    wrong = (labels + 1) % c
    p4 = onehot(np.where(np.arange(n) % 3 == 0, wrong, labels), 0.99)
    p8 = np.where((np.arange(n) % 2 == 0)[:, None], onehot(labels, 0.99), onehot(labels, 0.4))
    p16 = onehot(np.where(np.arange(n) < 3, wrong, labels), 0.9)
    return {4: p4, 8: p8, 16: p16}, labels, {4: 1.0, 8: 2.0, 16: 4.0}


def test_select_chain_skips_a_confidently_wrong_first_stream():
    probs, labels, gm = _weak_first_stream()
    choice, table = cascade.select_chain(probs, labels, gm)
    assert choice["chain"] == (8, 16) and choice["name"] == "8→16"
    assert choice["mean_gmacs"] < gm[16] and choice["reaches"]
    assert choice["top1"] > choice["target_top1"]  # 8-frame exits fix two of 16F's errors
    assert table["chosen"].sum() == 1 and set(table["chain"]) == {"4→8→16", "4→16", "8→16"}
    assert (table["mean_gmacs"] < gm[16]).all()  # every candidate point fits the budget
    # the chosen point is reproduced by the curve of its chain at its τ
    row = cascade.cascade_curve({t: probs[t] for t in choice["chain"]}, labels, gm, [choice["tau"]])
    row = row[row["tau"] == choice["tau"]].iloc[0]
    assert row["top1"] == pytest.approx(choice["top1"]) and row["mean_gmacs"] == pytest.approx(choice["mean_gmacs"])


@pytest.mark.parametrize("frames", [(4, 16), (4, 8, 16), (4, 8, 12, 16)])
def test_select_chain_is_best_among_points_under_budget(frames):
    rng = np.random.default_rng(1)
    n, c = 80, 5
    probs = {t: rng.dirichlet(np.ones(c) * 0.3, size=n) for t in frames}
    labels = rng.integers(0, c, n)
    gm = {t: float(t) for t in frames}
    choice, table = cascade.select_chain(probs, labels, gm)
    budget = gm[max(frames)]
    for chain in cascade.candidate_chains(frames):
        curve = cascade.cascade_curve({t: probs[t] for t in chain}, labels, gm)
        assert curve[curve["mean_gmacs"] < budget]["top1"].max() <= choice["top1"] + 1e-9
    assert choice["mean_gmacs"] < budget


def test_cheapest_matching():
    probs, labels, gm = _two_stream()
    curve = cascade.cascade_curve(probs, labels, gm)
    hit = cascade.cheapest_matching(curve, 75.0)
    assert hit["top1"] >= 75.0 and hit["mean_gmacs"] == pytest.approx(2.0)
    assert cascade.cheapest_matching(curve, 99.0) is None


# ---- paper numbers -------------------------------------------------------------------------------
def test_paper_numbers_tables():
    t1 = paper_numbers.paper_table("table1")
    assert list(t1.columns) == paper_numbers.COLUMNS
    ffn = t1[(t1.method == "FFN")].set_index("frames")["top1"]
    assert ffn.to_dict() == {4: 42.85, 8: 48.20, 16: 50.79}
    fig8 = paper_numbers.paper_table("fig8")
    ffn8 = fig8[fig8.method == "FFN(3)"].set_index("frames")["top1"]
    st8 = fig8[fig8.method == "ST"].set_index("frames")["top1"]
    assert ffn8[16] - st8[16] == pytest.approx(paper_numbers.FIG8_DELTA[16])
    assert fig8[(fig8.frames == 18) & (fig8.method != "FFN−ST")]["approx"].all()
    for name in paper_numbers.list_tables():
        assert not paper_numbers.paper_table(name).empty
    with pytest.raises(KeyError, match="table99"):
        paper_numbers.paper_table("table99")


# ---- tables -------------------------------------------------------------------------------------
def _cross(acc: dict) -> pd.DataFrame:
    rows = []
    for m, row in acc.items():
        t_train = int(m.split("-")[1])
        rows += tables.result_rows(m, row, spec=f"{t_train}F", params="0.7M", gmacs={t: t * 0.1 for t in row},
                                   trained=[t_train])
    return pd.DataFrame(rows)


CROSS = {"ST-4": {4: 60.0, 8: 40.0, 16: 20.0}, "ST-8": {4: 50.0, 8: 70.0, 16: 55.0},
         "ST-16": {4: 15.0, 8: 50.0, 16: 80.0}}


def test_pivot_tfd_and_diagonal():
    m = tables.cross_eval_matrix(_cross(CROSS))
    assert list(m.index) == ["ST-4", "ST-8", "ST-16"] and list(m.columns) == [4, 8, 16]
    assert tables.st_diagonal(m) == {4: 60.0, 8: 70.0, 16: 80.0}
    tfd = tables.tfd_matrix(m)
    assert np.allclose(np.diag(tfd.to_numpy()), 0)
    assert tfd.loc["ST-16", 4] == pytest.approx(-45.0)


def test_top1_markdown_and_params():
    assert tables.top1(np.array([[.9, .1], [.2, .8], [.6, .4]]), np.array([0, 1, 1])) == pytest.approx(200 / 3)
    with pytest.raises(ValueError, match="do not match"):
        tables.top1(np.zeros((3, 2)), np.zeros(2))
    md = tables.markdown_table(pd.DataFrame({"a": [1.234, float("nan")], "b": ["x|y", "z"]}), index=False)
    assert "| 1.23 | x\\|y |" in md and "| – | z |" in md
    assert tables.format_params(25.6e6) == "25.6M" and tables.format_params(25.6e6, 3) == "25.6×3M"
    assert tables.format_params(702498) == "0.702M"


@pytest.mark.parametrize("frames", [(4,), (4, 16), (4, 8, 16)])
def test_bn_statistics_per_stream(frames):
    import torch
    from ffn_core.models import create_model

    model = create_model("tsm_tiny", num_classes=5, frames=frames)
    for name, m in model.named_modules():
        own = name.endswith(f"t{frames[-1]}") or len(frames) == 1  # one count: plain BN, no suffix
        if isinstance(m, torch.nn.BatchNorm2d) and name.startswith("layer4") and own:
            m.running_var.fill_(3.0)
    df = tables.bn_statistics(model)
    assert df["layer"].str.startswith("layer4").all()
    assert set(df["stream"]) == set(frames)
    assert np.allclose(df[df.stream == frames[-1]]["var"], 3.0)
    if len(frames) > 1:
        assert np.allclose(df[df.stream == frames[0]]["var"], 1.0)
    assert len(tables.bn_statistics(model, stage=None)) > len(df)


# ---- notebook helpers -------------------------------------------------------------------------
def test_repo_root_and_resolve(tmp_path):
    assert nb.repo_root(ROOT / "notebooks") == ROOT
    assert nb.resolve("params/smoke.yaml") == ROOT / "params" / "smoke.yaml"
    assert nb.resolve(tmp_path) == tmp_path


def _params(tmp_path, **extra) -> Path:
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump({"frames": [4, 8, 16], "epochs": 3, "data_root": "data/x",
                                    "suite": {"ablation_epochs": 2, "lambdas": [0.5]}}))
    child = tmp_path / "child.yaml"
    child.write_text(yaml.safe_dump({"inherit": "base.yaml", "epochs": 5, "suite": {"lambdas": [2.0]}, **extra}))
    return child


def test_load_params_strips_and_merges_suite_sections(tmp_path):
    cfg, suite = nb.load_params(_params(tmp_path))
    assert cfg.epochs == 5 and cfg.frames == (4, 8, 16)
    assert suite == {"ablation_epochs": 2, "lambdas": [2.0]}
    with pytest.raises(ConfigError, match=r"child.yaml: unknown key\(s\) \['ablation_epochs'\]"):
        nb.load_params(_params(tmp_path, ablation_epochs=3))


def test_setup_validates_parameters(tmp_path):
    p = _params(tmp_path)
    ctx = nb.setup(p, tmp_path / "out", frames="[4,8,16]", seed="3", options={"lambdas": None, "x": 1})
    assert ctx.cfg.frames == (4, 8, 16) and ctx.cfg.seed == 3 and ctx.cfg.strategy == "ffn"
    assert Path(ctx.cfg.data_root) == ROOT / "data" / "x"  # relative to the repo root, not the cwd
    assert ctx.option("lambdas") == [2.0] and ctx.option("x") == 1 and ctx.option("lambdas", [7]) == [7]
    assert ctx.int_option("ablation_epochs") == 2
    with pytest.raises(ConfigError, match="frames"):
        nb.setup(p, tmp_path / "out", frames="[4,4]")
    with pytest.raises(ConfigError, match="epochs"):
        nb.setup(p, tmp_path / "out", epochs="many")
    with pytest.raises(ConfigError, match="not found"):
        nb.setup(tmp_path / "missing.yaml", tmp_path / "out")
    with pytest.raises(ConfigError, match="ablation_epochs"):
        ctx.int_option("ablation_epochs", "zero")
    with pytest.raises(ConfigError, match="checkpoint"):
        ctx.choice_option("checkpoint", "worst", ("best", "last"))
    assert ctx.count_option("init_epochs", "0") == 0 and ctx.count_option("init_epochs", 5) == 5
    assert ctx.int_option("cascade_taus", 2, minimum=2) == 2
    with pytest.raises(ConfigError, match=r"cascade_taus=1: expected an integer >= 2"):
        ctx.int_option("cascade_taus", 1, minimum=2)
    with pytest.raises(ConfigError, match=r"init_epochs=-1: expected an integer >= 0"):
        ctx.count_option("init_epochs", -1)
    with pytest.raises(ConfigError, match="ablation_epochs=0: expected an integer > 0"):
        ctx.int_option("ablation_epochs", 0)
    assert ctx.bool_option("sequence_init", "True") is True and ctx.bool_option("sequence_init") is False
    with pytest.raises(ConfigError, match="sequence_init='maybe': expected true or false"):
        ctx.bool_option("sequence_init", "maybe")
    assert ctx.frame_sets_option("s", "[[4,16],[4,8,16]]") == [(4, 16), (4, 8, 16)]
    with pytest.raises(ConfigError, match=r"s\[1\]"):
        ctx.frame_sets_option("s", [[4, 16], [8, 8]])
    assert ctx.float_list_option("l", "0.5, 2") == [0.5, 2.0]


def test_is_headless(monkeypatch):
    monkeypatch.setenv("FFN_HEADLESS", "1")
    assert nb.is_headless()
    monkeypatch.setenv("FFN_HEADLESS", "0")
    assert not nb.is_headless()
    monkeypatch.delenv("FFN_HEADLESS")
    assert nb.is_headless()  # plain Python (pytest): no notebook frontend


# ---- experiments (configs only) -----------------------------------------------------------------
def test_experiment_configs(tmp_path):
    ctx = nb.setup(_params(tmp_path), tmp_path / "out")
    st = ex.st_exps(ctx, ctx.cfg.frames)
    assert [e.cfg.frames for e in st] == [(4,), (8,), (16,)] and all(e.cfg.strategy == "st" for e in st)
    assert st[0].run_dir == tmp_path / "out" / "models" / "st_4_e5"
    abl = {e.method + e.spec: e.cfg for e in ex.ablation_exps(ctx, (4, 8, 16), 2, [0.5, 1.0])}
    assert not abl["w/o SN"].private_norm and not abl["w/o WA"].weight_alteration
    assert abl["w/o TD"].loss == "ce_all" and not abl["w/o WS"].weight_sharing
    assert abl["FFNλ=0.5"].lambda_kl == 0.5 and "FFNλ=1" not in abl and abl["FFN"].epochs == 2
    assert abl["FFN"].out_dir.endswith("ffn_4-8-16_e2") and not abl["FFN"].init_from
    init = {e.method + e.spec: e.cfg for e in ex.ablation_exps(ctx, (4, 8, 16), 2, [0.5], init=True)}
    assert all(c.init_from.endswith("st_16_e5/best.pt") for c in init.values())
    assert init["w/o SN"].out_dir.endswith("ffn_4-8-16_wo-sn_init-st16_e2") and not init["w/o SN"].private_norm
    assert init["FFN"].out_dir.endswith("ffn_4-8-16_init-st16_e2")
    assert len({c.out_dir for c in init.values()} | {c.out_dir for c in abl.values()}) == 2 * len(abl)
    seq = ex.sequence_exps(ctx, [(4, 16), (4, 8, 24)], 3, init=True)
    assert [e.cfg.init_from.split("/")[-2] for e in seq] == ["st_16_e5", "st_24_e5"]
    assert [e.method for e in seq] == ["FFN(2)", "FFN(3)"] and seq[0].cfg.out_dir.endswith("ffn_4-16_init-st16_e3")
    assert [e.cfg.frames for e in ex.init_sources(ctx, [(4, 16), (4, 8, 16), (8, 24)])] == [(16,), (24,)]
    assert not ex.sequence_exps(ctx, [(4, 16)], 3)[0].cfg.init_from
    fi = ex.ffn_init_exp(ctx, (4, 8, 16), 3)
    assert fi.method == "FFN (init ST-16)" and fi.cfg.out_dir.endswith("ffn_4-8-16_init-st16_e3")
    both = ex.main_ffn_exps(ctx, (4, 8, 16), scratch=True, init_epochs=3)
    assert [e.method for e in both] == ["FFN", "FFN (init ST-16)"] and not both[0].cfg.init_from
    only = ex.main_ffn_exps(ctx, (4, 8, 16), scratch=False, init_epochs=3)
    assert [e.method for e in only] == ["FFN"] and only[0].cfg.out_dir == fi.cfg.out_dir
    assert [e.method for e in ex.main_ffn_exps(ctx, (4, 8, 16))] == ["FFN"]
    with pytest.raises(ConfigError, match="ffn_scratch=false needs init_epochs > 0"):
        ex.main_ffn_exps(ctx, (4, 8, 16), scratch=False, init_epochs=0)
    base = ex.baseline_exps(ctx, (4, 8, 16), 2, [0.5], [0.75])
    ft = base[-1].cfg
    assert ft.strategy == "finetune" and ft.frames == (4,) and ft.finetune_from.endswith("st_16_e5/best.pt")
    assert [e.spec for e in base] == ["ρ=0.50", "ϱ=0.75", "16F→4F"]
    assert ex.default_sequence_sets((4, 8, 16)) == [(4, 16), (4, 8, 16), (4, 8, 12, 16)]
    assert ex.default_tfd_frames((4, 8, 16)) == (4, 6, 8, 10, 12, 14, 16)
    assert ex.default_any_frames((4, 8, 16)) == tuple(range(2, 21))
    with pytest.raises(ConfigError, match="at least 2"):
        ex.check_frames_for("04_ablations", (4,), 2)


@pytest.mark.parametrize("warmup", [None, 0.0, 1.0, 2.5])
def test_st_warmup_applies_to_the_runs_from_scratch_only(tmp_path, warmup):
    """``suite: st_warmup_epochs`` warms up the ST runs (02, and the ST-H every init run starts from,
    the same config); FFN, ablation, baseline and sequence runs from ST-H keep the config's own."""
    ctx = nb.setup(_params(tmp_path), tmp_path / "out")
    if warmup is not None:
        ctx.options["st_warmup_epochs"] = warmup
    st = ex.st_exps(ctx, (4, 8, 16))
    assert [e.cfg.warmup_epochs for e in st] == [ctx.cfg.warmup_epochs if warmup is None else warmup] * 3
    others = [*ex.main_ffn_exps(ctx, (4, 8, 16), scratch=False, init_epochs=2),
              *ex.ablation_exps(ctx, (4, 8, 16), 1, [0.5], init=True),
              *ex.baseline_exps(ctx, (4, 8, 16), 2, [0.5], [0.75], init=True),
              *ex.sequence_exps(ctx, [(4, 16)], 2, init=True)]
    assert all(e.cfg.warmup_epochs == ctx.cfg.warmup_epochs for e in others)
    assert all(e.cfg.init_from or e.cfg.finetune_from for e in others)


def test_st_warmup_must_be_a_number_at_least_0(tmp_path):
    ctx = nb.setup(_params(tmp_path), tmp_path / "out")
    for bad, match in ((-1, "expected a number >= 0"), ("soon", "expected a number")):
        ctx.options["st_warmup_epochs"] = bad
        with pytest.raises(ConfigError, match=f"st_warmup_epochs={bad!r}: {match}"):
            ex.st_exp(ctx, 4)


@pytest.mark.parametrize("loss", ["ce_all", "ce_kl"])
def test_config_loss_names_the_run_dir_and_ablations_keep_mfal(tmp_path, loss):
    """A non-MFAL recipe never shares a run dir with an MFAL run; Table 4 ablates the paper's FFN."""
    ctx = nb.setup(_params(tmp_path), tmp_path / "out")
    ctx.cfg = ctx.cfg.replace(loss=loss)
    tag = loss.replace("_", "-")
    main = ex.main_ffn_exps(ctx, (4, 8, 16), scratch=False, init_epochs=2)[0]
    assert main.cfg.loss == loss and main.cfg.out_dir.endswith(f"ffn_4-8-16_{tag}_init-st16_e2")
    assert ex.sequence_exps(ctx, [(4, 16)], 2)[0].cfg.out_dir.endswith(f"ffn_4-16_{tag}_e2")
    abl = {e.method + e.spec: e.cfg for e in ex.ablation_exps(ctx, (4, 8, 16), 2, [0.5], init=True)}
    assert abl["w/o TD"].loss == "ce_all" and all(c.loss == "mfal" for k, c in abl.items() if k != "w/o TD")
    assert abl["FFN"].out_dir.endswith("ffn_4-8-16_init-st16_e2") and abl["FFN"].out_dir != main.cfg.out_dir
    assert abl["w/o TD"].out_dir.endswith("ffn_4-8-16_wo-td_init-st16_e2")


def test_sampling_table_one_index_per_segment():
    df = ex.sampling_table(32, (4, 8, 16))
    for (t, mode), g in df.groupby(["frames", "mode"]):
        seg = g["index"].to_numpy() // (32 // t)
        assert list(seg) == list(range(t)), (t, mode)


# ---- runs: reuse ---------------------------------------------------------------------------------
def test_train_or_load_reuses_same_config_only(tmp_path, monkeypatch):
    from ffn_core import engine
    from ffn_core.config import save_config

    cfg = Config(out_dir=str(tmp_path / "run"), epochs=1)
    calls = []
    monkeypatch.setattr(engine, "fit", lambda c: calls.append(c) or {"top1": {"16": 1.0}})
    assert runs.train_or_load(cfg)["reused"] is False and len(calls) == 1  # nothing there yet
    save_config(cfg, tmp_path / "run" / "config.yaml")
    (tmp_path / "run" / "metrics.json").write_text(json.dumps({"top1": {"16": 50.0}}))
    (tmp_path / "run" / "best.pt").write_bytes(b"x")
    again = runs.train_or_load(cfg.replace(log_every=3, num_workers=2, device="cpu"))
    assert again == {"top1": {"16": 50.0}, "reused": True} and len(calls) == 1
    assert runs.config_differences(yaml.safe_load((tmp_path / "run" / "config.yaml").read_text()),
                                   cfg.replace(lr=0.1)) == ["lr"]
    runs.train_or_load(cfg.replace(lr=0.1))
    assert len(calls) == 2


# ---- claims and report ----------------------------------------------------------------------------
def _write_results(out: Path, ffn_16: float, init_16: float | None = None) -> None:
    res = out / "results"
    res.mkdir(parents=True)
    ex.save_table(_cross(CROSS), res / "02_cross_eval.csv")
    rows = tables.result_rows("FFN", {4: 62.0, 8: 71.0, 16: ffn_16}, spec="4/8/16", params="0.71M",
                              gmacs={4: 0.41, 8: 0.81, 16: 1.61}, trained=[4, 8, 16])
    if init_16 is not None:  # 03 with init_epochs > 0: a second FFN row set
        rows += tables.result_rows("FFN (init ST-16)", {4: 61.0, 8: 70.5, 16: init_16}, spec="4/8/16",
                                   params="0.71M", gmacs={4: 0.41, 8: 0.81, 16: 1.61}, trained=[4, 8, 16])
    ffn = pd.DataFrame(rows)
    ex.save_table(ffn, res / "03_ffn.csv")
    ex.save_table(pd.DataFrame([dict(model="FFN", frames=t, params=710000, gmacs=g) for t, g in
                                ((4, 0.41), (8, 0.81), (16, 1.61))]), res / "03_costs.csv")
    ex.save_table(pd.DataFrame([dict(model=f"ST-{t}", frames=t, params=700000, gmacs=t * 0.1) for t in (4, 8, 16)]),
                  res / "02_costs.csv")
    ex.save_table(ex.comparison_rows(ffn, res / "02_cross_eval.csv"), res / "03_comparison.csv")
    (res / "01_data.json").write_text(json.dumps({"dataset": "synthetic", "num_train": 10}))


def test_claims_and_report_say_what_does_not_hold(tmp_path):
    _write_results(tmp_path, ffn_16=75.0)  # 5 points under ST-16: "FFN >= ST - 1" fails at 16F
    path = report.build_report(tmp_path)
    text = path.read_text()
    verdicts = {c["id"]: c["holds"] for c in json.loads((tmp_path / "results" / "claims.json").read_text())}
    assert verdicts["tfd"] is True and verdicts["ffn_near_st"] is False and verdicts["ffn_beats_st"] is False
    assert verdicts["ffn_vs_h"] is True and verdicts["baselines"] is None
    assert "**Does not hold on this run:**" in text and "16F: 75.00 vs 80.00 (-5.00)" in text
    assert "| ST-16 | 16F | 15.00 | 20.60 |" in text  # ours beside the paper's, per frame count
    assert "## Baselines (Table 1)" in text and "not measured" in text
    assert "- started from `" not in text  # no run with init_from in this folder


@pytest.mark.parametrize("init_16, expected", [(None, None), (79.5, True), (78.0, False)])
def test_init_claim_is_separate_from_the_main_ffn(tmp_path, init_16, expected):
    _write_results(tmp_path, ffn_16=75.0, init_16=init_16)
    got = {c.id: c for c in claims.check_claims(report.load_results(tmp_path))}
    assert got["ffn_init_near_st"].holds is expected
    assert got["ffn_near_st"].holds is False and "16F: 75.00 vs 80.00" in got["ffn_near_st"].ours
    if init_16 is not None:
        assert f"16F: {init_16:.2f} vs 80.00" in got["ffn_init_near_st"].ours


def test_main_ffn_started_from_st_is_checked_once_and_named(tmp_path):
    """``ffn_scratch: false``: the ST-H-started run is the FFN row; its claim names the start and the
    separate init claim does not apply (left out, not "not measured")."""
    _write_results(tmp_path, ffn_16=79.5)
    ffn = pd.read_csv(tmp_path / "results" / "03_ffn.csv")
    ex.save_table(ffn.assign(run="ffn_4-8-16_ce-all_init-st16_e8"), tmp_path / "results" / "03_ffn.csv")
    got = {c.id: c for c in claims.check_claims(report.load_results(tmp_path))}
    assert "ffn_init_near_st" not in got
    assert got["ffn_near_st"].holds is True and got["ffn_near_st"].ours.startswith("started from ST-16, +8 epochs: ")
    assert got["ffn_vs_h"].holds is True


@pytest.mark.parametrize("st_4, ffn_4, holds", [(64.9, 63.9, True), (64.9, 63.8, False), (61.0, 60.0, True)])
def test_a_gap_exactly_at_the_tolerance_holds_despite_float_error(tmp_path, st_4, ffn_4, holds):
    """63.9 - 64.9 is -1.0000000000000142 in floats: "FFN >= ST - 1" must still hold (a fresh-clone
    run was once reported as failing "short by 0.00 beyond the tolerance"); 0.1 point more fails."""
    _write_results(tmp_path, ffn_16=82.0)
    res = tmp_path / "results"
    ex.save_table(_cross({**CROSS, "ST-4": {**CROSS["ST-4"], 4: st_4}}), res / "02_cross_eval.csv")
    ffn = pd.read_csv(res / "03_ffn.csv")
    ex.save_table(ffn.assign(top1=ffn["top1"].where(ffn["frames"] != 4, ffn_4)), res / "03_ffn.csv")
    got = {c.id: c for c in claims.check_claims(report.load_results(tmp_path))}
    assert got["ffn_near_st"].holds is holds
    assert ("beyond the tolerance" in got["ffn_near_st"].ours) is (not holds)


def _any_frame(out: Path) -> None:
    rows = (tables.result_rows("ST", {4: 60.0, 8: 70.0, 16: 80.0}, trained=[4, 8, 16])
            + tables.result_rows("H-trained", {2: 5.0, 4: 15.0, 12: 70.0, 16: 80.0, 20: 78.0}, spec="16F")
            + tables.result_rows("FFN(3)", {2: 30.0, 4: 62.0, 8: 71.0, 12: 75.0, 16: 82.0, 20: 80.0}, spec="4/8/16")
            + tables.result_rows("FFN(3)", {4: 61.0, 8: 60.0, 12: 76.0, 16: 79.0}, spec="4/10/16")
            + tables.result_rows("FFN(4)", {4: 61.0, 12: 77.0, 16: 81.0}, spec="4/8/12/16")
            + tables.result_rows("FFN(4)", {4: 60.0, 16: 81.0, 24: 82.0}, spec="4/8/16/24"))
    ex.save_table(pd.DataFrame(rows), out / "results" / "06_any_frame.csv")


def test_claims_hold_when_ffn_wins(tmp_path):
    _write_results(tmp_path, ffn_16=82.0)
    _any_frame(tmp_path)
    r = report.load_results(tmp_path)
    got = {c.id: c.holds for c in claims.check_claims(r)}
    assert got["ffn_near_st"] is True and got["ffn_beats_st"] is True and got["nearby"] is True
    assert got["sequences"] is True and got["any_frame"] is True and got["out_of_range"] is True
    text = report.build_report(tmp_path).read_text()
    assert "| FFN | v^M=10F |" in text and "| FFN(4) | 4/8/16/24 |" in text  # Tables 6 and 3
    assert "| FFN−ST | Δ | – | 0.12 |" in text  # Fig. 8: our delta beside the paper's (no 2F ST here)


def _cascade_results(out: Path, val_top1_picked: float) -> None:
    """06's three cascade files: FFN full chain 4→8→16 (never reaches 16F's 80 % below its cost) and
    the picked 8→16, whose best point below 16F's cost is ``val_top1_picked``."""
    res = out / "results"
    pts = pd.DataFrame([dict(frames=t, top1=a, gmacs=g, model="FFN") for t, a, g in ((4, 60.0, 1.0), (8, 70.0, 2.0),
                                                                                     (16, 80.0, 4.0))])
    full = pd.DataFrame([dict(tau=0.0, top1=60.0, mean_gmacs=1.0), dict(tau=0.9, top1=79.0, mean_gmacs=3.5),
                         dict(tau=1.0, top1=80.0, mean_gmacs=7.0)]).assign(model="FFN", chain="4→8→16", picked=False)
    pick = pd.DataFrame([dict(tau=0.0, top1=70.0, mean_gmacs=2.0), dict(tau=0.7, top1=val_top1_picked, mean_gmacs=3.0),
                         dict(tau=1.0, top1=80.0, mean_gmacs=6.0)]).assign(model="FFN", chain="8→16", picked=True)
    sel = pd.DataFrame([dict(chain="4→8→16", length=3, calib_tau=0.9, calib_top1=81.0, calib_mean_gmacs=3.4,
                             reaches=True, chosen=False),
                        dict(chain="8→16", length=2, calib_tau=0.7, calib_top1=82.0, calib_mean_gmacs=3.1,
                             reaches=True, chosen=True, val_top1=val_top1_picked, val_gmacs=3.0)]
                       ).assign(model="FFN", calib="data/x/calib.txt")
    ex.save_table(pts, res / "06_cascade_points.csv")
    ex.save_table(pd.concat([full, pick], ignore_index=True), res / "06_cascade.csv")
    ex.save_table(sel, res / "06_cascade_selection.csv")


@pytest.mark.parametrize("val_top1, holds", [(80.5, True), (79.5, False)])
def test_cascade_claim_uses_the_chain_picked_on_held_out_clips(tmp_path, val_top1, holds):
    _write_results(tmp_path, ffn_16=82.0)
    _cascade_results(tmp_path, val_top1)
    got = {c.id: c for c in claims.check_claims(report.load_results(tmp_path))}["cascade"]
    assert got.holds is holds  # the full chain's 79 % below 16F's cost is not what is judged
    assert f"give on val {val_top1:.2f}% at 3 GMACs" in got.ours and "8→16" in got.ours
    if holds:
        assert got.ours.startswith("8→16 τ=0.7: 80.50% at 3 GMACs vs 16F 80.00% at 4 (25% cheaper)")
    text = report.build_report(tmp_path).read_text()
    assert "picked on the held-out clips of `calib.txt`" in text
    assert "| FFN | 8→16 | 0.7 |" in text  # the picked chain's curve, not the full one's
    assert "| FFN | 4→8→16 | 0.9 | 79 |" not in text


def test_calib_list_option(tmp_path):
    root = tmp_path / "data"
    ctx = nb.setup(_params(tmp_path, data_root=str(root)), tmp_path / "out")
    assert Path(ctx.cfg.data_root) == root
    assert ctx.calib_list_option("cascade_calib") is None  # auto, and data_root has no calib.txt
    assert ctx.calib_list_option("cascade_calib", "none") is None and ctx.calib_list_option("c", False) is None
    lst = tmp_path / "held.txt"
    lst.write_text("videos/a.mp4 8 0\n")
    assert ctx.calib_list_option("cascade_calib", str(lst)) == lst
    with pytest.raises(ConfigError, match=r"cascade_calib='nope.txt': list file .*nope.txt not found"):
        ctx.calib_list_option("cascade_calib", "nope.txt")
    with pytest.raises(ConfigError, match="cascade_calib=3"):
        ctx.calib_list_option("cascade_calib", 3)
    root.mkdir()
    (root / "calib.txt").write_text("videos/a.mp4 8 0\n")
    assert ctx.calib_list_option("cascade_calib", "auto") == root / "calib.txt"
    assert ctx.calib_list_option("cascade_calib") == root / "calib.txt"  # auto is the default


def test_side_by_side_keeps_paper_only_rows():
    ours = pd.DataFrame(tables.result_rows("ST", {4: 1.0, 8: 2.0}))
    t = report.side_by_side(ours, paper_numbers.paper_table("table4"))
    assert list(t.columns[:4]) == ["method", "spec", "4F ours", "4F paper"]
    assert t.iloc[0]["4F ours"] == 1.0 and t.iloc[0]["4F paper"] == 39.71
    wo = t[t.method == "w/o SN"].iloc[0]
    assert np.isnan(wo["4F ours"]) and wo["4F paper"] == 35.79


# ---- stripping, generator, suite selection ----------------------------------------------------
def test_nbstrip(tmp_path):
    import nbformat

    nbk = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1+1")])
    nbk.cells[0].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=1)]
    nbk.cells[0].execution_count = 1
    nbk.cells[0].metadata.update({"tags": ["parameters"], "papermill": {"duration": 1}})
    nbk.metadata.update({"kernelspec": {"name": "python3", "display_name": "P", "language": "python"},
                         "language_info": {"name": "python"}, "papermill": {"x": 1}, "widgets": {}})
    path = tmp_path / "a.ipynb"
    nbformat.write(nbk, path)
    assert nbstrip.main(["--check", str(path)]) == 1
    assert nbstrip.main([str(path)]) == 0 and nbstrip.is_stripped(path)
    out = nbformat.read(path, 4)
    assert out.cells[0].outputs == [] and out.cells[0].execution_count is None
    assert out.cells[0].metadata == {"tags": ["parameters"]}
    assert set(out.metadata) == {"kernelspec", "language_info"}


def test_committed_notebooks_are_generated_stripped_and_parameterised():
    import nbformat

    assert subprocess.run([sys.executable, "tools/make_notebooks.py", "--check"], cwd=ROOT).returncode == 0
    paths = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert [p.stem[:2] for p in paths] == ["01", "02", "03", "04", "05", "06", "07"]
    for p in paths:
        assert nbstrip.is_stripped(p), p
        nbk = nbformat.read(p, 4)
        assert nbk.metadata["kernelspec"]["name"] == "python3" and nbk.metadata["language_info"]["name"] == "python"
        first = next(c for c in nbk.cells if c.cell_type == "code")
        assert "parameters" in first.metadata.get("tags", []), p
        for name in ("params_file", "out_dir", "frames", "seed", "device"):
            assert f"\n{name} = " in "\n" + first.source, (p, name)
        # papermill must see every parameter (`papermill --help-notebook`, typed -p): it cannot parse
        # a line whose comment holds "=", and then silently leaves that parameter out
        from papermill.translators import PythonTranslator

        assigned = re.findall(r"^(\w+)\s*=", first.source, re.M)
        assert [q.name for q in PythonTranslator.inspect({"source": first.source})] == assigned, p


def test_suite_selects_notebooks():
    from ffn_core.suite import NOTEBOOKS, select_notebooks

    assert select_notebooks("03,07") == ["03_train_ffn", "07_report"]
    assert select_notebooks("7, 3") == ["03_train_ffn", "07_report"]
    assert select_notebooks("02_baseline_tfd") == ["02_baseline_tfd"]
    assert select_notebooks(None) == list(NOTEBOOKS)
    with pytest.raises(ConfigError, match="'9' is not a notebook"):
        select_notebooks("9")


# ---- plots and the widget (no training) ---------------------------------------------------------
def test_plots_write_png(tmp_path):
    from matplotlib.figure import Figure

    from ffn_core.analysis import plots

    cross = _cross(CROSS)
    m = tables.cross_eval_matrix(cross)
    probs, labels, gm = _two_stream()
    curve = cascade.cascade_curve(probs, labels, gm)
    pts = cascade.single_stream_points(probs, labels, gm)
    figs = {
        "heat": plots.plot_heatmap(m, tmp_path / "heat.png"),
        "gm": plots.plot_acc_vs_gmacs(cross, tmp_path / "gm.png"),
        "lines": plots.plot_accuracy_lines(cross, tmp_path / "lines.png", trained_range=(4, 16)),
        "bars": plots.plot_grouped_bars(cross, tmp_path / "bars.png"),
        "casc": plots.plot_cascade({"FFN": curve}, {"FFN": pts}, tmp_path / "casc.png"),
        "samp": plots.plot_sampling(ex.sampling_table(32, (4, 8)), 32, tmp_path / "samp.png"),
        "clips": plots.plot_clips([np.zeros((4, 8, 8, 3), np.uint8)], ["x"], tmp_path / "clips.png"),
    }
    for name, fig in figs.items():
        assert isinstance(fig, Figure) and (tmp_path / f"{name}.png").stat().st_size > 500, name
    with pytest.raises(ValueError, match="expected a clip"):
        plots.denormalize(np.zeros((4, 8, 8, 3)))


def test_cascade_results_plot_colours_by_model_and_dashes_the_chains_not_picked(tmp_path):
    from ffn_core.analysis import plots

    probs, labels, gm = _weak_first_stream()
    full = cascade.cascade_curve(probs, labels, gm).assign(model="FFN", chain="4→8→16", picked=False)
    pick = cascade.cascade_curve({t: probs[t] for t in (8, 16)}, labels, gm).assign(model="FFN", chain="8→16",
                                                                                   picked=True)
    st = full.assign(model="ST", picked=True)
    pts = pd.concat([cascade.single_stream_points(probs, labels, gm).assign(model=m) for m in ("FFN", "ST")])
    fig = plots.plot_cascade_results(pd.concat([full, pick, st]), pts, tmp_path / "c.png")
    lines = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
    assert set(lines) == {"FFN 4→8→16 cascade (τ from 0 to 1)", "FFN 8→16 (picked on held-out) cascade (τ from 0 to 1)",
                          "ST 4→8→16 cascade (τ from 0 to 1)"}
    ffn_full, ffn_pick = lines["FFN 4→8→16 cascade (τ from 0 to 1)"], lines["FFN 8→16 (picked on held-out) cascade (τ from 0 to 1)"]
    assert ffn_full.get_linestyle() == "--" and ffn_pick.get_linestyle() == "-"
    assert ffn_full.get_color() == ffn_pick.get_color() != lines["ST 4→8→16 cascade (τ from 0 to 1)"].get_color()
    assert (tmp_path / "c.png").stat().st_size > 500


class _FakeVal:
    """A validation 'dataset' whose item i at T frames is ((clip (T, 3, 8, 8),), label i % 3)."""

    class spec:
        mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)

    def __init__(self, T):
        self.T = T

    def __len__(self):
        return 4

    def __getitem__(self, i):
        import torch

        return (torch.full((self.T, 3, 8, 8), float(i)),), i % 3


@pytest.mark.parametrize("T", [2, 4, 7])
def test_widget_explore_and_explorer(T, capsys):
    import torch
    from ffn_core.analysis import widgets
    from ffn_core.models import create_model

    models = {"ST-4": create_model("tsm_tiny", num_classes=3, frames=(4,)).eval(),
              "FFN": create_model("tsm_tiny", num_classes=3, frames=(4, 8)).eval()}
    r = widgets.explore(models, _FakeVal, 1, T, gmacs_for=lambda name, t: 0.1 * t)
    assert r["frames"].shape == (T, 8, 8, 3) and r["frames"].dtype == np.uint8 and r["label"] == 1
    assert r["stream"] == {"ST-4": 4, "FFN": 4 if T < 6 else 8}  # nearest trained count, ties higher
    for p in r["probs"].values():
        assert p.shape == (3,) and p.sum() == pytest.approx(1.0, abs=1e-5)
    assert r["gmacs"]["FFN"] == pytest.approx(0.1 * T)
    w = widgets.frame_explorer(models, _FakeVal, ["a", "b", "c"], frames_range=(2, 8), start_frames=T)
    sliders = w.children[0].children
    sliders[1].value = 2  # another video: the panel is redrawn
    assert "<b>c</b> (label 2)" in w.children[1].value
    assert widgets.show_explorer(models, _FakeVal, ["a", "b", "c"], headless=True) is None
    assert "explorer is skipped" in capsys.readouterr().out
    with torch.no_grad(), pytest.raises(IndexError, match="video index 9"):
        widgets.explore(models, _FakeVal, 9, T)


def test_report_section_names_differing_epochs_and_skips_rows_without_a_run():
    rows = pd.DataFrame(tables.result_rows("ST", {4: 60.0, 16: 80.0}, trained=[4, 16])).assign(epochs=float("nan"))
    rows = pd.concat([rows,
                      pd.DataFrame(tables.result_rows("FFN", {4: 55.0, 16: 79.0}, spec="4/16", trained=[4, 16])).assign(epochs=12),
                      pd.DataFrame(tables.result_rows("w/o SN", {4: 40.0, 16: 60.0}, trained=[4, 16])).assign(epochs=2)],
                     ignore_index=True)
    text = report._section("Design ablation (Table 4)", rows, paper_numbers.paper_table("table4"))
    assert "Epochs differ between rows: FFN 4/16 12, w/o SN 2." in text


def test_seed_spread_table():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "tools" / "seed_spread.py"
    spec = importlib.util.spec_from_file_location("seed_spread", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    df = pd.DataFrame({"seed": [0, 1, 2, 0, 1, 2], "method": ["ST"] * 3 + ["FFN"] * 3, "frames": [4] * 6,
                       "top1": [60.0, 62.0, 64.0, 70.0, 70.0, 73.0]})
    t = mod.spread(df).set_index("method")
    assert t.loc["ST", "mean"] == 62.0 and t.loc["ST", "std"] == pytest.approx(2.0)
    assert (t.loc["FFN", "min"], t.loc["FFN", "max"], t.loc["FFN", "seeds"]) == (70.0, 73.0, 3)


def test_suite_timing_separates_table8_training(tmp_path, capsys):
    """tools/suite_timing.py: notebook seconds from suite.json, training runs from metrics.csv, and the
    Table 8 runs (models/<architecture>/...) summed apart from the rest."""
    import importlib.util
    import json

    path = Path(__file__).resolve().parents[1] / "tools" / "suite_timing.py"
    spec = importlib.util.spec_from_file_location("suite_timing", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    (tmp_path / "suite.json").write_text(json.dumps({"notebooks": {
        "02_baseline_tfd": {"status": "ok", "seconds": 100.0}, "03_train_ffn": {"status": "ok", "seconds": 300.0}}}))
    head = "epoch,data_time_s,step_time_s,epoch_time_s\n"
    for rel, rows in {"st_4_e2": "1,1.0,9.0,10.5\n2,1.0,9.0,10.5\n",
                      "uniformer_xs/st_4_e2": "1,2.0,38.0,40.0\n2,2.0,38.0,40.0\n"}.items():
        (tmp_path / "models" / rel).mkdir(parents=True)
        (tmp_path / "models" / rel / "metrics.csv").write_text(head + rows)
    rows = {r["run"]: r for r in mod.run_rows(tmp_path)}
    assert rows["st_4_e2"]["train_s"] == 21.0 and not rows["st_4_e2"]["table8"]
    assert rows["uniformer_xs/st_4_e2"]["table8"] and rows["st_4_e2"]["data_pct"] == pytest.approx(10.0)
    assert mod.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| **all** | | **400** (6.7 min) |" in out and "| **all but Table 8's training** | | **320** (5.3 min) |" in out
    with pytest.raises(SystemExit, match="suite.json not found"):
        mod.main([str(tmp_path / "nothing")])
