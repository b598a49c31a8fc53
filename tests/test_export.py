"""export: one FFN stream as a plain single-T model - private norms selected, weight alteration and
BatchNorms folded - equal to the stream within 1e-4, with the ST model's GMACs (issue 15.2)."""
import json
import subprocess
import sys

import pytest
import torch
from torch import nn

from ffn_core.config import Config
from ffn_core.engine import fit
from ffn_core.engine.export import export_stream
from ffn_core.models import create_model, gmacs_per_clip
from ffn_core.models.export import ChannelScale, ExportedStream, ExportError, fold_norms, stream_into

ARCHS = ["tsm_tiny_s2", "tea_tiny", "slowfast_tiny", "uniformer_xs"]
FRAMES = (4, 8, 16)


def _trained_like(name: str, frames=FRAMES, **kw) -> nn.Module:
    """An FFN whose private pieces differ per stream (as after training): WA far from zero, BN
    statistics and affines random, so a wrong copy or a wrong fold shows in the logits."""
    torch.manual_seed(0)
    m = create_model(name, num_classes=7, frames=frames, **kw)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if ".alter." in f".{n}":
                p.normal_(0, 0.3)
        for mod in m.modules():
            if isinstance(mod, (nn.BatchNorm2d, nn.BatchNorm3d)):
                mod.running_mean.normal_(0, 0.2)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.normal_(1, 0.3)
                mod.bias.normal_(0, 0.3)
            elif isinstance(mod, nn.LayerNorm):
                mod.weight.normal_(1, 0.3)
                mod.bias.normal_(0, 0.3)
    return m.eval()


@pytest.mark.parametrize("name", ARCHS)
@pytest.mark.parametrize("T", FRAMES)
def test_exported_stream_equals_ffn_stream(name, T):
    ffn = _trained_like(name)
    st = create_model(name, num_classes=7, frames=(T,)).eval()
    report = stream_into(ffn, st, T)
    exported = ExportedStream(st, T).eval()
    x = torch.randn(2, T, 3, 32, 32)
    with torch.no_grad():
        ref = ffn(x, stream=T)
        torch.testing.assert_close(exported(x), ref, atol=1e-5, rtol=0)
        folded = fold_norms(exported, x[:1])
        torch.testing.assert_close(exported(x), ref, atol=1e-4, rtol=0)
    # the other streams' private copies are the only keys not used, and all of them are reported
    other = [k for k in ffn.state_dict() if any(f".t{t}." in k for t in FRAMES if t != T)]
    assert sorted(report["dropped"]) == sorted(other)
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)) for n, m in exported.named_modules()
                   if n not in folded["kept"])
    # accounting: the ST model's GMACs; its parameters before norm folding (+ C per unfoldable WA)
    plain = create_model(name, num_classes=7, frames=(T,)).eval()
    assert gmacs_per_clip(exported, T, 32) == pytest.approx(gmacs_per_clip(plain, T, 32), rel=1e-9)
    scales = sum(m.scale.numel() for m in st.modules() if isinstance(m, ChannelScale))
    if name == "uniformer_xs":
        assert report["folded"] == [] and len(report["kept"]) > 0 and scales > 0  # DPE + residual: kept
        assert any("norm1" in b for b, _ in folded["before_conv"])  # pre-norm BN into the 1x1x1 conv
    else:
        assert len(report["folded"]) > 0 and report["kept"] == [] and scales == 0
        assert folded["kept"] == []  # every BN of TSM / TEA / SlowFast follows a conv


@pytest.mark.parametrize("T", [8, 12])
def test_untrained_frame_count_runs_the_routed_stream(T):
    ffn = _trained_like("tsm_tiny_s2")
    stream = ffn.route(T)
    st = create_model("tsm_tiny_s2", num_classes=7, frames=(stream,)).eval()
    stream_into(ffn, st, stream)
    x = torch.randn(1, T, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ExportedStream(st, stream, T)(x), ffn(x), atol=1e-5, rtol=0)


def test_without_weight_sharing_exports_the_streams_own_model():
    ffn = _trained_like("tsm_tiny_s2", frames=(4, 8), weight_sharing=False)
    st = create_model("tsm_tiny_s2", num_classes=7, frames=(8,)).eval()
    stream_into(ffn, st, 8)
    x = torch.randn(1, 8, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ExportedStream(st, 8)(x), ffn(x), atol=1e-6, rtol=0)


def test_stream_into_refuses_wrong_targets():
    ffn = _trained_like("tsm_tiny_s2")
    with pytest.raises(ExportError, match="frames=5"):
        stream_into(ffn, create_model("tsm_tiny_s2", num_classes=7, frames=(5,)), 5)
    with pytest.raises(ExportError, match=r"frames=\(8,\)"):
        stream_into(ffn, create_model("tsm_tiny_s2", num_classes=7, frames=(4, 8)), 8)
    with pytest.raises(ExportError, match="shape"):
        stream_into(ffn, create_model("tsm_tiny_s2", num_classes=9, frames=(8,)), 8)
    with pytest.raises(ExportError, match="eval mode"):
        fold_norms(create_model("tsm_tiny_s2", num_classes=7, frames=(8,)).train(), torch.zeros(1, 8, 3, 32, 32))


@pytest.fixture(scope="module")
def ckpt(data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("export_run")
    cfg = Config.from_dict(dict(dataset="synthetic", data_root=str(data_root), frames=(2, 4), crop_size=16,
                                model="tsm_tiny", strategy="ffn", epochs=1, batch_size=4, optimizer="adamw",
                                lr=2e-3, num_workers=0, device="cpu", log_every=100, out_dir=str(out), dropout=0.0))
    fit(cfg)
    return out / "best.pt"


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
@pytest.mark.parametrize("T", [2, 4])
def test_export_file_loads_back_equal(ckpt, tmp_path, fmt, T):
    """The written file, run by torch.jit.load / onnxruntime at another batch size, gives the FFN
    stream's logits; its side file has the ST model's GMACs."""
    from ffn_core.engine.checkpoint import load_checkpoint

    out = tmp_path / f"m{T}.{fmt}"
    info = export_stream(ckpt, T, fmt, out)
    assert out.is_file() and json.loads((tmp_path / f"m{T}.{fmt}.json").read_text())["stream"] == T
    assert info["gmacs"] == pytest.approx(info["gmacs_st_model"], rel=1e-9)
    assert info["params"] < info["params_st_model"]  # the folded norms are gone
    assert info["norms"]["kept"] == [] and info["weight_alteration"]["folded"] > 0
    model, _ = load_checkpoint(ckpt)
    x = torch.randn(3, T, 3, 16, 16)
    with torch.no_grad():
        ref = model(x, stream=T)
    if fmt == "torchscript":
        got = torch.jit.load(str(out))(x)
    else:
        import onnxruntime as ort

        sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        got = torch.from_numpy(sess.run(None, {"clips": x.numpy()})[0])
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=0)


def test_export_cli_errors_are_one_line(ckpt, tmp_path):
    run = [sys.executable, "-m", "ffn_core", "export", "--checkpoint"]
    bad = subprocess.run(run + [str(tmp_path / "nope.pt"), "--frames", "4", "--format", "onnx", "--out",
                                str(tmp_path / "m.onnx")], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and "nope.pt" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    zero = subprocess.run(run + [str(ckpt), "--frames", "0", "--format", "torchscript", "--out",
                                 str(tmp_path / "m.pt")], capture_output=True, text=True)
    assert zero.returncode == 2 and "--frames" in zero.stderr and not (tmp_path / "m.pt").exists()
    ok = subprocess.run(run + [str(ckpt), "--frames", "4", "--format", "torchscript", "--out",
                               str(tmp_path / "m.pt")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "stream 4" in ok.stdout and (tmp_path / "m.pt").is_file()


def test_a_wrong_fold_is_caught_before_writing(ckpt, tmp_path, monkeypatch):
    import ffn_core.models.export as ex

    real = ex.fold_norms

    def broken(model, example):
        out = real(model, example)
        with torch.no_grad():
            next(m for m in model.modules() if isinstance(m, nn.Conv2d)).weight.mul_(1.5)
        return out

    monkeypatch.setattr(ex, "fold_norms", broken)
    with pytest.raises(ExportError, match="differs from stream"):
        export_stream(ckpt, 4, "torchscript", tmp_path / "m.pt")
    assert not list(tmp_path.iterdir())
