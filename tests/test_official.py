"""load_official_checkpoint: a checkpoint in the original FFN code's TSM-R50 key layout (names and
shapes: tests/data/official_tsm_ffn_r50_keys.txt) converts into our tsm_r50 (issue 15.3)."""
from pathlib import Path

import pytest
import torch

from ffn_core.models import create_model
from ffn_core.models.official import (OfficialCheckpointError, load_official_checkpoint, official_to_ours,
                                      ours_to_official)

KEYS = Path(__file__).parent / "data" / "official_tsm_ffn_r50_keys.txt"


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


@pytest.mark.parametrize("T", [4, 8, 16])
def test_converted_weights_give_the_same_logits(tmp_path, T):
    """Our model with random 'trained' weights, written in the released layout and loaded back,
    computes the same logits at batch 1."""
    torch.manual_seed(0)
    ref = create_model("tsm_r50", num_classes=11, frames=(4, 8, 16)).eval()
    with torch.no_grad():
        for n, p in ref.named_parameters():
            if ".alter." in n:
                p.normal_(0, 0.2)
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
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
