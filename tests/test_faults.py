"""What happens when things go wrong: broken videos, signals, kills, NaNs, bad paths, full disks.

Every test fails without the behaviour it names (README: "What happens when things go wrong").
They run on a tiny synthetic benchmark (16 train / 8 val clips, 16 frames, 32 px), CPU, one thread.
"""
from __future__ import annotations

import contextlib
import csv
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from ffn_core.config import ConfigError, load_config
from ffn_core.data import DataError, build_dataset, read_bad_log
from ffn_core.engine import CheckpointError, fit, read_checkpoint
from ffn_core.engine import train as train_mod
from ffn_core.engine.cli import main as cli_main
from ffn_core.engine.faults import Interrupted, NonFiniteError, RunInUseError, RunLock, StopSignals

ROOT = Path(__file__).resolve().parents[1]


def make_cfg(data_root, out_dir, **kw):
    from ffn_core.config import Config

    base = dict(dataset="synthetic", data_root=str(data_root), frames=(2, 4), crop_size=16, model="tsm_tiny",
                strategy="ffn", epochs=2, batch_size=4, optimizer="adamw", lr=2e-3, fc_lr_mult=False,
                num_workers=0, device="cpu", log_every=100, out_dir=str(out_dir), dropout=0.3,
                deterministic=True, schedule="cosine", warmup_epochs=0.5)
    return Config.from_dict({**base, **kw})


def _rows(path):
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if not k.endswith("_s")} for r in csv.DictReader(f)]  # times differ


def _same_weights(a: Path, b: Path) -> None:
    sa, sb = read_checkpoint(a)["model"], read_checkpoint(b)["model"]
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def _break(video: Path) -> None:
    video.write_bytes(b"this is not an mp4" * 50)


@pytest.fixture
def broken_root(data_root, tmp_path):
    """A copy of the tiny benchmark with one undecodable train video and one undecodable val video."""
    root = tmp_path / "data"
    shutil.copytree(data_root, root)
    train_video = root / (root / "train.txt").read_text().splitlines()[3].split()[0]
    val_video = root / (root / "val.txt").read_text().splitlines()[1].split()[0]
    _break(train_video)
    _break(val_video)
    return root, str(train_video), str(val_video)


# ---- 1. bad samples ----------------------------------------------------------------------------------
@pytest.mark.parametrize("workers", [0, 1])
def test_skip_names_both_videos_counts_them_per_split_and_says_what_accuracy_is_over(broken_root, tmp_path,
                                                                                      capsys, workers):
    root, train_video, val_video = broken_root
    out = tmp_path / "run"
    m = fit(make_cfg(root, out, epochs=2, num_workers=workers))
    assert set(m["bad_videos"]["train"]) == {train_video} and set(m["bad_videos"]["val"]) == {val_video}
    assert m["bad_videos"]["val"][val_video]["where"].endswith("val.txt:2")
    for T in (2, 4):  # 8 val clips, one unreadable: the accuracy is over 7
        assert m["eval"][T] == {"num_samples": 7, "skipped": 1}
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [(r["bad_videos_train"], r["bad_videos_val"]) for r in rows] == [("1", "1"), ("1", "1")]
    log = capsys.readouterr()
    text = log.out + log.err
    assert text.count(f"skipped train video {train_video}") == 1 and text.count(f"skipped val video {val_video}") == 1
    assert "top-1 over 7 clips (1 left out)" in text
    assert set(read_bad_log(out / "bad_samples.jsonl")) == {"train", "val"}


def test_raise_stops_with_one_error_line_naming_file_and_list_line(broken_root, tmp_path, capsys):
    root, train_video, _ = broken_root
    for workers in (0, 1):  # also through a DataLoader worker (whose traceback must not leak)
        rc = cli_main(["train", f"data_root={root}", "dataset=synthetic", "frames=2,4", "crop_size=16",
                       "model=tsm_tiny", "epochs=1", "batch_size=4", "device=cpu", "on_bad_sample=raise",
                       f"num_workers={workers}", f"out_dir={tmp_path / f'raise{workers}'}"])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1, err
        assert err[0].startswith("error: ") and train_video in err[0] and "train.txt:4" in err[0], err[0]
        assert "Traceback" not in err[0]


def test_data_and_list_errors_are_one_line_exit_2(data_root, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(data_root, bad)
    lines = (bad / "train.txt").read_text().splitlines()
    cases = {"label": lines[:2] + [lines[2].rsplit(" ", 1)[0] + " 99"] + lines[3:],
             "fields": lines[:5] + ["only_two 3"] + lines[6:],
             "outside": lines[:1] + ["../escape.mp4 16 0"] + lines[2:],
             "absolute": lines[:1] + ["/etc/passwd 16 0"] + lines[2:]}
    expect = {"label": "train.txt:3: label 99", "fields": "train.txt:6", "outside": "train.txt:2: path '../escape.mp4'",
              "absolute": "train.txt:2: path '/etc/passwd' is absolute"}
    for name, content in cases.items():
        (bad / "train.txt").write_text("\n".join(content) + "\n")
        rc = cli_main(["train", f"data_root={bad}", "dataset=synthetic", "frames=2", "strategy=st", "crop_size=16",
                       "epochs=1", "batch_size=4", "device=cpu", f"out_dir={tmp_path / name}"])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and err[0].startswith("error: ") and expect[name] in err[0], (name, err)


def test_paths_outside_the_root_are_rejected_when_the_dataset_is_built(data_root, tmp_path):
    root = tmp_path / "d"
    shutil.copytree(data_root, root)
    first = (root / "val.txt").read_text().splitlines()[0].split()
    (root / "val.txt").write_text(f"videos/../../{Path(first[0]).name} {first[1]} {first[2]}\n")
    with pytest.raises(DataError, match=r"val\.txt:1: path .* resolves outside the data root"):
        build_dataset(make_cfg(root, tmp_path / "r"), "val")


def test_missing_data_root_is_an_error_unless_generation_was_asked(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="no such folder.*synth --tier smoke"):
        fit(make_cfg(tmp_path / "typo", tmp_path / "run", tier=""))
    assert not (tmp_path / "typo").exists()  # nothing was generated into the typo'd path
    from ffn_core.data import synthetic

    calls = []
    monkeypatch.setattr(synthetic, "ensure_synthetic", lambda root, tier, seed, workers=1: calls.append(tier))
    with pytest.raises(FileNotFoundError):  # asked for (tier=smoke): generation is attempted
        fit(make_cfg(tmp_path / "typo", tmp_path / "run", tier="smoke"))
    assert calls == ["smoke"]


def test_more_frames_than_the_videos_have_is_a_warning_and_in_the_results(data_root, tmp_path, caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="ffn_core.data.datasets"):
        m = fit(make_cfg(data_root, tmp_path / "run", frames=(32,), strategy="st", epochs=1, dropout=0.0))
    assert "16 of 16 videos" in caplog.text and "fewer than 32 frames" in caplog.text
    assert m["short_videos"] == {"train": 16, "val": {32: 8}}


# ---- 2. never lose an epoch --------------------------------------------------------------------------
def test_checkpoint_is_written_before_validation_and_a_failed_validation_resumes(data_root, tmp_path, monkeypatch):
    full = tmp_path / "full"
    fit(make_cfg(data_root, full, epochs=3))
    part = tmp_path / "part"
    real = train_mod.evaluate_loaders
    calls = {"n": 0}

    def fail_second(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("validation crashed")
        return real(*a, **k)

    monkeypatch.setattr(train_mod, "evaluate_loaders", fail_second)
    with pytest.raises(RuntimeError, match="validation crashed"):
        fit(make_cfg(data_root, part, epochs=3))
    ck = read_checkpoint(part / "last.pt")
    assert ck["epoch"] == 2 and ck["pending_row"]["epoch"] == 2 and len(ck["history"]) == 1  # epoch 2 kept
    monkeypatch.setattr(train_mod, "evaluate_loaders", real)
    fit(make_cfg(data_root, part, epochs=3, resume=True))
    assert [r["epoch"] for r in _rows(part / "metrics.csv")] == ["1", "2", "3"]
    assert _rows(part / "metrics.csv") == _rows(full / "metrics.csv")
    _same_weights(full / "last.pt", part / "last.pt")


def test_sigterm_mid_epoch_checkpoints_that_step_and_resume_is_bitwise(data_root, tmp_path, monkeypatch):
    full = tmp_path / "full"
    fit(make_cfg(data_root, full, epochs=2))
    part = tmp_path / "part"
    real = train_mod.forward_backward
    calls = {"n": 0}

    def signal_at_step_6(*a, **k):  # epoch 2, step 2 of 4: a real SIGTERM to this process
        calls["n"] += 1
        if calls["n"] == 6:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*a, **k)

    monkeypatch.setattr(train_mod, "forward_backward", signal_at_step_6)
    with pytest.raises(Interrupted) as info:
        fit(make_cfg(data_root, part, epochs=2))
    assert (info.value.epoch, info.value.step, info.value.signum) == (1, 2, signal.SIGTERM)
    assert "last.pt" in str(info.value) and "resume=true" in str(info.value)
    ck = read_checkpoint(part / "last.pt")
    assert ck["partial"]["epoch"] == 1 and ck["partial"]["step"] == 2 and ck["epoch"] == 1
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or callable(signal.getsignal(signal.SIGTERM))
    monkeypatch.setattr(train_mod, "forward_backward", real)
    fit(make_cfg(data_root, part, epochs=2, resume=True))
    _same_weights(full / "last.pt", part / "last.pt")
    assert _rows(part / "metrics.csv") == _rows(full / "metrics.csv")


def test_a_second_signal_exits_at_once(monkeypatch):
    sent = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: sent.append(sig))
    with StopSignals() as stop:
        stop._handle(signal.SIGTERM, None)
        assert stop.requested and sent == []
        stop._handle(signal.SIGTERM, None)  # the default action (termination) is re-raised
        assert sent == [signal.SIGTERM] and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


_KILL_SCRIPT = textwrap.dedent("""
    import sys, time, torch
    from ffn_core.config import Config
    marks, args = sys.argv[1], sys.argv[2]
    real_save = torch.save
    def slow_save(obj, f, *a, **k):  # written to the temp file, not yet renamed: the window of a kill
        real_save(obj, f, *a, **k)
        with open(marks, "a") as m:
            m.write(str(f) + "\\n")
        time.sleep(1.0)
    torch.save = slow_save
    from ffn_core.engine import fit
    fit(Config.from_dict(__import__("json").loads(args)))
""")


@pytest.mark.parametrize("point", ["first_write", "third_write", "between_writes"])
def test_sigkill_anywhere_leaves_a_loadable_checkpoint_and_resume_completes(data_root, tmp_path, point):
    cfg = make_cfg(data_root, tmp_path / "run", epochs=3)
    marks = tmp_path / "marks.txt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(marks), json.dumps(cfg.to_dict())], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    want = {"first_write": 1, "third_write": 3, "between_writes": 2}[point]
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        n = len(marks.read_text().splitlines()) if marks.is_file() else 0
        if n >= want:
            if point == "between_writes":
                time.sleep(1.3)  # past the second write's rename, into the next epoch's steps
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before the kill point"
    proc.kill()
    proc.wait()
    run = tmp_path / "run"
    if (run / "last.pt").exists():
        ck = read_checkpoint(run / "last.pt")  # loadable, whatever moment the kill hit
        assert ck["epoch"] >= 1 or ck.get("partial")
    else:
        assert point == "first_write"
    m = fit(cfg.replace(resume=True))
    assert [r["epoch"] for r in _rows(run / "metrics.csv")] == ["1", "2", "3"] and m["final_epoch"]["epoch"] == 3
    assert not list(run.glob(".*.tmp"))  # the killed write's temp file was cleaned up


def test_suite_rerun_keeps_finished_notebooks_and_reruns_from_the_failed_one(tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    from ffn_core.suite import run_suite

    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    marker = tmp_path / "executions.txt"
    for i, name in enumerate(("01_data_prep", "02_baseline_tfd", "03_train_ffn")):
        params = new_code_cell("params_file = ''\nout_dir = ''")
        params.metadata["tags"] = ["parameters"]
        body = (f"open({str(marker)!r}, 'a').write('{name}\\n')\n"
                + ("import os\nassert os.path.exists(out_dir + '/ok_to_pass'), 'not yet'\n" if i == 1 else ""))
        nb = new_notebook(cells=[params, new_code_cell(body)])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.metadata["language_info"] = {"name": "python"}
        nbformat.write(nb, nbdir / f"{name}.ipynb")
    params_file = tmp_path / "p.yaml"
    params_file.write_text(f"inherit: {ROOT / 'params' / 'smoke.yaml'}\n")
    kw = dict(name="chain", runs_dir=tmp_path / "runs", notebooks_dir=nbdir, only="01,02,03")
    assert run_suite(params_file, **kw) == 1  # 02 fails
    (tmp_path / "runs" / "chain" / "ok_to_pass").write_text("")
    assert run_suite(params_file, **kw) == 0  # 01 kept, 02 and 03 run
    assert marker.read_text().splitlines() == ["01_data_prep", "02_baseline_tfd", "02_baseline_tfd", "03_train_ffn"]
    assert run_suite(params_file, **kw) == 0  # everything finished with the same inputs: nothing runs
    assert len(marker.read_text().splitlines()) == 4
    assert run_suite(params_file, force=True, **kw) == 0
    assert len(marker.read_text().splitlines()) == 7


def test_an_interrupted_run_of_the_notebooks_is_resumed_not_restarted(data_root, tmp_path, monkeypatch):
    from ffn_core import engine
    from ffn_core.analysis import runs
    from ffn_core.config import save_config

    cfg = make_cfg(data_root, tmp_path / "run", epochs=2)
    save_config(cfg, tmp_path / "run" / "config.yaml")
    (tmp_path / "run" / "last.pt").write_bytes(b"stand-in")
    seen = []
    monkeypatch.setattr(engine, "fit", lambda c: seen.append(c.resume) or {})
    runs.train_or_load(cfg)
    assert seen == [True]
    runs.train_or_load(cfg.replace(lr=0.5))  # another config: a new run, not a resume
    assert seen == [True, False]


# ---- 3. numbers --------------------------------------------------------------------------------------
def _nan_at(monkeypatch, steps: set):
    real = train_mod.forward_backward
    calls = {"n": 0}

    def nan_loss(*a, **k):
        calls["n"] += 1
        total, terms, top = real(*a, **k)
        if calls["n"] in steps:
            terms = {**terms, "kl_2": torch.tensor(float("nan"))}
        return total, terms, top

    monkeypatch.setattr(train_mod, "forward_backward", nan_loss)


def test_nonfinite_loss_on_any_step_raises_naming_step_stream_and_terms(data_root, tmp_path, monkeypatch, capsys):
    _nan_at(monkeypatch, {3})  # step 3 of epoch 1; log_every=100: not a logging step
    with pytest.raises(NonFiniteError, match=r"epoch 1 step 3: non-finite kl_2 \(stream 2 frames\).*loss="):
        fit(make_cfg(data_root, tmp_path / "run", epochs=1))
    monkeypatch.undo()
    _nan_at(monkeypatch, {3})
    rc = cli_main(["train", f"data_root={data_root}", "dataset=synthetic", "frames=2,4", "crop_size=16",
                   "epochs=1", "batch_size=4", "device=cpu", f"out_dir={tmp_path / 'cli'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "non-finite kl_2" in err[0]


def test_skip_step_leaves_the_weights_finite_and_counts_the_skipped_updates(data_root, tmp_path, monkeypatch):
    _nan_at(monkeypatch, {2, 5})
    m = fit(make_cfg(data_root, tmp_path / "run", epochs=2, on_nonfinite="skip_step"))
    assert m["skipped_steps_nonfinite"] == 2
    assert [r["skipped_steps_nonfinite"] for r in _rows(tmp_path / "run" / "metrics.csv")] == ["1", "1"]
    assert all(torch.isfinite(v).all() for v in read_checkpoint(tmp_path / "run" / "last.pt")["model"].values()
               if v.is_floating_point())


def test_a_nonfinite_gradient_is_caught_too(data_root, tmp_path, monkeypatch):
    real = train_mod.forward_backward

    def inf_grad(model, *a, **k):
        out = real(model, *a, **k)
        next(p for p in model.parameters() if p.grad is not None).grad.fill_(float("inf"))
        return out

    monkeypatch.setattr(train_mod, "forward_backward", inf_grad)
    with pytest.raises(NonFiniteError, match=r"epoch 1 step 1: non-finite grad_norm"):
        fit(make_cfg(data_root, tmp_path / "run", epochs=1))


def test_amp_scaler_skips_are_counted(data_root, tmp_path, monkeypatch):
    """The GradScaler path runs on CPU too: an inf gradient makes it skip the update, and we count it."""
    from ffn_core.engine import train as tm

    real_scaler = torch.amp.GradScaler
    monkeypatch.setattr(tm.torch.amp, "GradScaler", lambda device, enabled=False: real_scaler("cpu", enabled=True))
    real = train_mod.forward_backward
    calls = {"n": 0}

    def inf_once(model, *a, **k):
        out = real(model, *a, **k)
        calls["n"] += 1
        if calls["n"] == 2:
            next(p for p in model.parameters() if p.grad is not None).grad.fill_(float("inf"))
        return out

    monkeypatch.setattr(train_mod, "forward_backward", inf_once)
    fit(make_cfg(data_root, tmp_path / "run", epochs=1, clip_grad=1.0))
    assert [r["skipped_steps_amp"] for r in _rows(tmp_path / "run" / "metrics.csv")] == ["1"]


# ---- 4. paths and files ------------------------------------------------------------------------------
def test_yaml_and_json_are_parsed_safely(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.yaml"
    bad.write_text(f'epochs: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    assert not marker.exists()
    from ffn_core.data.prepare.description import prepared_spec

    (tmp_path / "dataset.json").write_text('!!python/object/apply:os.system ["touch pwned"]')
    with pytest.raises(Exception) as info:
        prepared_spec(tmp_path, "synthetic")
    assert "dataset.json" in str(info.value) and not marker.exists()


def test_two_runs_on_one_out_dir_the_second_refuses(data_root, tmp_path, capsys):
    out = tmp_path / "run"
    with RunLock(out):  # another run holds it
        with pytest.raises(RunInUseError, match=rf"out_dir={out}: another run is using it \(pid {os.getpid()}\)"):
            fit(make_cfg(data_root, out, epochs=1))
        rc = cli_main(["train", f"data_root={data_root}", "dataset=synthetic", "frames=2", "strategy=st",
                       "crop_size=16", "epochs=1", "batch_size=4", "device=cpu", f"out_dir={out}"])
        assert rc == 2 and "another run is using it" in capsys.readouterr().err
    fit(make_cfg(data_root, out, epochs=1))  # released: fine


def test_a_full_disk_during_a_checkpoint_write_keeps_the_previous_one(data_root, tmp_path, monkeypatch):
    out = tmp_path / "run"
    fit(make_cfg(data_root, out, epochs=1))
    before = (out / "last.pt").read_bytes()
    from ffn_core.engine import checkpoint as ck

    def full_disk(obj, f, *a, **k):
        Path(f).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ck.torch, "save", full_disk)
    with pytest.raises(CheckpointError, match=r"last\.pt: could not be written \(No space left on device.*the previous one is intact"):
        fit(make_cfg(data_root, out, epochs=2, resume=True))
    assert (out / "last.pt").read_bytes() == before and not list(out.glob(".*.tmp"))


@pytest.mark.parametrize("existing", [False, True])
@pytest.mark.parametrize("fails", [False, True])
def test_atomic_path_replaces_the_file_only_after_the_writer_finished(tmp_path, existing, fails):
    """ffn_core.atomic (checkpoints, exports, metrics, tables, figures, caches): a writer that raises
    half-way leaves the previous file (or none) and no temporary file; one that finishes replaces it
    with a file of normal permissions (mkstemp's 0600 is not kept)."""
    from ffn_core.atomic import _umask, atomic_path

    dest = tmp_path / "new" / "table.csv"
    if existing:
        dest.parent.mkdir()
        dest.write_text("old\n")
    with contextlib.ExitStack() as stack:
        if fails:
            stack.enter_context(pytest.raises(OSError, match="No space"))
        with atomic_path(dest) as tmp:
            assert tmp.parent == dest.parent and tmp != dest
            tmp.write_text("half")
            if fails:
                raise OSError(errno.ENOSPC, "No space left on device")
            tmp.write_text("new\n")
    assert [p.name for p in dest.parent.iterdir()] == ([dest.name] if existing or not fails else [])
    if not fails:
        assert dest.read_text() == "new\n" and dest.stat().st_mode & 0o777 == 0o666 & ~_umask()
    elif existing:
        assert dest.read_text() == "old\n"


def test_cli_sigterm_exits_143_naming_the_checkpoint_and_resume_matches(data_root, tmp_path):
    """The real CLI in a subprocess: SIGTERM mid-epoch -> exit 143 with a message naming last.pt;
    `resume=true` then ends with the metrics and weights of an uninterrupted run (deterministic CPU)."""
    args = [f"data_root={data_root}", "dataset=synthetic", "frames=2,4", "crop_size=16", "model=tsm_tiny",
            "epochs=2", "batch_size=4", "device=cpu", "deterministic=true", "dropout=0.3", "log_every=1",
            "threads=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "ffn_core", "train"]
    subprocess.run(cmd + args + [f"out_dir={tmp_path / 'full'}"], env=env, check=True, capture_output=True)
    proc = subprocess.Popen(cmd + args + [f"out_dir={tmp_path / 'part'}"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in proc.stdout:  # headless progress: one line per step (log_every=1)
        seen.append(line)
        if "epoch 2/2 step 1/" in line:
            proc.send_signal(signal.SIGTERM)
            break
    rest = proc.communicate(timeout=120)[0]
    assert proc.returncode == 143, "".join(seen) + rest
    assert "interrupted: stopped by SIGTERM at epoch 2 step" in rest and str(tmp_path / "part" / "last.pt") in rest
    subprocess.run(cmd + args + [f"out_dir={tmp_path / 'part'}", "resume=true"], env=env, check=True,
                   capture_output=True)
    _same_weights(tmp_path / "full" / "last.pt", tmp_path / "part" / "last.pt")
    assert _rows(tmp_path / "part" / "metrics.csv") == _rows(tmp_path / "full" / "metrics.csv")
