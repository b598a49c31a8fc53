"""Pretrained weights: torchvision key compatibility, ImageNet/.pth loading into every copy, ST -> FFN."""
import os

import pytest
import torch

from ffn_core._tv import torchvision
from ffn_core.models import convert_st_to_ffn, create_model, load_pretrained
from ffn_core.models.pretrained import canonical_key

STANDARD = {"tsm_r18": "resnet18", "tsm_r34": "resnet34", "tsm_r50": "resnet50", "tsm_r101": "resnet101"}


@pytest.mark.parametrize("name", sorted(STANDARD))
@pytest.mark.parametrize("frames", [(16,), (4, 8, 16)])
def test_state_dict_keys_match_torchvision(name, frames):
    with torch.device("meta"):
        ours = create_model(name, num_classes=1000, frames=frames).state_dict()
        tv_model = getattr(torchvision.models, STANDARD[name])()
    tv = tv_model.state_dict()
    norms = {n for n, m in tv_model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    mapped = {}
    for k, v in ours.items():
        if ".alter." not in k:
            mapped.setdefault(canonical_key(k), []).append(tuple(v.shape))
    assert set(mapped) == set(tv)
    for k, shapes in mapped.items():  # one private copy per frame count of every norm, one conv
        assert len(shapes) == (len(frames) if k.rsplit(".", 1)[0] in norms else 1), k
        assert all(s == tuple(tv[k].shape) for s in shapes), k
    if frames == (16,):
        assert set(ours) == set(tv)  # the ST model is exactly torchvision's layout


@pytest.fixture(scope="module")
def resnet18_sd():
    torch.manual_seed(0)
    tv = torchvision.models.resnet18()
    with torch.no_grad():  # non-trivial statistics so a wrong copy is visible
        for m in tv.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_()
    return tv.state_dict()


def test_load_local_pth_fills_every_private_copy(tmp_path, resnet18_sd):
    path = tmp_path / "resnet18.pth"
    torch.save(resnet18_sd, path)
    model = create_model("tsm_r18", num_classes=7, frames=(4, 8, 16))
    fc_before = model.fc.weight.clone()
    report = load_pretrained(model, str(path))
    sd = model.state_dict()
    for key in ("layer3.1.bn2.{}running_mean", "layer2.0.downsample.1.{}weight", "bn1.{}running_var"):
        for t in (4, 8, 16):
            torch.testing.assert_close(sd[key.format(f"t{t}.")], resnet18_sd[key.format("")], rtol=0, atol=0)
    torch.testing.assert_close(sd["layer4.1.conv2.weight"], resnet18_sd["layer4.1.conv2.weight"], rtol=0, atol=0)
    assert torch.equal(model.fc.weight, fc_before)  # classifier skipped
    assert all(torch.all(v == 0) for k, v in sd.items() if ".alter." in k)  # WA left at init
    assert set(report.skipped) == {"fc.weight", "fc.bias"} and report.unexpected == []
    assert set(report.missing) == {k for k in sd if ".alter." in k or k.startswith("fc.")}
    assert len(report.loaded) == len(sd) - len(report.missing)
    assert "loaded" in str(report)


def test_create_model_pretrained_and_wrapped_checkpoints(tmp_path, resnet18_sd):
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in resnet18_sd.items()}}, path)
    model = create_model("tsm_r18", num_classes=7, frames=(4, 8), pretrained=str(path))
    assert len(model.pretrained_report.loaded) > 0
    torch.testing.assert_close(model.conv1.weight, resnet18_sd["conv1.weight"], rtol=0, atol=0)


def test_load_into_wo_ws_model(resnet18_sd):
    model = create_model("tsm_r18", num_classes=7, frames=(4, 8), weight_sharing=False)
    load_pretrained(model, resnet18_sd)
    for t in (4, 8):
        sub = model.streams[f"t{t}"]
        torch.testing.assert_close(sub.bn1.running_mean, resnet18_sd["bn1.running_mean"], rtol=0, atol=0)


def test_imagenet_from_hub_cache(tmp_path, monkeypatch, resnet18_sd):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    model = create_model("tsm_r18", num_classes=7, frames=(4, 8))
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    expected = os.path.join(str(tmp_path), "checkpoints", os.path.basename(url))
    with pytest.raises(FileNotFoundError) as err:
        load_pretrained(model, "imagenet")
    assert expected in str(err.value) and url in str(err.value)
    os.makedirs(os.path.dirname(expected))
    torch.save(resnet18_sd, expected)
    report = load_pretrained(model, "imagenet")
    assert report.loaded and report.unexpected == []
    with pytest.raises(ValueError, match="no member"):
        load_pretrained(model, "imagenet:IMAGENET1K_V9")


def test_pretrained_errors(tmp_path, resnet18_sd):
    tiny = create_model("tsm_tiny", num_classes=5, frames=(4, 8), width=0.5)
    with pytest.raises(ValueError, match="no torchvision ImageNet counterpart"):
        load_pretrained(tiny, "imagenet")
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_pretrained(tiny, str(tmp_path / "absent.pth"))
    with pytest.raises(ValueError, match="no key of the source matched"):
        load_pretrained(tiny, {"encoder.weight": torch.zeros(3)})
    with pytest.raises(ValueError, match="wrong shape"):
        load_pretrained(tiny, resnet18_sd)  # same key names, other widths
    with pytest.raises(ValueError, match="state dict"):
        load_pretrained(tiny, {"conv1.weight": "not a tensor"})


def _randomise(model):
    with torch.no_grad():
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                v.copy_(torch.rand_like(v) + 0.5 if "running_var" in k else torch.randn_like(v) * 0.2)


@pytest.mark.parametrize("frames", [(4, 16), (4, 8, 16), (4, 8, 12, 16)])
def test_convert_st_to_ffn_reproduces_the_st_model(frames):
    torch.manual_seed(0)
    st = create_model("tsm_tiny", num_classes=5, frames=(16,), width=0.5).eval()
    _randomise(st)
    ffn = create_model("tsm_tiny", num_classes=5, frames=frames, width=0.5).eval()
    report = convert_st_to_ffn({"model": st.state_dict()}, ffn)
    assert set(report.missing) == {k for k in ffn.state_dict() if ".alter." in k}
    torch.testing.assert_close(ffn.fc.weight, st.fc.weight, rtol=0, atol=0)
    with torch.no_grad():
        for T in (4, 8, 16):  # every stream starts as the ST model (WA = identity, norms copied)
            x = torch.randn(2, T, 3, 16, 16)
            for stream in frames:
                torch.testing.assert_close(ffn(x, stream=stream), st(x), rtol=1e-5, atol=1e-6)


def test_convert_st_to_ffn_errors():
    ffn = create_model("tsm_tiny", num_classes=5, frames=(4, 8), width=0.5)
    with pytest.raises(ValueError, match="per-stream keys"):
        convert_st_to_ffn(ffn.state_dict(), ffn)
    other = create_model("tsm_tiny", num_classes=6, frames=(8,), width=0.5)
    with pytest.raises(ValueError, match="wrong shape"):
        convert_st_to_ffn(other.state_dict(), ffn)
    partial = {k: v for k, v in create_model("tsm_tiny", num_classes=5, frames=(8,), width=0.5)
               .state_dict().items() if not k.startswith("layer4")}
    with pytest.raises(ValueError, match="architectures differ"):
        convert_st_to_ffn(partial, ffn)
