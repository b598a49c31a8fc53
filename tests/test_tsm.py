"""TSM-ResNet FFN models: stream routing, private norms, ablations, head, recalibration, overfitting.

The registry-wide invariants (every model x every frame set) are in test_models.py."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ffn_core.losses import MFALoss
from ffn_core.models import (
    FlexNorm,
    SeparateStreams,
    TSMResNet,
    WeightAlteration,
    count_parameters,
    create_model,
    recalibrate_bn,
    register_model,
    use_stream,
)

FRAME_SETS = [(4, 16), (4, 8, 16), (4, 8, 12, 16)]


def _tiny(frames=(4, 8, 16), seed=0, **kw):
    torch.manual_seed(seed)
    kw.setdefault("width", 0.5)
    return create_model("tsm_tiny", num_classes=5, frames=frames, **kw)


@pytest.mark.parametrize("frames", FRAME_SETS)
def test_forward_streams_and_routing(frames):
    model = _tiny(frames).eval()
    clips = [torch.randn(2, t, 3, 16, 16) for t in frames]
    with torch.no_grad():
        out = model.forward_streams(clips)
        assert list(out) == list(frames) and all(v.shape == (2, 5) for v in out.values())
        for t, clip in zip(frames, clips):
            torch.testing.assert_close(out[t], model(clip))
        torch.testing.assert_close(model(clips)[frames[0]], out[frames[0]])  # list input == forward_streams
    assert model.route(6) == (8 if 8 in frames else 4) and model.route(20) == 16 and model.route(2) == 4


def _perturb_stream(model, stream):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, FlexNorm):
                m.copy_for(stream).bias.add_(0.5)


def test_the_routed_norm_is_the_one_for_the_inputs_T():
    model = _tiny((4, 8, 16)).eval()
    xs = {t: torch.randn(2, t, 3, 16, 16) for t in (4, 5, 6, 8, 10, 12, 16)}
    with torch.no_grad():
        before = {t: model(x) for t, x in xs.items()}
        _perturb_stream(model, 8)
        after = {t: model(x) for t, x in xs.items()}
        for t in xs:  # 6, 8, 10 route to the 8-frame stream
            assert torch.equal(before[t], after[t]) == (model.route(t) != 8), t
        # an explicit stream overrides the routing
        assert not torch.equal(model(xs[4], stream=8), before[4])


@pytest.mark.parametrize("frames", [(4, 8), (4, 8, 16)])
def test_fresh_model_equals_the_plain_network(frames):
    """WA starts at zero and is not overwritten by the Kaiming init: FFN == FFN without WA."""
    ffn = _tiny(frames)
    alters = [m for m in ffn.modules() if isinstance(m, WeightAlteration)]
    assert len(alters) == 8 and all(torch.all(p == 0) for m in alters for p in m.parameters())
    plain = _tiny(frames, weight_alteration=False)
    plain.load_state_dict({k: v for k, v in ffn.state_dict().items() if ".alter." not in k})
    ffn.eval(), plain.eval()
    with torch.no_grad():
        for t in frames:
            x = torch.randn(2, t, 3, 16, 16)
            torch.testing.assert_close(ffn(x), plain(x), rtol=0, atol=0)
    normal = _tiny(frames, wa_init="normal")
    w = torch.cat([p.flatten() for m in normal.modules() if isinstance(m, WeightAlteration) for p in m.parameters()])
    assert 0 < w.abs().max() < 1e-2


def test_fc_init():
    model = create_model("tsm_tiny", num_classes=50, frames=(4, 8))
    assert torch.all(model.fc.bias == 0) and 0.5e-3 < model.fc.weight.std().item() < 2e-3


def test_head_averages_per_frame_logits_over_time():
    model = _tiny((4, 8)).eval()
    x = torch.randn(2, 8, 3, 16, 16)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (2, 8, model.num_features)
        torch.testing.assert_close(model.forward_head(feats), model.fc(feats).mean(1))
        torch.testing.assert_close(model.forward_head(feats), model(x))


def test_two_models_in_one_process_do_not_interfere():
    a, b = _tiny((4, 8), seed=1).eval(), _tiny((4, 8, 16), seed=2).eval()
    xa, xb = torch.randn(2, 4, 3, 16, 16), torch.randn(2, 16, 3, 16, 16)
    with torch.no_grad():
        ref_a, ref_b = a(xa), b(xb)
        with use_stream(a, 8):  # a is switched to another stream while b runs
            torch.testing.assert_close(b(xb), ref_b)
        torch.testing.assert_close(a(xa), ref_a)
    assert all(getattr(m, "_stream_state", None) is None for m in list(a.modules()) + list(b.modules()))


def test_private_norms_keep_separate_running_stats():
    model = _tiny((4, 8, 16)).train()
    stem = model.bn1
    with torch.no_grad():
        model.forward_streams([torch.randn(2, t, 3, 16, 16) * (1 + k) + k for k, t in enumerate((4, 8, 16))])
        means = [stem.copy_for(t).running_mean.clone() for t in (4, 8, 16)]
        assert not torch.allclose(means[0], means[1]) and not torch.allclose(means[1], means[2])
        model(torch.randn(2, 4, 3, 16, 16) + 5)
    torch.testing.assert_close(stem.copy_for(8).running_mean, means[1], rtol=0, atol=0)
    torch.testing.assert_close(stem.copy_for(16).running_mean, means[2], rtol=0, atol=0)
    assert not torch.equal(stem.copy_for(4).running_mean, means[0])
    assert int(stem.copy_for(4).num_batches_tracked) == 2 and int(stem.copy_for(16).num_batches_tracked) == 1


def test_ablation_switches():
    full = _tiny((4, 8, 16))
    wo_sn = _tiny((4, 8, 16), private_norm=False)
    wo_wa = _tiny((4, 8, 16), weight_alteration=False)
    wo_ws = _tiny((4, 8, 16), weight_sharing=False)
    st = _tiny((16,))
    assert isinstance(full, TSMResNet) and isinstance(st, TSMResNet)
    assert not any(isinstance(m, FlexNorm) for m in wo_sn.modules())
    assert any(isinstance(m, WeightAlteration) for m in wo_sn.modules())
    assert not any(isinstance(m, WeightAlteration) for m in wo_wa.modules())
    assert isinstance(wo_ws, SeparateStreams) and count_parameters(wo_ws) == 3 * count_parameters(st)
    assert count_parameters(st) < count_parameters(wo_wa) < count_parameters(full)
    assert count_parameters(wo_sn) < count_parameters(full)
    # ST: plain TSM (no private modules), and any T routes to its single stream
    assert not any(isinstance(m, (FlexNorm, WeightAlteration)) for m in st.modules())
    assert [st.route(t) for t in (2, 4, 8, 32)] == [16] * 4
    with torch.no_grad():
        out = wo_ws.eval().forward_streams([torch.randn(2, t, 3, 16, 16) for t in (4, 8, 16)])
        assert set(out) == {4, 8, 16}
        x = torch.randn(2, 6, 3, 16, 16)  # routes to the 8-frame sub-model
        torch.testing.assert_close(wo_ws(x), wo_ws.streams["t8"](x))


def test_channels_last():
    model = _tiny((4, 8)).eval()
    cl = _tiny((4, 8)).eval()
    cl.load_state_dict(model.state_dict())
    cl = cl.to(memory_format=torch.channels_last)
    assert cl.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(6, 2, 3, 16, 16).transpose(0, 1)  # non-contiguous (B, T, 3, H, W)
    with torch.no_grad():
        torch.testing.assert_close(cl(x), model(x.contiguous()), rtol=1e-4, atol=1e-5)
    cl.train()
    loss = sum(v.sum() for v in cl.forward_streams([torch.randn(2, t, 3, 16, 16) for t in (4, 8)]).values())
    loss.backward()
    assert torch.isfinite(cl.conv1.weight.grad).all()


def test_ddp_forward_streams(tmp_path):
    """DDP (gloo, world size 1): the training forward goes through __call__ with a list of clips."""
    import torch.distributed as dist

    try:
        dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    except Exception as err:  # pragma: no cover - platform without gloo
        pytest.skip(f"gloo unavailable: {err}")
    try:
        model = _tiny((4, 8))
        ddp = nn.parallel.DistributedDataParallel(model)
        y = torch.randint(0, 5, (2,))
        logits = ddp([torch.randn(2, t, 3, 16, 16) for t in (4, 8)])
        loss, _ = MFALoss()(logits, y)
        loss.backward()
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
        with torch.no_grad():
            assert ddp(torch.randn(2, 6, 3, 16, 16)).shape == (2, 5)
    finally:
        dist.destroy_process_group()


def test_recalibrate_bn():
    st = _tiny((16,)).eval()
    weights = {k: v.clone() for k, v in st.state_dict().items() if "running" not in k and "num_batches" not in k}
    batches = [torch.randn(2, 4, 3, 16, 16) * 2 + 1 for _ in range(3)]
    recalibrate_bn(st, batches)
    assert not st.training and all(not m.training for m in st.modules())
    assert st.bn1.momentum == 0.1 and int(st.bn1.num_batches_tracked) == 3
    with torch.no_grad():  # cumulative average of the per-batch means of the stem conv output
        expected = torch.stack([st.conv1(b.flatten(0, 1)).mean((0, 2, 3)) for b in batches]).mean(0)
    torch.testing.assert_close(st.bn1.running_mean, expected, rtol=1e-4, atol=1e-5)
    for k, v in weights.items():
        assert torch.equal(st.state_dict()[k], v), k
    # an FFN model: only the chosen stream's copies are re-estimated
    ffn = _tiny((4, 8, 16)).train()
    before = {t: ffn.bn1.copy_for(t).running_mean.clone() for t in (4, 8, 16)}
    recalibrate_bn(ffn, batches, stream=8)
    assert ffn.training
    assert torch.equal(ffn.bn1.copy_for(4).running_mean, before[4])
    assert torch.equal(ffn.bn1.copy_for(16).running_mean, before[16])
    assert not torch.equal(ffn.bn1.copy_for(8).running_mean, before[8])
    with pytest.raises(ValueError, match="no batch"):
        recalibrate_bn(ffn, [])
    assert torch.equal(ffn.bn1.copy_for(4).running_mean, before[4])  # failed call restores statistics


def test_bad_input_raises_clear_errors():
    model = _tiny((4, 8)).eval()
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\)"):
        model(torch.randn(8, 3, 16, 16))
    with pytest.raises(ValueError, match=r"stream=16.*\(4, 8\)"):
        model(torch.randn(1, 4, 3, 16, 16), stream=16)
    with pytest.raises(ValueError, match="got 1 clips"):
        model.forward_streams([torch.randn(1, 4, 3, 16, 16)])
    with pytest.raises(ValueError, match=r"clips\[1\].*\(B, 8, 3, H, W\)"):
        model.forward_streams([torch.randn(1, 4, 3, 16, 16), torch.randn(1, 4, 3, 16, 16)])
    with pytest.raises(ValueError, match="ascending"):
        _tiny((8, 4))
    with pytest.raises(TypeError, match=r"unknown argument\(s\) \['width'\]"):
        create_model("tsm_r18", num_classes=5, frames=(4,), width=2.0)


def test_create_model_errors():
    with pytest.raises(ValueError, match="unknown model 'tsm_r999'.*tsm_r50"):
        create_model("tsm_r999", num_classes=5)
    with pytest.raises(TypeError, match=r"unknown argument\(s\) \['num_frames'\]"):
        create_model("tsm_tiny", num_classes=5, num_frames=8)
    with pytest.raises(TypeError, match="missing required.*num_classes"):
        create_model("tsm_tiny")

    def impostor(num_classes):
        return None

    impostor.__name__ = "tsm_tiny"
    with pytest.raises(ValueError, match="already registered"):
        register_model(impostor)


def test_width_multiplier():
    assert _tiny((4,), width=1.0).num_features == 128 and _tiny((4,), width=0.5).num_features == 64


def test_tiny_ffn_overfits_at_every_frame_count():
    torch.manual_seed(0)
    frames = (4, 8)
    model = create_model("tsm_tiny", num_classes=5, frames=frames, dropout=0.0, width=0.5)
    clips = [torch.randn(8, t, 3, 32, 32) for t in frames]
    y = torch.randint(0, 5, (8,))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = MFALoss()
    for _ in range(100):
        loss, terms = loss_fn(model.forward_streams(clips), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if loss.item() < 0.02:
            break
    model.eval()
    with torch.no_grad():
        for t, clip in zip(frames, clips):
            out = model(clip)
            assert (out.argmax(1) == y).all() or F.cross_entropy(out, y) < 0.1, t
