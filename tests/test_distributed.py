"""Two processes (torchrun, gloo, CPU) train like one process with the same global batch.

Why it can match: the global batch of a step is the same set of clips (``DistributedSampler`` seeded
with ``seed + epoch``, rank r taking every 2nd index; with 1 process the same permutation), each clip
is a pure function of ``(seed, epoch, index)`` (per-sample seeding), DDP averages the per-rank mean
gradients = the global mean gradient, and metrics are summed over ranks. What would differ, and is
switched off here: BatchNorm statistics per rank (2 clips vs 4: ``freeze_bn=true`` keeps the norms
in eval mode) and dropout masks (``dropout=0``). SGD (not AdamW, whose per-parameter normalisation
amplifies float-summation-order noise in near-zero gradients) keeps the comparison tight; the
remaining differences are float reduction order (1e-6-ish).

The two-process run is done twice: with the summed backward (several DDP forwards, one backward)
and with ``stream_backward=true`` (every stream's backward but the last in ``no_sync()``, one
all-reduce, ``find_unused_parameters`` since each backward touches only its stream's private
norms); both must match the single-process summed backward.
"""
from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest
import torch

from ffn_core.config import Config
from ffn_core.engine import fit, read_checkpoint
from ffn_core.models import create_model


def _settings(data_root) -> dict:
    return dict(dataset="synthetic", data_root=str(data_root), frames="2,4", crop_size=16, model="tsm_tiny",
                strategy="ffn", epochs=2, batch_size=4, optimizer="sgd", lr=0.05, momentum=0.9,
                fc_lr_mult=True, weight_decay=1e-4, num_workers=0, device="cpu", log_every=100,
                dropout=0.0, freeze_bn=True, deterministic=True)


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def one_process_run(data_root, tmp_path_factory):
    one = tmp_path_factory.mktemp("one")
    fit(Config.from_dict({**_settings(data_root), "out_dir": str(one)}))
    return one


@pytest.mark.parametrize("stream_backward", [False, True])
def test_torchrun_two_processes_match_one(data_root, one_process_run, tmp_path, stream_backward):
    one = one_process_run
    two = tmp_path / "two"
    settings = {**_settings(data_root), "out_dir": str(two), "stream_backward": stream_backward}
    overrides = [f"{k}={v}" for k, v in settings.items()]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "ffn_core", "train", *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "2 process(es)" in proc.stdout

    a, b = _rows(one / "metrics.csv"), _rows(two / "metrics.csv")
    assert len(a) == len(b) == 2
    for ra, rb in zip(a, b):
        for key in ("train_loss", "train_ce", "train_kl_2"):
            assert float(rb[key]) == pytest.approx(float(ra[key]), rel=1e-4, abs=1e-6), key
        for key in ("train_top1", "val_top1_2", "val_top1_4", "val_top5_4"):
            assert float(rb[key]) == pytest.approx(float(ra[key])), key  # counts summed over ranks: exact
    wa, wb = read_checkpoint(one / "last.pt")["model"], read_checkpoint(two / "last.pt")["model"]
    assert wa.keys() == wb.keys()  # no "module." prefix from DDP
    for k in wa:
        if wa[k].is_floating_point():
            torch.testing.assert_close(wb[k], wa[k], rtol=1e-4, atol=1e-5, msg=k)
    torch.manual_seed(0)  # fit seeds like this before building the model: its initial weights
    init = create_model("tsm_tiny", num_classes=18, frames=(2, 4), dropout=0.0).state_dict()
    moved = max(float((wa[k] - init[k]).abs().max()) for k in wa if wa[k].is_floating_point())
    assert moved > 1e-2  # the tolerance above is small against what training changed
    # only rank 0 writes: one set of files
    assert sorted(p.name for p in two.iterdir()) == [".lock", "best.pt", "config.yaml", "last.pt", "metrics.csv",
                                                    "metrics.json"]
