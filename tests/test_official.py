"""load_official_checkpoint: a checkpoint in the original FFN code's TSM-R50 key layout (names and
shapes: tests/data/official_tsm_ffn_r50_keys.txt) converts into our tsm_r50 (issue 15.3)."""
from pathlib import Path

import pytest
import torch

from ffn_core.config import Config
from ffn_core.engine.checkpoint import CheckpointError, load_checkpoint
from ffn_core.engine.strategies import build_strategy
from ffn_core.models import create_model
from ffn_core.models.official import (OfficialCheckpointError, init_from_official, load_official_checkpoint,
                                      official_spec, official_to_ours, ours_to_official)

KEYS = Path(__file__).parent / "data" / "official_tsm_ffn_r50_keys.txt"
REPO = Path(__file__).resolve().parents[1]


def _layout() -> dict:
    out = {}
    for line in KEYS.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape = line.split("\t")
        out[key] = tuple(int(s) for s in shape.strip("[]").split(",") if s.strip())
    return out


def _random_official(layout: dict) -> dict:
    g = torch.Generator().manual_seed(0)
    sd = {}
    for k, shape in layout.items():
        if k.endswith("num_batches_tracked"):
            sd[k] = torch.tensor(7)
        elif k.endswith("running_var"):
            sd[k] = torch.rand(shape, generator=g) + 0.5
        else:
            sd[k] = torch.randn(shape, generator=g) * 0.1
    return sd


def test_layout_file_round_trips_every_key(tmp_path):
    layout = _layout()
    sd = _random_official(layout)
    torch.save({"epoch": 50, "arch": "resnet50", "state_dict": sd, "best_prec1": 48.0}, tmp_path / "ffn.pth.tar")
    model, report = load_official_checkpoint(tmp_path / "ffn.pth.tar", "tsm_r50")
    assert report["frames"] == (4, 8, 16) and report["num_classes"] == 174
    assert report["consumed"] == len(layout) and report["dropped"] == []
    ours = model.state_dict()
    assert len(ours) == len(layout)
    back = ours_to_official(ours)
    assert set(back) == set(layout)
    for k, v in back.items():
        assert torch.equal(v, sd[k]), k
    # spot checks of the mapping's meaning
    assert torch.equal(ours["layer1.0.bn1.t8.running_mean"], sd["module.base_model.layer1.0.bn1_8.running_mean"])
    assert torch.equal(ours["layer2.0.downsample.1.t16.weight"],
                       sd["module.base_model.layer2.0.downsample_bn_16.weight"])
    assert torch.equal(ours["layer4.2.alter.t4.weight"], sd["module.base_model.layer4.2.adaconv_4.weight"])
    assert torch.equal(ours["fc.bias"], sd["module.new_fc.bias"])


def test_our_layout_maps_to_exactly_the_released_one():
    model = create_model("tsm_r50", num_classes=174, frames=(4, 8, 16))
    layout = _layout()
    back = {k: tuple(v.shape) for k, v in ours_to_official(model.state_dict()).items()}
    assert back == layout


def _as_if_trained(model, wa: float, mean: float):
    """Random non-trivial weight alteration and BN statistics (a fresh model has WA = 0, BN = identity)."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            if ".alter." in n:
                p.normal_(0, wa)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, mean)
                m.running_var.uniform_(0.5, 1.5)
    return model


@pytest.mark.parametrize("T", [4, 8, 16])
def test_converted_weights_give_the_same_logits(tmp_path, T):
    """Our model with random 'trained' weights, written in the released layout and loaded back,
    computes the same logits at batch 1."""
    torch.manual_seed(0)
    ref = _as_if_trained(create_model("tsm_r50", num_classes=11, frames=(4, 8, 16)).eval(), wa=0.2, mean=0.1)
    torch.save({"state_dict": ours_to_official(ref.state_dict())}, tmp_path / "c.pth")
    model, _ = load_official_checkpoint(tmp_path / "c.pth", "tsm_r50")
    x = torch.randn(1, T, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), atol=0, rtol=0)


def test_mismatches_name_the_first_offending_key(tmp_path):
    sd = _random_official(_layout())
    extra = dict(sd, **{"module.base_model.layer1.0.mystery.weight": torch.zeros(3)})
    with pytest.raises(OfficialCheckpointError, match="mystery"):
        official_to_ours(extra)
    bad = dict(sd)
    bad["module.base_model.layer1.0.conv2.weight"] = torch.zeros(64, 64, 1, 1)
    torch.save({"state_dict": bad}, tmp_path / "b.pth")
    with pytest.raises(OfficialCheckpointError, match=r"layer1\.0\.conv2\.weight.*shape"):
        load_official_checkpoint(tmp_path / "b.pth", "tsm_r50")
    short = {k: v for k, v in sd.items() if "layer3.1.bn2_8" not in k}
    torch.save({"state_dict": short}, tmp_path / "s.pth")
    with pytest.raises(OfficialCheckpointError, match=r"layer3\.1\.bn2\.t8"):
        load_official_checkpoint(tmp_path / "s.pth", "tsm_r50")
    with pytest.raises(OfficialCheckpointError, match="only the TSM family"):
        load_official_checkpoint(tmp_path / "s.pth", "uniformer_xs")


class _Evil:
    def __reduce__(self):
        return (print, ("this ran",))


def test_a_file_that_needs_unpickling_is_refused(tmp_path):
    torch.save({"state_dict": {}, "args": _Evil()}, tmp_path / "evil.pth")
    with pytest.raises(OfficialCheckpointError, match="weights_only=True"):
        load_official_checkpoint(tmp_path / "evil.pth", "tsm_r50")
    with pytest.raises(OfficialCheckpointError, match="not found"):
        load_official_checkpoint(tmp_path / "none.pth", "tsm_r50")


def test_the_released_layout_names_its_model(tmp_path):
    torch.save({"state_dict": _random_official(_layout()), "epoch": 50, "best_prec1": 48.2}, tmp_path / "r.pth")
    _, report = load_official_checkpoint(tmp_path / "r.pth")  # no model name: inferred from the layout
    assert report["model"] == "tsm_r50" and report["epoch"] == 50 and report["best_prec1"] == 48.2


def test_official_spec_syntax():
    assert official_spec("official:ckpt/ffn.pth.tar") == ("ckpt/ffn.pth.tar", None)
    assert official_spec("official:tsm_tiny:a/b.pth") == ("a/b.pth", "tsm_tiny")
    assert official_spec("official:C:/w/b.pth") == ("C:/w/b.pth", None)  # C is not a model name
    assert official_spec("runs/x/best.pt") is None and official_spec(Path("best.pt")) is None
    with pytest.raises(OfficialCheckpointError, match="official:PATH"):
        official_spec("official:")


def _tiny_release(path, frames=(2, 4), num_classes=5, seed=0):
    """Our tsm_tiny FFN with random 'trained' WA and BN statistics, saved in the released layout."""
    torch.manual_seed(seed)
    ref = _as_if_trained(create_model("tsm_tiny", num_classes=num_classes, frames=frames).eval(), wa=0.3, mean=0.2)
    torch.save({"epoch": 3, "arch": "tiny", "state_dict": ours_to_official(ref.state_dict())}, path)
    return ref


def test_an_ambiguous_layout_asks_for_the_model_name(tmp_path):
    _tiny_release(tmp_path / "t.pth")  # tsm_tiny and tsm_tiny_s2 share every weight shape
    with pytest.raises(OfficialCheckpointError, match=r"official:tsm_tiny:PATH"):
        load_official_checkpoint(tmp_path / "t.pth")


@pytest.mark.parametrize("ours,routed", [((2, 4), {2: 2, 4: 4}), ((2, 3, 4), {2: 2, 3: 4, 4: 4}), ((4,), {4: 4})])
def test_init_from_official_routes_streams(tmp_path, ours, routed):
    """init_from=official:PATH - an FFN with other frame counts takes each stream from the released
    stream it routes to; a single-T model gets stream T with the weight alteration folded."""
    ref = _tiny_release(tmp_path / "t.pth")
    cfg = Config(model="tsm_tiny", frames=ours, strategy="st" if len(ours) == 1 else "ffn",
                 init_from=f"official:{tmp_path / 't.pth'}")
    model = build_strategy(cfg).prepare_model(create_model("tsm_tiny", num_classes=5, frames=ours)).eval()
    with torch.no_grad():
        for t, r in routed.items():
            x = torch.randn(2, t, 3, 32, 32)
            torch.testing.assert_close(model(x), ref(x, stream=r), atol=1e-5, rtol=1e-5)
    # another dataset's classes: everything but fc is taken, fc starts fresh and is reported
    other = create_model("tsm_tiny", num_classes=7, frames=ours)
    rep = init_from_official(other, tmp_path / "t.pth")
    assert rep["dropped"] == ["fc.weight", "fc.bias"] and rep["routed"] == routed
    assert torch.equal(other.state_dict()["conv1.weight"], ref.state_dict()["conv1.weight"])


def test_init_from_official_errors(tmp_path):
    _tiny_release(tmp_path / "t.pth")
    with pytest.raises(CheckpointError, match="single-T model needs one of the released streams"):
        build_strategy(Config(model="tsm_tiny", frames=(8,), strategy="st", init_from=f"official:{tmp_path / 't.pth'}")
                       ).prepare_model(create_model("tsm_tiny", num_classes=5, frames=(8,)))
    with pytest.raises(CheckpointError, match="not found"):
        build_strategy(Config(model="tsm_tiny", frames=(2, 4), init_from=f"official:{tmp_path / 'no.pth'}")
                       ).prepare_model(create_model("tsm_tiny", num_classes=5, frames=(2, 4)))


def test_eval_and_train_accept_official_checkpoints(data_root, tmp_path, capsys):
    """``eval --checkpoint official:MODEL:PATH`` evaluates a released file on our data (its config:
    the file's model and frames, the data keys given on the command line); ``train
    init_from=official:PATH`` starts from it."""
    import json

    from ffn_core.__main__ import main as ffn_main

    n_classes = json.loads((data_root / "synthetic.json").read_text())["num_classes"]
    ref = _tiny_release(tmp_path / "t.pth", num_classes=n_classes)
    spec = f"official:tsm_tiny:{tmp_path / 't.pth'}"
    model, cfg = load_checkpoint(spec)
    assert cfg.model == "tsm_tiny" and cfg.frames == (2, 4) and model.checkpoint_info["epoch"] == 3
    x = torch.randn(1, 4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), atol=0, rtol=0)
    rc = ffn_main(["eval", "--checkpoint", spec, "--frames", "2,3,4", "--out", str(tmp_path / "ev"),
                   f"data_root={data_root}", "crop_size=16"])
    assert rc == 0
    data = json.loads((tmp_path / "ev" / "cross_eval.json").read_text())
    row = data["rows"][0]
    assert row["trained_frames"] == [2, 4] and row["routed"] == {"2": 2, "3": 4, "4": 4}
    assert all(0.0 <= row["top1"][str(t)] <= 100.0 for t in (2, 3, 4))
    rc = ffn_main(["train", "--params", str(REPO / "params" / "smoke.yaml"), "strategy=ffn", "frames=2,4",
                   f"out_dir={tmp_path / 'run'}", f"data_root={data_root}", "crop_size=16", "batch_size=4",
                   "epochs=1", f"init_from=official:{tmp_path / 't.pth'}"])
    assert rc == 0 and "streams 2<-2, 4<-4" in capsys.readouterr().out
    rc = ffn_main(["eval", "--checkpoint", f"official:{tmp_path / 't.pth'}", "--frames", "4",
                   "--out", str(tmp_path / "ev2"), f"data_root={data_root}"])
    assert rc == 2 and "official:tsm_tiny:PATH" in capsys.readouterr().err
