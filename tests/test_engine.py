"""Engine: stream_backward == summed backward, param groups, schedules, strategies, checkpoints,
fit's run directory, evaluation (routing, views, per-sample probabilities, cross-eval, ensemble).

Data: a 16-train / 8-val clip synthetic benchmark (16 frames, 32 px) generated once per session;
models: tsm_tiny at 16 px crops. One thread (the CI machine is shared: intra-op threads only add
contention at this size).
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import yaml

from ffn_core.config import Config
from ffn_core.engine import CheckpointError, cross_evaluate, evaluate, fit, load_checkpoint, predict, read_checkpoint
from ffn_core.engine.checkpoint import save_checkpoint
from ffn_core.engine.metrics import ClassificationTally, topk_correct
from ffn_core.engine.optim import build_optimizer, lr_factor, param_groups
from ffn_core.engine.step import forward_backward
from ffn_core.engine.strategies import build_strategy
from ffn_core.losses import MFALoss
from ffn_core.models import create_model


def make_cfg(data_root, out_dir, **kw) -> Config:
    base = dict(dataset="synthetic", data_root=str(data_root), frames=(2, 4), crop_size=16, model="tsm_tiny",
                strategy="ffn", epochs=1, batch_size=4, optimizer="adamw", lr=2e-3, fc_lr_mult=False,
                num_workers=0, device="cpu", log_every=100, out_dir=str(out_dir), dropout=0.0)
    return Config.from_dict({**base, **kw})


@pytest.fixture(scope="module")
def ffn_run(data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("ffn_run")
    metrics = fit(make_cfg(data_root, out, epochs=2, eval_frames=(2, 3, 4)))
    return out, metrics


# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("frames", [(2, 4), (2, 4, 8)])
@pytest.mark.parametrize("mode, private_norm", [("mfal", True), ("ce_all", True), ("ce_kl", True), ("mfal", False)])
def test_stream_backward_equals_summed_backward(frames, mode, private_norm):
    """Same gradients (float64) whether the streams are back-propagated together or one by one."""
    torch.manual_seed(0)
    model = create_model("tsm_tiny", num_classes=5, frames=frames, dropout=0.3, private_norm=private_norm).double()
    with torch.no_grad():  # WA starts at 0 and fc near 0: perturb so every term has a real gradient
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    clips = [torch.randn(3, t, 3, 16, 16, dtype=torch.float64) for t in frames]
    target = torch.tensor([0, 3, 1])
    loss_fn = MFALoss(lambda_kl=0.7, mode=mode)
    inputs = [(t, x) for t, x in sorted(zip(frames, clips), key=lambda p: -p[0])]
    grads, results = [], []
    for stream_backward in (False, True):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(1)  # same dropout masks: both paths forward in the same order
        total, terms, top = forward_backward(model, inputs, target, loss_fn, stream_backward=stream_backward)
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        results.append((total, terms, top))
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 10
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-9, atol=1e-12, msg=name)
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-10, atol=1e-12)
    assert results[0][1].keys() == results[1][1].keys()
    for k in results[0][1]:
        torch.testing.assert_close(results[1][1][k], results[0][1][k])


def test_param_groups_lr_mult_and_decay():
    model = create_model("tsm_tiny", num_classes=7, frames=(4, 8))
    groups = {g["name"]: g for g in param_groups(model, weight_decay=5e-4, fc_lr_mult=True)}
    ids = lambda g: {id(p) for p in g["params"]}  # noqa: E731
    assert ids(groups["fc_weight"]) == {id(model.get_classifier().weight)} and groups["fc_weight"]["lr_mult"] == 5
    assert ids(groups["fc_bias"]) == {id(model.get_classifier().bias)} and groups["fc_bias"]["lr_mult"] == 10
    assert groups["fc_bias"]["weight_decay"] == 0 and groups["fc_weight"]["weight_decay"] == 5e-4
    bn = model.layer1[0].bn1.copy_for(8)
    assert {id(bn.weight), id(bn.bias)} <= ids(groups["no_decay"]) and groups["no_decay"]["weight_decay"] == 0
    wa = model.layer2[0].alter.copy_for(4).weight
    assert id(wa) in ids(groups["decay"]) and id(model.conv1.weight) in ids(groups["decay"])
    every = [id(p) for g in groups.values() for p in g["params"]]
    assert sorted(every) == sorted(id(p) for p in model.parameters()) and len(set(every)) == len(every)
    plain = {g["name"] for g in param_groups(model, 5e-4, fc_lr_mult=False)}
    assert plain == {"decay", "no_decay"}
    opt = build_optimizer(model, Config(optimizer="sgd", lr=0.01, fc_lr_mult=True))
    assert {g["name"]: g["lr"] for g in opt.param_groups}["fc_bias"] == pytest.approx(0.1)


def test_lr_schedules():
    cos = Config(epochs=4, schedule="cosine", warmup_epochs=1)
    f = [lr_factor(s, 10, cos) for s in range(40)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:])) and f[39] < 0.01
    step = Config(epochs=6, schedule="step", lr_steps=(2, 4))
    assert [lr_factor(s, 5, step) for s in (0, 9, 10, 19, 20)] == pytest.approx([1, 1, 0.1, 0.1, 0.01])
    assert lr_factor(17, 5, Config(schedule="constant")) == 1.0


@pytest.mark.parametrize("rho", [0.0, 1.0])
def test_mixed_and_proportional_inputs(rho):
    x_low, x_high = torch.randn(3, 4, 3, 8, 8), torch.randn(3, 16, 3, 8, 8)
    gen = torch.Generator().manual_seed(0)
    mixed = build_strategy(Config(strategy="mixed", frames=(4, 16), rho=rho))
    assert mixed.model_frames() == (16,) and mixed.data_frames() == (4, 16)
    ((stream, x),) = mixed.inputs([x_low, x_high], gen)
    assert stream == 16 and x.shape == x_high.shape
    changed = (x != x_high).flatten(2).any(-1)  # (B, T): which frames were mixed
    if rho == 0:
        assert not changed.any()
    else:
        for b in range(3):
            idx = changed[b].nonzero().flatten().tolist()
            assert len(idx) == 4 and idx == list(range(idx[0], idx[0] + 4))
            torch.testing.assert_close(x[b, idx], 0.5 * x_high[b, idx] + 0.5 * x_low[b])
    prop = build_strategy(Config(strategy="proportional", frames=(4, 16), rho=rho))
    ((stream, x),) = prop.inputs([x_low, x_high], gen)
    assert stream == 16 and x is (x_high if rho == 1 else x_low)


def test_ffn_inputs_highest_first():
    s = build_strategy(Config(strategy="ffn", frames=(4, 8, 16)))
    clips = [torch.zeros(1, t, 3, 4, 4) for t in (4, 8, 16)]
    assert [t for t, _ in s.inputs(clips, None)] == [16, 8, 4]
    assert s.best_frames == 16


def test_topk_and_per_class():
    logits = torch.tensor([[3.0, 2, 1], [1, 3, 2], [1, 2, 3], [3, 1, 2]])
    target = torch.tensor([0, 2, 0, 2])
    assert topk_correct(logits, target, (1, 2, 5)) == [1, 3, 4]
    tally = ClassificationTally(3)
    tally.update(logits, target)
    r = tally.result()
    assert r["top1"] == 25.0 and r["num_samples"] == 4
    assert r["per_class_top1"][0] == 50.0 and r["per_class_top1"][2] == 0.0 and math.isnan(r["per_class_top1"][1])


def test_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(bad)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="not a ffn checkpoint"):
        read_checkpoint(other)


# ---------------------------------------------------------------------------------------------
def test_fit_writes_run_directory(ffn_run):
    out, metrics = ffn_run
    for name in ("config.yaml", "metrics.csv", "metrics.json", "last.pt", "best.pt"):
        assert (out / name).is_file(), name
    assert not list(out.glob("*.tmp"))
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    for col in ("epoch", "lr", "train_loss", "train_ce", "train_kl_2", "train_top1", "val_top1_2", "val_top1_3",
                "val_top5_4", "data_time_s", "step_time_s", "samples_per_s"):
        assert col in header, col
    assert len((out / "metrics.csv").read_text().splitlines()) == 3  # header + 2 epochs
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["best_frames"] == 4 and saved["routed"] == {"2": 2, "3": 4, "4": 4}
    assert metrics["run_dir"] == saved["run_dir"] and set(metrics["top1"]) == {2, 3, 4}
    best, last = read_checkpoint(out / "best.pt"), read_checkpoint(out / "last.pt")
    assert best["epoch"] == saved["best_epoch"] and last["epoch"] == 2
    assert last["frames"] == [2, 4] and last["config"]["frames"] == [2, 4] and "versions" in last
    assert not any(k.startswith("module.") for k in last["model"])
    assert {"python", "numpy", "torch", "cuda"} <= set(last["rng"])


def test_evaluate_routes_views_and_saves_probs(ffn_run, tmp_path):
    out, metrics = ffn_run
    model, cfg = load_checkpoint(out / "last.pt")
    assert model.frames == (2, 4) and not model.training
    res = evaluate(model, cfg, frames=(3, 4), out_dir=tmp_path, save_logits=True)
    assert res["routed"] == {3: 4, 4: 4} and res["num_samples"] == {3: 8, 4: 8}
    assert res["top1"][4] == pytest.approx(metrics["top1"][4])  # the same weights as fit's last eval
    saved = np.load(tmp_path / "logits_T3.npz")
    assert saved["probs"].shape == (8, 18) and saved["labels"].shape == (8,)
    np.testing.assert_allclose(saved["probs"].sum(1), 1.0, rtol=1e-5)
    acc = 100 * np.mean(saved["probs"].argmax(1) == saved["labels"])
    assert acc == pytest.approx(res["top1"][3])
    # two temporal clips x three crops = 6 views, softmax averaged over views
    multi = cfg.replace(num_clips=2, test_crops=3)
    from ffn_core.data import build_dataset
    from ffn_core.engine.distributed import DistInfo
    from ffn_core.engine.loader import build_eval_loader

    ds = build_dataset(multi, "val", frames=(4,))
    probs, labels = predict(model, build_eval_loader(ds, 4, 0, DistInfo(), torch.device("cpu")), T=4)
    assert probs.shape == (8, 18) and (labels == np.array([r.label for r in ds.records])).all()
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    clips, _ = ds[0]
    with torch.no_grad():
        manual = model(clips[0]).softmax(-1).mean(0)  # (6, T, 3, H, W): the views as a batch
    np.testing.assert_allclose(probs[0], manual.numpy(), rtol=1e-4, atol=1e-6)


def test_cross_evaluate_matrix_and_ensemble(ffn_run, tmp_path):
    out, _ = ffn_run
    res = cross_evaluate([out / "best.pt", out / "last.pt"], "2,6", tmp_path, ensemble=True, save_logits=True,
                         verbose=False)
    lines = (tmp_path / "cross_eval.csv").read_text().splitlines()
    assert lines[0].split(",")[-2:] == ["2", "6"] and len(lines) == 4
    assert [r["name"] for r in res["rows"]] == [f"{out.name}/best", f"{out.name}/last", "ensemble"]
    saved = json.loads((tmp_path / "cross_eval.json").read_text())
    assert saved["frames"] == [2, 6] and saved["rows"][0]["routed"] == {"2": 2, "6": 4}
    a, b = (np.load(p)["probs"] for p in sorted(tmp_path.glob("logits_*_T6.npz")) if "ensemble" not in p.name)
    ens = np.load(tmp_path / "logits_ensemble_T6.npz")
    np.testing.assert_allclose(ens["probs"], (a + b) / 2, rtol=1e-6)
    assert res["rows"][2]["top1"][6] == pytest.approx(100 * np.mean(ens["probs"].argmax(1) == ens["labels"]))


@pytest.mark.parametrize("strategy, extra", [
    ("st", dict(frames=(4,))),
    ("mixed", dict(frames=(2, 4), rho=1.0)),
    ("proportional", dict(frames=(2, 4), rho=0.5)),
])
def test_single_stream_strategies_train(data_root, tmp_path, strategy, extra):
    m = fit(make_cfg(data_root, tmp_path, strategy=strategy, **extra))
    assert m["model_frames"] == [max(extra["frames"])] and m["best_frames"] == max(extra["frames"])
    assert set(m["top1"]) == set(extra["frames"]) and math.isfinite(m["final_epoch"]["train_loss"])


def test_finetune_starts_from_checkpoint(data_root, tmp_path, ffn_run):
    src = tmp_path / "st4"
    fit(make_cfg(data_root, src, strategy="st", frames=(4,), epochs=1))
    ckpt = read_checkpoint(src / "last.pt")
    m = fit(make_cfg(data_root, tmp_path / "ft2", strategy="finetune", frames=(2,), lr=1e-9,
                     finetune_from=str(src / "last.pt")))
    assert m["model_frames"] == [4] and m["routed"] == {2: 4}
    tuned = read_checkpoint(tmp_path / "ft2" / "last.pt")["model"]
    for k, v in ckpt["model"].items():  # lr ~ 0: the fine-tuned weights are the source weights
        if v.is_floating_point() and "running" not in k:
            torch.testing.assert_close(tuned[k], v, atol=1e-6, rtol=0, msg=k)
    with pytest.raises(CheckpointError, match="not found"):
        fit(make_cfg(data_root, tmp_path / "ft_bad", strategy="finetune", frames=(2,),
                     finetune_from=str(tmp_path / "nope.pt")))


@pytest.mark.parametrize("frames", [(2, 4), (2, 3, 4)])
def test_ffn_init_from_single_stream_checkpoint(data_root, tmp_path, frames):
    src = tmp_path / "st4"
    fit(make_cfg(data_root, src, strategy="st", frames=(4,), epochs=1))
    st = read_checkpoint(src / "last.pt")["model"]
    m = fit(make_cfg(data_root, tmp_path / "ffn", frames=frames, lr=1e-9, init_from=str(src / "last.pt")))
    assert m["model_frames"] == list(frames)
    ffn = read_checkpoint(tmp_path / "ffn" / "last.pt")["model"]
    for key, value in ffn.items():  # lr ~ 0: shared weights, fc and every private norm copy = the source
        if ".alter." in key or not value.is_floating_point() or "running" in key:
            continue
        src_key = ".".join(p for p in key.split(".") if not (p[0] == "t" and p[1:].isdigit()))
        torch.testing.assert_close(value, st[src_key], atol=1e-6, rtol=0, msg=key)
    with pytest.raises(CheckpointError, match="init_from=.*a tsm_tiny checkpoint, but model=tsm_tiny_s2"):
        fit(make_cfg(data_root, tmp_path / "bad", frames=frames, model="tsm_tiny_s2", init_from=str(src / "last.pt")))
    with pytest.raises(CheckpointError, match="init_from=.*per-stream keys"):  # an FFN is not a single-T source
        fit(make_cfg(data_root, tmp_path / "bad2", frames=frames, init_from=str(tmp_path / "ffn" / "last.pt")))


def test_fit_generates_missing_synthetic_data(tmp_path, monkeypatch):
    import ffn_core.data.synthetic as synthetic

    calls = []

    def fake_ensure(root, tier, seed, workers=1, verbose=True):
        calls.append((str(root), tier, seed))
        synthetic.generate(root, synthetic.TierSpec("enginetest", num_train=4, num_val=2, num_frames=8, size=32))
        return root

    monkeypatch.setattr(synthetic, "ensure_synthetic", fake_ensure)
    root = tmp_path / "fresh_data"
    fit(make_cfg(root, tmp_path / "run", frames=(2,), strategy="st", tier="smoke"))
    assert calls == [(str(root), "smoke", 0)] and (tmp_path / "run" / "best.pt").is_file()


def test_missing_data_is_a_clear_error(tmp_path):
    cfg = make_cfg(tmp_path / "nowhere", tmp_path / "run", dataset="ssv1")
    with pytest.raises(FileNotFoundError, match=r"data_root=.*nowhere: no such folder.*ffn_core prepare ssv1"):
        fit(cfg)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"train list .*train\.txt not found.*ffn_core prepare"):
        fit(make_cfg(tmp_path / "empty", tmp_path / "run", dataset="ssv1"))


def test_save_checkpoint_is_atomic_and_plain(tmp_path):
    path = save_checkpoint(tmp_path / "x.pt", {"model": {"w": torch.ones(2)}, "config": Config().to_dict(),
                                                 "frames": [4]})
    assert [p.name for p in tmp_path.iterdir()] == ["x.pt"]
    assert torch.load(path, weights_only=True)["frames"] == [4]


class _RandomToy(torch.utils.data.Dataset):
    """Each item draws from torch's global RNG, like the real dataset's augmentation."""

    num_classes, class_names = 3, ["a", "b", "c"]

    def __len__(self):
        return 12

    def __getitem__(self, i):
        return (torch.rand(2),), i


def _epoch(loader, epoch, seed=3):
    from ffn_core.engine.loader import set_epoch

    set_epoch(loader, epoch, seed)
    return [(idx.tolist(), clips[0]) for clips, idx in loader]


def test_train_loader_is_a_function_of_seed_and_epoch():
    from ffn_core.engine.distributed import DistInfo
    from ffn_core.engine.loader import build_train_loader

    cfg = Config(batch_size=4, seed=3)
    cpu = torch.device("cpu")
    loader, _ = build_train_loader(_RandomToy(), cfg, DistInfo(), cpu)
    before = torch.get_rng_state()
    e0, e0_again, e1 = _epoch(loader, 0), _epoch(loader, 0), _epoch(loader, 1)
    assert torch.equal(torch.get_rng_state(), before)  # sample seeding leaves the global RNG alone
    assert [i for i, _ in e0] == [i for i, _ in e0_again] and all(torch.equal(a, b) for (_, a), (_, b) in zip(e0, e0_again))
    assert [i for i, _ in e0] != [i for i, _ in e1]
    assert sorted(sum((i for i, _ in e0), [])) == list(range(12))
    # two ranks with half the batch each: every global step holds the same clips, with the same values
    ranks = [_epoch(build_train_loader(_RandomToy(), cfg, DistInfo(r, 2, r), cpu)[0], 1) for r in (0, 1)]
    for step, (idx, x) in enumerate(e1):
        got = {i: v for rank in ranks for i, v in zip(rank[step][0], rank[step][1])}
        assert sorted(got) == sorted(idx)
        for i, v in zip(idx, x):
            assert torch.equal(got[i], v)


def test_bench_train_step_runs(capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_train_step.py"
    spec = importlib.util.spec_from_file_location("bench_train_step", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--size", "8", "--batch", "2", "--frames", "2,4", "--iters", "1", "--warmup", "0"]) == 0
    out = capsys.readouterr().out
    assert "ratio FFN summed / sum of ST steps" in out and "stream_backward / summed" in out


def test_clipping_unscales_amp_gradients_first():
    """Under a GradScaler the clip threshold applies to the true gradient, not the scaled one."""
    from ffn_core.engine.step import optimizer_step

    model = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 1.0]]))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    scaler.scale(model(torch.tensor([[3.0, 4.0]])).sum()).backward()  # true grad (3, 4), norm 5
    norm = optimizer_step(model, opt, scaler, clip_grad=1.0)
    assert float(norm) == pytest.approx(5.0)
    torch.testing.assert_close(model.weight.detach(), torch.tensor([[1 - 0.06, 1 - 0.08]]))
    assert model.weight.grad is None  # zeroed for the next step


def test_fit_restores_process_flags(data_root, tmp_path):
    threads = torch.get_num_threads()
    fit(make_cfg(data_root, tmp_path, frames=(2,), strategy="st", deterministic=True, threads=1))
    assert not torch.are_deterministic_algorithms_enabled() and torch.get_num_threads() == threads


def test_headless_progress_logs_every_n_steps(capsys):
    from ffn_core.engine.progress import Progress

    bar = Progress(12, "epoch 1/1", log_every=5, interactive=False)
    for step in range(1, 13):
        bar.update(step, "loss 1.0" if bar.wants_text(step) else "")
    bar.close()
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["epoch 1/1 step 5/12 loss 1.0", "epoch 1/1 step 10/12 loss 1.0", "epoch 1/1 step 12/12 loss 1.0"]


# ---- the CUDA code paths, exercised on CPU where PyTorch allows (issue 14.5) --------------------
def test_bf16_autocast_runs_on_cpu_in_fit_and_evaluate(data_root, tmp_path):
    """amp=bf16 takes the autocast path on CPU as on CUDA: the forward runs in bfloat16, the weights
    and checkpoint stay float32, and training and evaluation give finite numbers."""
    from ffn_core.engine.step import autocast_context

    model = create_model("tsm_tiny", num_classes=3, frames=(2, 4))
    with autocast_context(torch.device("cpu"), "bf16")():
        assert model(torch.randn(2, 2, 3, 16, 16), stream=2).dtype == torch.bfloat16
    assert autocast_context(torch.device("cpu"), "fp16") is autocast_context(torch.device("cpu"), "none")
    m = fit(make_cfg(data_root, tmp_path, amp="bf16"))
    assert math.isfinite(m["final_epoch"]["train_loss"]) and all(0 <= v <= 100 for v in m["top1"].values())
    state = read_checkpoint(tmp_path / "last.pt")["model"]
    assert all(v.dtype in (torch.float32, torch.int64) for v in state.values())


@pytest.mark.parametrize("native", [True, False])
def test_amp_auto_is_bf16_only_where_the_cpu_has_it(native, data_root, tmp_path, monkeypatch, capsys):
    """amp=auto: bf16 autocast on a CPU with native bfloat16, float32 on one without (emulated bf16
    was 8.6x slower than float32 on an AVX2-only CPU). The run's config.yaml keeps "auto" (so a
    cached run is reused on either machine) and metrics.json records what really ran."""
    from ffn_core.engine import step

    monkeypatch.setattr(step, "cpu_has_bf16", lambda: native)
    cpu = torch.device("cpu")
    assert step.resolve_amp("auto", cpu) == ("bf16" if native else "none")
    assert step.resolve_amp("fp16", cpu) == "none" and step.resolve_amp("bf16", cpu) == "bf16"
    model = create_model("tsm_tiny", num_classes=3, frames=(2,))
    with step.autocast_context(cpu, "auto")():
        out = model(torch.randn(2, 2, 3, 16, 16), stream=2)
    assert out.dtype == (torch.bfloat16 if native else torch.float32)
    monkeypatch.setattr("ffn_core.engine.train.cpu_has_bf16", lambda: native)
    m = fit(make_cfg(data_root, tmp_path, amp="auto"))
    assert m["precision"] == ("bfloat16" if native else "float32")
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["amp"] == "auto"
    assert ("amp=auto: bfloat16 autocast" if native else "amp=auto: float32") in capsys.readouterr().out


def test_fp16_gradscaler_unscale_then_clip_trains_on_cpu(data_root, tmp_path, monkeypatch):
    """fit's fp16 path (GradScaler scale -> unscale_ -> clip -> step -> update) with a CPU scaler:
    the same calls a CUDA run makes, so a typo there fails here first."""
    import ffn_core.engine.train as tm

    real = torch.amp.GradScaler
    made = []

    def scaler(device, enabled=False):
        made.append(real("cpu", init_scale=2.0 ** 8, enabled=True))
        return made[-1]

    monkeypatch.setattr(tm.torch.amp, "GradScaler", scaler)
    m = fit(make_cfg(data_root, tmp_path, amp="fp16", clip_grad=1.0, strategy="st", frames=(2,)))
    assert made and made[0].get_scale() > 0 and math.isfinite(m["final_epoch"]["train_loss"])


def test_cuda_loader_and_cudnn_flags_without_a_gpu(data_root):
    """pin_memory/non-blocking copies and cudnn.benchmark are chosen for a CUDA device and restored."""
    from ffn_core.engine.loader import _loader_kwargs
    from ffn_core.engine.train import _determinism

    assert _loader_kwargs(0, torch.device("cuda"))["pin_memory"] is True
    assert _loader_kwargs(2, torch.device("cpu"))["pin_memory"] is False
    before = torch.backends.cudnn.benchmark
    with _determinism(make_cfg(data_root, "unused"), torch.device("cuda")):
        assert torch.backends.cudnn.benchmark is True
    with _determinism(make_cfg(data_root, "unused", deterministic=True), torch.device("cuda")):
        assert torch.backends.cudnn.benchmark is False and torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.benchmark == before and not torch.are_deterministic_algorithms_enabled()
