"""Resume is exact: 2 epochs in one go == 1 epoch, interrupted, then resumed to 2 (CPU, deterministic).

The interruption is real: the run is configured for 2 epochs and killed (an exception standing in
for Ctrl-C / a lost node) when epoch 2 starts, after epoch 1's ``last.pt`` was written. The
resumed run must restore weights, AdamW moments, the cosine schedule position, the RNG states
(dropout is on) and the per-(seed, epoch) data order/augmentation, and end bitwise equal.
"""
from __future__ import annotations

import csv

import pytest
import torch

from ffn_core.config import Config
from ffn_core.engine import CheckpointError, fit, read_checkpoint
from ffn_core.engine import train as train_mod


def make_cfg(data_root, out_dir, **kw) -> Config:
    base = dict(dataset="synthetic", data_root=str(data_root), frames=(2, 4), crop_size=16, model="tsm_tiny",
                strategy="ffn", epochs=2, batch_size=4, optimizer="adamw", lr=2e-3, fc_lr_mult=False,
                num_workers=0, device="cpu", log_every=100, out_dir=str(out_dir), dropout=0.3,
                deterministic=True, schedule="cosine", warmup_epochs=0.5)
    return Config.from_dict({**base, **kw})


def _rows(path):
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if not k.endswith("_s")} for r in csv.DictReader(f)]  # times differ


@pytest.mark.parametrize("strategy, frames", [("ffn", (2, 4)), ("proportional", (2, 4))])
def test_interrupted_and_resumed_equals_uninterrupted(data_root, tmp_path, monkeypatch, strategy, frames):
    full = tmp_path / "full"
    fit(make_cfg(data_root, full, strategy=strategy, frames=frames))

    part = tmp_path / "part"
    real_epoch = train_mod.train_one_epoch

    def interrupt_at_epoch_2(*args, **kwargs):
        if kwargs["epoch"] == 1:
            raise KeyboardInterrupt("simulated interruption")
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(train_mod, "train_one_epoch", interrupt_at_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        fit(make_cfg(data_root, part, strategy=strategy, frames=frames))
    assert read_checkpoint(part / "last.pt")["epoch"] == 1
    monkeypatch.setattr(train_mod, "train_one_epoch", real_epoch)
    fit(make_cfg(data_root, part, strategy=strategy, frames=frames, resume=True))

    a, b = read_checkpoint(full / "last.pt"), read_checkpoint(part / "last.pt")
    assert a["epoch"] == b["epoch"] == 2
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"]) and torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"]
    assert _rows(full / "metrics.csv") == _rows(part / "metrics.csv")


def test_resume_with_other_frames_is_a_clear_error(data_root, tmp_path):
    out = tmp_path / "run"
    fit(make_cfg(data_root, out, epochs=1, dropout=0.0))
    with pytest.raises(CheckpointError, match=r"frames=\[2, 4\].*frames=\[2, 4, 8\]"):
        fit(make_cfg(data_root, out, epochs=2, frames=(2, 4, 8), resume=True))


def test_resume_without_checkpoint_starts_fresh(data_root, tmp_path):
    m = fit(make_cfg(data_root, tmp_path / "new", epochs=1, resume=True))
    assert m["final_epoch"]["epoch"] == 1
