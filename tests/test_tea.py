"""TEA (Res2Net-50 26w4s + ME + MTA) FFN models: the temporal ops, block structure, Res2Net key layout,
pretrained loading, per-clip frame handling (the original's eval-overwrite bug), GMACs.

The registry-wide invariants (forward/backward, gradients per stream, routing, ST == plain, WA cost)
run for tea_tiny / tea_r50 in test_models.py."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ffn_core.models import (FlexNorm, WeightAlteration, count_parameters, create_model, get_model_cfg,
                             gmacs_per_clip, use_stream)
from ffn_core.models.pretrained import canonical_key, load_pretrained
from ffn_core.models.tea import MotionExcitation, TEABottleneck, TemporalConv, build_tea


def _tiny(frames=(4, 8, 16), seed=0, **kw):
    torch.manual_seed(seed)
    return create_model("tea_tiny", num_classes=5, frames=frames, **kw)


def _is_tea_only(key: str) -> bool:
    """Keys with no Res2Net counterpart: ME (``temporal``), temporal kernels (``shifts``), WA (``alter``)."""
    return any(s in key.split(".") for s in ("temporal", "shifts", "alter"))


# -- the temporal operations ----------------------------------------------------------------------
def test_temporal_conv_init_semantics_and_original_form():
    x = torch.randn(2 * 3, 5, 2, 2)  # 2 clips of 3 frames, 5 channels (odd: one unshifted channel)
    fixed, shift = TemporalConv(5, "fixed"), TemporalConv(5, "shift")
    with use_stream(fixed, 3), use_stream(shift, 3):
        torch.testing.assert_close(fixed(x), x, rtol=0, atol=0)
        y, v = shift(x).view(2, 3, 5, 2, 2), x.view(2, 3, 5, 2, 2)
    zero = torch.zeros_like(v[:, :1])
    torch.testing.assert_close(y[:, :, :2], torch.cat([v[:, 1:, :2], zero[:, :, :2]], 1))    # from t+1
    torch.testing.assert_close(y[:, :, 2:4], torch.cat([zero[:, :, :2], v[:, :-1, 2:4]], 1))  # from t-1
    torch.testing.assert_close(y[:, :, 4], v[:, :, 4])
    # random kernels: equals the original's permuted Conv1d formulation, for any T
    conv = TemporalConv(4)
    with torch.no_grad():
        conv.weight.normal_()
    for t in (1, 2, 5):
        x = torch.randn(3 * t, 4, 3, 2)
        ref = F.conv1d(x.view(3, t, 4, 3, 2).permute(0, 3, 4, 2, 1).reshape(-1, 4, t), conv.weight, padding=1,
                       groups=4).view(3, 3, 2, 4, t).permute(0, 4, 3, 1, 2).reshape(3 * t, 4, 3, 2)
        with use_stream(conv, t):
            torch.testing.assert_close(conv(x), ref)
    with pytest.raises(RuntimeError, match="without an active stream"):
        conv(x)
    with use_stream(conv, 4), pytest.raises(ValueError, match="T=4"):
        conv(torch.randn(6, 4, 2, 2))  # 6 frames are not clips of 4


def _naive_me(me: MotionExcitation, x: torch.Tensor, t: int) -> torch.Tensor:
    r = me.bn1(me.conv1(x))
    r = r.view(-1, t, *r.shape[1:])
    out = []
    for clip, xc in zip(r, x.view(-1, t, *x.shape[1:])):
        for i in range(t):
            m = me.conv2(clip[i + 1:i + 2]) - clip[i:i + 1] if i < t - 1 else torch.zeros_like(clip[:1])
            y = torch.sigmoid(me.bn3(me.conv3(m.mean((2, 3), keepdim=True)))) - 0.5
            out.append(xc[i:i + 1] * (1 + y))
    return torch.cat(out)


@pytest.mark.parametrize("t", [1, 2, 5])
def test_motion_excitation_matches_the_definition_and_keeps_clips_apart(t):
    torch.manual_seed(0)
    me = MotionExcitation(32, reduction=16).eval()
    for bn in (me.bn1, me.bn3):
        bn.running_mean.normal_(), bn.running_var.uniform_(0.5, 2), bn.weight.data.normal_(), bn.bias.data.normal_()
    assert me.conv1.out_channels == 2 and me.conv2.groups == 2 and me.conv3.out_channels == 32
    x = torch.randn(3 * t, 32, 4, 4)
    with torch.no_grad(), use_stream(me, t):
        out = me(x)
        torch.testing.assert_close(out, _naive_me(me, x, t))
        x2 = x.clone()
        x2[t:] = torch.randn_like(x2[t:])  # other clips change, clip 0 does not
        torch.testing.assert_close(me(x2)[:t], out[:t], rtol=0, atol=0)


# -- structure ----------------------------------------------------------------------------------
def test_tea_tiny_structure_stage_shapes_and_init_survives_kaiming():
    model = _tiny().eval()
    blocks = [b for b in model.modules() if isinstance(b, TEABottleneck)]
    assert [b.stage_first for b in blocks] == [True, True, True, False, True]  # layers (1, 1, 2, 1)
    assert [b.width for b in blocks] == [6, 13, 26, 26, 52] and all(b.scale == 4 for b in blocks)
    for b in blocks:
        assert isinstance(b.temporal, MotionExcitation) and b.temporal.channels == 4 * b.width
        assert (b.pool is not None) == b.stage_first and len(b.convs) == len(b.bns) == 3
        assert [s.init for s in b.shifts] == ["fixed"] * 3 + ["shift"]
        for s in b.shifts:  # identity / partial shift, not Kaiming
            ref = TemporalConv(s.channels, s.init).weight
            torch.testing.assert_close(s.weight.data, ref, rtol=0, atol=0)
        assert isinstance(b.alter, WeightAlteration) and all(torch.all(p == 0) for p in b.alter.parameters())
    # every norm is private (incl. ME's and downsample BNs); no bare BatchNorm outside a FlexNorm
    flex = {id(c) for m in model.modules() if isinstance(m, FlexNorm) for c in m.copies.values()}
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(id(m) in flex for m in bns)
    assert isinstance(blocks[0].temporal.bn1, FlexNorm) and isinstance(blocks[0].downsample[1], FlexNorm)
    shapes = {}
    hooks = [getattr(model, f"layer{i}").register_forward_hook(
        lambda m, a, o, i=i: shapes.__setitem__(i, tuple(o.shape))) for i in range(1, 5)]
    with torch.no_grad():
        assert model(torch.randn(2, 8, 3, 32, 32)).shape == (2, 5)
    for h in hooks:
        h.remove()
    assert shapes == {1: (16, 64, 16, 16), 2: (16, 128, 8, 8), 3: (16, 256, 4, 4), 4: (16, 512, 2, 2)}
    assert model.num_features == 512 and model.forward_features(torch.randn(2, 8, 3, 32, 32)).shape == (2, 8, 512)


def test_mta_hierarchy_normal_vs_stage_first_block():
    model = _tiny().eval()
    normal, stage = model.layer3[1], model.layer3[0]
    for block, changed in ((normal, [True, True, True, False]), (stage, [True, False, False, False])):
        w = block.width
        z = torch.randn(2 * 4, 4 * w, 4, 4)
        z2 = z.clone()
        z2[:, :w] += 1.0  # perturb group 0 only
        with torch.no_grad(), use_stream(model, 4):
            a, b = block.aggregate(z), block.aggregate(z2)
        assert a.shape[1] == 4 * w
        diff = [not torch.equal(a[:, i * w:(i + 1) * w], b[:, i * w:(i + 1) * w]) for i in range(4)]
        assert diff == changed, (block.stage_first, diff)


# -- the Res2Net-50 layout -----------------------------------------------------------------------
def _res2net50_26w4s_shapes(num_classes=1000) -> dict:
    """The official res2net50_26w_4s key -> shape table (written from the architecture, not our code)."""
    shapes = {"conv1.weight": (64, 3, 7, 7), "fc.weight": (num_classes, 2048), "fc.bias": (num_classes,)}

    def bn(prefix, c):
        shapes.update({f"{prefix}.{k}": (c,) for k in ("weight", "bias", "running_mean", "running_var")})
        shapes[f"{prefix}.num_batches_tracked"] = ()

    bn("bn1", 64)
    cin = 64
    for stage, (planes, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3)), start=1):
        width = planes * 26 // 64  # 26, 52, 104, 208
        for j in range(blocks):
            p = f"layer{stage}.{j}"
            shapes[f"{p}.conv1.weight"] = (4 * width, cin, 1, 1)
            bn(f"{p}.bn1", 4 * width)
            for i in range(3):
                shapes[f"{p}.convs.{i}.weight"] = (width, width, 3, 3)
                bn(f"{p}.bns.{i}", width)
            shapes[f"{p}.conv3.weight"] = (4 * planes, 4 * width, 1, 1)
            bn(f"{p}.bn3", 4 * planes)
            if j == 0:
                shapes[f"{p}.downsample.0.weight"] = (4 * planes, cin, 1, 1)
                bn(f"{p}.downsample.1", 4 * planes)
            cin = 4 * planes
    return shapes


def test_tea_r50_keys_are_the_res2net50_26w4s_layout():
    with torch.device("meta"):
        st = create_model("tea_r50", num_classes=1000, frames=(8,))
        ffn = create_model("tea_r50", num_classes=1000, frames=(4, 8, 16))
    official = _res2net50_26w4s_shapes()
    ours = {k: tuple(v.shape) for k, v in st.state_dict().items() if not _is_tea_only(k)}
    assert ours == official
    params = sum(math.prod(s) for k, s in official.items() if not k.endswith(("running_mean", "running_var",
                                                                                "num_batches_tracked")))
    assert abs(params - 25.70e6) < 0.01e6  # Res2Net-50 26w4s: 25.70M parameters
    tea_only = count_parameters(st) - params
    assert 0 < tea_only < 0.02 * params  # ME + temporal kernels
    assert {canonical_key(k) for k in ffn.state_dict() if ".alter." not in k} == set(st.state_dict())


def _res2net_file(tmp_path, seed=3):
    """A Res2Net-layout checkpoint for tea_tiny: ST keys without ME/temporal/WA, random values, 1000 classes."""
    ref = create_model("tea_tiny", num_classes=1000, frames=(8,))
    g = torch.Generator().manual_seed(seed)
    src = {}
    for k, v in ref.state_dict().items():
        if _is_tea_only(k):
            continue
        if k.endswith("num_batches_tracked"):
            src[k] = torch.tensor(7)
        elif k.endswith("running_var"):
            src[k] = torch.rand(v.shape, generator=g) + 0.5
        else:
            src[k] = torch.randn(v.shape, generator=g)
    path = tmp_path / "res2net_tiny.pth"
    torch.save({"state_dict": src}, path)
    return path, src


def test_pretrained_res2net_layout_fills_every_private_copy(tmp_path):
    path, src = _res2net_file(tmp_path)
    fresh = _tiny(seed=5)
    model = _tiny(seed=5, pretrained=str(path))
    report = model.pretrained_report
    assert sorted(report.skipped) == ["fc.bias", "fc.weight"] and report.unexpected == []
    fresh_sd, sd = fresh.state_dict(), model.state_dict()
    norm_copies = 0
    for key, val in sd.items():
        ckey = canonical_key(key)
        if _is_tea_only(key) or ckey.startswith("fc."):  # no source: init kept (ME, temporal, WA), fc untouched
            assert key in report.missing and torch.equal(val, fresh_sd[key]), key
        else:
            assert torch.equal(val, src[ckey].to(val.dtype)), key
            norm_copies += ckey != key
    n_norm_src = sum(1 for k in src if ".bn" in k or k.startswith("bn1") or "downsample.1" in k)
    assert norm_copies == 3 * n_norm_src  # every norm tensor went into the 4-, 8- and 16-frame copies
    for m in model.modules():
        if isinstance(m, WeightAlteration):
            assert all(torch.all(p == 0) for p in m.parameters())
        if isinstance(m, TemporalConv):
            torch.testing.assert_close(m.weight.data, TemporalConv(m.channels, m.init).weight, rtol=0, atol=0)


def test_pretrained_wrong_shape_or_unrelated_file_is_a_clear_error(tmp_path):
    path, src = _res2net_file(tmp_path)
    bad = dict(src)
    bad["layer1.0.conv1.weight"] = torch.randn(7, 16, 1, 1)
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="wrong shape"):
        _tiny(pretrained=str(tmp_path / "bad.pth"))
    torch.save({"backbone.stem.weight": torch.randn(3)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="no key of the source matched"):
        _tiny(pretrained=str(tmp_path / "other.pth"))
    with pytest.raises(ValueError, match="no key of the source matched"):
        load_pretrained(_tiny(frames=(4, 8)), {"something.else": torch.zeros(1)})


# -- frame handling ------------------------------------------------------------------------------
def test_eval_at_16_frames_then_training_4_frames_keeps_clips_separate():
    """The original TEA modules overwrote their 4/8-frame counts with 16 in eval mode, for good."""
    model = _tiny()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with torch.no_grad():
        model.eval()(torch.randn(2, 16, 3, 32, 32))
    model.train()
    x4 = torch.randn(4, 4, 3, 32, 32)  # 4 clips x 4 frames = the 16 frames a stale count would group
    out = model([x4, torch.randn(2, 8, 3, 32, 32), torch.randn(2, 16, 3, 32, 32)])
    sum(v.square().mean() for v in out.values()).backward()
    opt.step()
    perm = torch.tensor([3, 1, 0, 2])
    with torch.no_grad():
        feats = model.forward_features(x4)  # train mode: batch statistics are permutation-invariant
        torch.testing.assert_close(model.forward_features(x4[perm]), feats[perm], rtol=1e-4, atol=1e-5)
        model.eval()
        ref = model(x4)
        torch.testing.assert_close(model(x4[perm]), ref[perm], rtol=1e-4, atol=1e-5)
        other = x4.clone()
        other[1:] = torch.randn_like(other[1:])
        torch.testing.assert_close(model(other)[0], ref[0], rtol=1e-5, atol=1e-6)


def test_unusual_frame_counts_run():
    model = _tiny()
    with torch.no_grad():
        for t in (1, 2, 3, 5, 7, 20):
            out = model.eval()(torch.randn(2, t, 3, 32, 32))
            assert out.shape == (2, 5) and torch.isfinite(out).all(), t
    out = model.train()(torch.randn(2, 1, 3, 32, 32))  # 1 frame, training: no motion, still runs
    assert torch.isfinite(out).all()


def test_declared_cfgs_released_form_and_bad_arguments():
    for name in ("tea_tiny", "tea_r50"):
        cfg = get_model_cfg(name)
        assert (cfg.layout, cfg.classifier, cfg.stats_stage, cfg.family, cfg.test_size) == (
            "frames", "fc", "layer4", "TEA", 32)
    assert get_model_cfg("tea_r50").input_size == 224 and get_model_cfg("tea_r50").test_frames == ((4, 8),)
    with pytest.raises(ValueError, match="local weights file"):  # no torchvision Res2Net: a local file only
        _tiny(pretrained="imagenet")
    released = _tiny(weight_alteration=False)  # the released TEA-FFN: private norms, no WA
    assert not any(isinstance(m, WeightAlteration) for m in released.modules())
    assert isinstance(released.layer1[0].temporal.bn3, FlexNorm) and isinstance(released.layer1[0].bns[0], FlexNorm)
    for kw, match in ((dict(scale=1), "scale"), (dict(base_width=1), "base_width")):
        with pytest.raises(ValueError, match=match):
            TEABottleneck(16, 8, **kw)
    with pytest.raises(ValueError, match="reduction"):
        MotionExcitation(32, reduction=0)
    with pytest.raises(ValueError, match="init"):
        TemporalConv(8, "zeros")
    with pytest.raises(ValueError, match="arch"):
        build_tea("r101", num_classes=3)
    with pytest.raises(ValueError, match="frames"):
        create_model("tea_tiny", num_classes=3, frames=(8, 4))


# -- accounting ----------------------------------------------------------------------------------
def test_the_counter_sees_me_and_temporal_convs():
    me, tconv = MotionExcitation(64), TemporalConv(16)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), use_stream(me, 4), use_stream(tconv, 4), counter:
        me(torch.zeros(8, 64, 5, 5))
        tconv(torch.zeros(8, 16, 5, 5))
    hw, nt = 25, 8
    expected = nt * (64 * 4 * hw + 4 * 9 * hw + 4 * 64) + 3 * 16 * nt * hw
    assert counter.get_total_flops() == 2 * expected


def test_gmacs_at_224_and_tiny_budget():
    with torch.device("meta"):
        st = create_model("tea_r50", num_classes=174, frames=(8,))
        ffn = create_model("tea_r50", num_classes=174, frames=(4, 8, 16))
    g = {t: gmacs_per_clip(st, t, 224) for t in (4, 8)}
    assert abs(g[8] - 35.0) < 3.5 and g[4] == pytest.approx(g[8] / 2, rel=1e-6)  # TEA paper: 35 G at 8 frames
    g_ffn = gmacs_per_clip(ffn, 8, 224)
    assert g[8] <= g_ffn < 1.01 * g[8]  # WA folded into the next conv: no activation-sized work
    tea, tsm = _tiny(), create_model("tsm_tiny_s2", num_classes=5, frames=(4, 8, 16))
    for t in (4, 16):
        assert gmacs_per_clip(tea, t, 32) == pytest.approx(gmacs_per_clip(tsm, t, 32), rel=0.05)


def test_channels_last_and_bf16_autocast():
    model = _tiny((4, 8)).eval()
    cl = _tiny((4, 8)).eval()
    cl.load_state_dict(model.state_dict())
    cl = cl.to(memory_format=torch.channels_last)
    x = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(cl(x), model(x), rtol=1e-4, atol=1e-5)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = cl(x)
    assert out.shape == (2, 5) and torch.isfinite(out).all()
