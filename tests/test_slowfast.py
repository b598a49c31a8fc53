"""Frame-flexible SlowFast: slow-frame selection and fused lengths for every T, architecture facts of
SlowFast-R50, GMACs at 224 px (paper Fig. 1), FFN placement (private BNs, WA, unaltered shortcut), and
loading the caffe2 SLOWFAST_8x8_R50.pkl layout (every private copy filled, unsafe / broken files refused).

The registry-wide invariants (forward/backward, gradients per stream, routing, ST == fresh FFN) are in
test_models.py (``-k slowfast``)."""
import math
import os
import pickle
import re

import numpy as np
import pytest
import torch
from torch import nn

from ffn_core.models import FlexNorm, WeightAlteration, create_model, gmacs_per_clip
from ffn_core.models._safe_pickle import UnsafePickleError
from ffn_core.models.pretrained import canonical_key

FRAMES = (4, 8, 16)


def _tiny(frames=FRAMES, seed=0, **kw):
    torch.manual_seed(seed)
    return create_model("slowfast_tiny", num_classes=5, frames=frames, **kw)


def _r50_meta(frames=(16, 32, 64), **kw):
    with torch.device("meta"):
        return create_model("slowfast_r50", num_classes=174, frames=frames, **kw)


@pytest.mark.parametrize("alpha", [4, 3])
def test_slow_frames_are_every_alpha_th_and_fused_lengths_match_for_every_T(alpha):
    model = _tiny(alpha=alpha, width=0.5).eval()
    seen = {}
    hooks = [model.s1.pathway0_stem.conv.register_forward_hook(lambda m, i, o: seen.__setitem__("slow_in", i[0]))]
    for s in (1, 2, 3, 4):
        fuse = getattr(model, f"s{s}_fuse")
        hooks.append(fuse.register_forward_hook(
            lambda m, i, o, s=s: seen.__setitem__(s, (i[0].shape[2], i[1].shape[2], o[0].shape[2]))))
    with torch.no_grad():
        for t in range(1, 21):  # T < alpha, T not a multiple of alpha, untrained T (routed)
            x = torch.randn(2, t, 3, 16, 16, generator=torch.Generator().manual_seed(t))
            assert model(x).shape == (2, 5)
            torch.testing.assert_close(seen["slow_in"], x.transpose(1, 2)[:, :, ::alpha], rtol=0, atol=0)
            slow = math.ceil(t / alpha)
            assert [seen[s] for s in (1, 2, 3, 4)] == [(slow, t, slow)] * 4, t
    for h in hooks:
        h.remove()


def test_r50_architecture_facts():
    model = _r50_meta(frames=(16,))  # the ST model: exactly SlowFast-R50
    convs = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv3d)}
    assert convs["s1.pathway0_stem.conv"].kernel_size == (1, 7, 7) and convs["s1.pathway0_stem.conv"].out_channels == 64
    assert convs["s1.pathway1_stem.conv"].kernel_size == (5, 7, 7) and convs["s1.pathway1_stem.conv"].out_channels == 8
    assert all(convs[f"s1.pathway{p}_stem.conv"].stride == (1, 2, 2) for p in (0, 1))
    assert isinstance(model.s1.pathway0_stem.pool, nn.MaxPool3d)
    for s, (depth, kt_slow, out) in {2: (3, 1, 256), 3: (4, 1, 512), 4: (6, 3, 1024), 5: (3, 3, 2048)}.items():
        for p, kt, width in ((0, kt_slow, out), (1, 3, out // 8)):
            blocks = [n for n in convs if re.fullmatch(rf"s{s}\.pathway{p}_res\d+\.branch2\.a", n)]
            assert len(blocks) == depth, (s, p)
            first = f"s{s}.pathway{p}_res0"
            assert convs[first + ".branch2.a"].kernel_size == (kt, 1, 1)
            assert convs[first + ".branch2.b"].kernel_size == (1, 3, 3)
            assert convs[first + ".branch2.b"].stride == (1, 1 if s == 2 else 2, 1 if s == 2 else 2)
            assert convs[first + ".branch2.c"].out_channels == width and convs[first + ".branch1"].out_channels == width
        if s < 5:  # lateral fusion after res{s}: 2x the fast channels, kernel 7 in time, stride alpha
            f = convs[f"s{s}_fuse.conv_f2s"]
            assert (f.in_channels, f.out_channels) == (out // 8, out // 4)
            assert f.kernel_size == (7, 1, 1) and f.stride == (4, 1, 1) and f.padding == (3, 0, 0) and f.bias is None
            assert convs[f"s{s + 1}.pathway0_res0.branch2.a"].in_channels == out + out // 4
    assert convs["s2.pathway0_res0.branch2.a"].in_channels == 64 + 16
    assert model.get_classifier() is model.head.projection and model.head.projection.in_features == 2048 + 256
    assert not any(isinstance(m, (FlexNorm, WeightAlteration)) for m in model.modules())


def test_init_zero_final_bn_head_std_and_zero_weight_alteration():
    model = _tiny()
    for name, m in model.named_modules():
        if isinstance(m, nn.BatchNorm3d):
            assert torch.all(m.weight == (0.0 if ".branch2.c_bn." in name else 1.0)), name
        if isinstance(m, WeightAlteration):
            assert all(torch.all(p == 0) for p in m.parameters())
    assert abs(model.head.projection.weight.std().item() - 0.01) < 0.002


def test_gmacs_at_224_match_the_paper_and_ffn_adds_under_one_percent():
    st, ffn = _r50_meta(frames=(64,)), _r50_meta()
    for t, paper in {16: 25.4, 32: 50.6, 64: 101.0}.items():  # paper Fig. 1 (SlowFast-R50, fast frames)
        g_st, g_ffn = gmacs_per_clip(st, t, 224), gmacs_per_clip(ffn, t, 224)
        assert abs(g_st / paper - 1) < 0.10, (t, g_st)
        assert g_st <= g_ffn < 1.01 * g_st, (t, g_st, g_ffn)  # WA folded into conv a: no extra MACs
    with torch.device("meta"):  # the tiny variant costs about what tsm_tiny_s2 does at 32 px
        tiny, tsm = _tiny(), create_model("tsm_tiny_s2", num_classes=5, frames=FRAMES)
    for t in FRAMES:
        assert 0.8 < gmacs_per_clip(tiny, t, 32) / gmacs_per_clip(tsm, t, 32) < 1.25, t


def test_every_bn_is_private_wa_before_conv_a_and_the_shortcut_sees_the_unaltered_input():
    model = _tiny().eval()
    plain_bns = [n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm3d) and not re.search(r"\.t\d+$", n)]
    assert not plain_bns
    flex = [n for n, m in model.named_modules() if isinstance(m, FlexNorm)]
    assert len(flex) == 2 + 4 + 2 * 4 * 3 + 2 * 4  # stems, fusions, a/b/c per block, shortcuts
    alters = {n: m for n, m in model.named_modules() if isinstance(m, WeightAlteration)}
    assert sorted(alters) == sorted(f"s{s}.pathway{p}_res0.alter" for s in (2, 3, 4, 5) for p in (0, 1))
    block = model.s3.pathway0_res0
    assert alters["s3.pathway0_res0.alter"].channels == block.branch2.a.in_channels == block.branch1.in_channels
    with torch.no_grad():
        for m in alters.values():
            m.copy_for(8).weight.fill_(0.5)
    got = {}
    block.branch1.register_forward_hook(lambda m, i, o: got.__setitem__("short", i[0]))
    block.branch2.register_forward_hook(lambda m, i, o: got.__setitem__("branch", (i[0], o)))
    with torch.no_grad():
        model(torch.randn(2, 8, 3, 32, 32))
        x, out = got["branch"]
        assert torch.equal(x, got["short"])  # the shortcut and the block see the unaltered input ...
        # ... and the branch computes bottleneck(x + 0.5 x): WA folded into conv a's kernel
        from ffn_core.models import use_stream
        with use_stream(model, 8):
            torch.testing.assert_close(out, block.branch2(1.5 * x), rtol=1e-4, atol=1e-5)


# -- pretrained: the caffe2 layout (names written from the checkpoint's convention, not from caffe2_keys) ---------
_BN = {"weight": "s", "bias": "b", "running_mean": "rm", "running_var": "riv"}


def _c2_name(key: str, depths) -> str:
    stem = re.fullmatch(r"s1\.pathway(\d)_stem\.(conv|bn)\.(\w+)", key)
    if stem:
        t = "t_" if stem[1] == "1" else ""
        return f"{t}conv1_w" if stem[2] == "conv" else f"{t}res_conv1_bn_{_BN[stem[3]]}"
    fuse = re.fullmatch(r"s(\d)_fuse\.(conv_f2s|bn)\.(\w+)", key)
    if fuse:
        s = int(fuse[1])
        base = "t_pool1_subsample" if s == 1 else f"t_res{s}_{depths[s - 2] - 1}_branch2c_bn_subsample"
        return base + ("_w" if fuse[2] == "conv_f2s" else f"_bn_{_BN[fuse[3]]}")
    blk = re.fullmatch(r"s(\d)\.pathway(\d)_res(\d+)\.(branch1|branch1_bn|branch2\.[abc]|branch2\.[abc]_bn)\.(\w+)", key)
    t, branch = ("t_" if blk[2] == "1" else ""), blk[4].replace("branch2.", "branch2")
    tail = "_w" if not branch.endswith("_bn") else f"_{_BN[blk[5]]}"
    return f"{t}res{blk[1]}_{blk[3]}_{branch}{tail}"


def _caffe2_blobs(model, depths=(1, 1, 1, 1), seed=0) -> dict:
    """A caffe2-layout blob dict (numpy, random values) for ``model``'s single-stream keys."""
    rng = np.random.default_rng(seed)
    blobs, seen = {}, set()
    for key, v in model.state_dict().items():
        ckey = canonical_key(key)
        if ckey in seen or ".alter." in key or key.endswith("num_batches_tracked") or ckey.startswith("head."):
            continue
        seen.add(ckey)
        blobs[_c2_name(ckey, depths)] = rng.uniform(0.5, 1.5, tuple(v.shape)).astype(np.float32)
    blobs["pred_w"] = np.ones((400, model.num_features), np.float32)  # Kinetics head: skipped by the loader
    blobs["pred_b"] = np.ones(400, np.float32)
    blobs.update({"conv1_w_momentum": np.zeros(1, np.float32), "lr": np.array(0.1), "model_iter": np.array(7)})
    return blobs


def _dump(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)
    return str(path)


def test_caffe2_pkl_fills_every_private_copy_and_leaves_wa_and_head(tmp_path):
    plain = _tiny(seed=3)
    blobs = _caffe2_blobs(plain)
    assert {"t_pool1_subsample_w", "t_res4_0_branch2c_bn_subsample_bn_riv", "res5_0_branch1_bn_rm",
            "t_res_conv1_bn_s", "t_res3_0_branch2b_w"} <= set(blobs)
    path = _dump(tmp_path / "SLOWFAST_tiny.pkl", {"blobs": blobs, "unused": 1})
    model = _tiny(seed=3, pretrained=path)
    rep = model.pretrained_report
    assert rep.unexpected == [] and sorted(rep.skipped) == ["head.projection.bias", "head.projection.weight"]
    assert all(".alter." in k or k.endswith("num_batches_tracked") or k.startswith("head.") for k in rep.missing)
    sd = model.state_dict()
    checked = 0
    for name, m in model.named_modules():
        if isinstance(m, FlexNorm):
            for t in FRAMES:
                for attr in ("weight", "bias", "running_mean", "running_var"):
                    src = blobs[_c2_name(f"{name}.{attr}", (1, 1, 1, 1))]
                    assert torch.equal(getattr(m.copy_for(t), attr), torch.from_numpy(src)), (name, t, attr)
                    checked += 1
    assert checked == 38 * len(FRAMES) * 4
    torch.testing.assert_close(sd["s3.pathway1_res0.branch2.b.weight"], torch.from_numpy(blobs["t_res3_0_branch2b_w"]))
    torch.testing.assert_close(sd["s2_fuse.conv_f2s.weight"], torch.from_numpy(blobs["t_res2_0_branch2c_bn_subsample_w"]))
    for k, c2 in (("s1.pathway0_stem.conv.weight", "conv1_w"), ("s1.pathway1_stem.conv.weight", "t_conv1_w")):
        torch.testing.assert_close(sd[k], torch.from_numpy(blobs[c2]).flip(1))  # BGR-trained -> RGB input
    assert all(torch.all(p == 0) for m in model.modules() if isinstance(m, WeightAlteration) for p in m.parameters())
    for k in ("head.projection.weight", "head.projection.bias"):  # same seed, same init: untouched
        assert torch.equal(sd[k], plain.state_dict()[k])


def test_pyslowfast_pyth_layout_loads_unchanged(tmp_path):
    st = _tiny(frames=(16,), seed=4)
    path = tmp_path / "slowfast.pyth"
    torch.save({"model_state": st.state_dict(), "epoch": 3}, path)
    model = _tiny(seed=5, pretrained=str(path))
    torch.testing.assert_close(model.s5.pathway1_res0.branch2.c_bn.copy_for(4).running_var,
                               st.s5.pathway1_res0.branch2.c_bn.running_var)
    assert model.pretrained_report.unexpected == []


def test_wrong_shape_or_unrelated_files_give_clear_errors(tmp_path):
    wide = _caffe2_blobs(_tiny(frames=(16,), width=2.0))
    with pytest.raises(ValueError, match="wrong shape"):
        _tiny(pretrained=_dump(tmp_path / "wide.pkl", {"blobs": wide}))
    with pytest.raises(ValueError, match="no key of the source matched"):
        _tiny(pretrained=_dump(tmp_path / "other.pkl", {"blobs": {"fc1_w": np.ones((3, 3), np.float32)}}))


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_that_would_run_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "MARKER"
    path = _dump(tmp_path / "evil.pkl", {"blobs": {"conv1_w": np.ones(3, np.float32), "x": _Evil(marker)}})
    with pytest.raises(UnsafePickleError) as err:
        _tiny(pretrained=path)
    assert path in str(err.value) and "system" in str(err.value)
    assert not marker.exists()


def test_a_truncated_pickle_gives_a_clear_error(tmp_path):
    good = open(_dump(tmp_path / "good.pkl", {"blobs": _caffe2_blobs(_tiny(frames=(16,)))}), "rb").read()
    path = tmp_path / "cut.pkl"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(pickle.UnpicklingError, match=f"{re.escape(str(path))}: not a readable pickle"):
        _tiny(pretrained=str(path))


def test_bad_arguments_name_the_argument():
    for kw, arg in ((dict(alpha=0), "alpha"), (dict(alpha=2.5), "alpha"), (dict(width=-1.0), "width")):
        with pytest.raises(ValueError, match=arg):
            _tiny(**kw)
    with pytest.raises(TypeError, match="width"):  # the registry: r50 takes no width multiplier
        create_model("slowfast_r50", num_classes=5, frames=(8, 16), width=0.5)
    with pytest.raises(ValueError, match="frames"):
        _tiny(frames=(16, 4))
