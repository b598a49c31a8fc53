"""Frame-flexible Uniformer: GMACs at 224 px, token grid per stage, FFN structure, official-checkpoint
loading into every private copy, drop-path, the CPU depth-wise backward, argument checks, learning.

The registry-wide invariants (forward/backward, routing, ST == plain, WA < 1 % GMACs) are in
test_models.py (``-k uniformer``)."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ffn_core.models import (FlexNorm, WeightAlteration, count_parameters, create_model, get_model_cfg,
                             gmacs_per_clip, use_stream)
from ffn_core.models.pretrained import canonical_key, weight_alteration_keys
from ffn_core.models.uniformer import (ARCHS, CBlock, DepthwiseConv3d, DropPath, SABlock, Uniformer,
                                       uniformer_pretrained_keys)


def _xs(frames=(4, 8, 16), seed=0, **kw):
    torch.manual_seed(seed)
    return create_model("uniformer_xs", num_classes=5, frames=frames, **kw)


def _meta(name, **kw):
    with torch.device("meta"):
        return create_model(name, **kw)


def _blocks(model):
    return [m for m in model.modules() if isinstance(m, (CBlock, SABlock))]


# -- compute and size -----------------------------------------------------------------------------------
def test_uniformer_s_gmacs_and_params_at_224():
    st = _meta("uniformer_s", num_classes=400, frames=(16,))
    ffn = _meta("uniformer_s", num_classes=400, frames=(4, 8, 16))
    g16 = gmacs_per_clip(st, 16)
    assert abs(g16 - 41.8) / 41.8 < 0.05  # UniFormer paper (Kinetics-400 table): UniFormer-S 16x4, 41.8 G
    for t, fig1 in ((4, 8.1), (8, 17.6), (16, 41.7)):  # FFN paper Fig. 1 (read off the plot)
        g_st, g_ffn = gmacs_per_clip(st, t), gmacs_per_clip(ffn, t)
        assert abs(g_st - fig1) / fig1 < 0.05, (t, g_st)
        assert g_st <= g_ffn < 1.01 * g_st, (t, g_st, g_ffn)  # WA: a per-channel multiply-add, < 1 %
    assert abs(count_parameters(st) / 1e6 - 21.4) < 0.2  # UniFormer-S: 21.4 M parameters (400 classes)


def test_uniformer_xs_costs_about_tsm_tiny_s2():
    uf, tsm = _meta("uniformer_xs", num_classes=10, frames=(16,)), _meta("tsm_tiny_s2", num_classes=10, frames=(16,))
    for t in (4, 8, 16):
        g, ref = gmacs_per_clip(uf, t, 32), gmacs_per_clip(tsm, t, 32)
        assert abs(g - ref) / ref < 0.1, (t, g, ref)


def test_gmacs_count_attention_on_cpu_too():
    model = _xs((4, 8))
    assert gmacs_per_clip(model, 4, 32, on_meta=False) == pytest.approx(gmacs_per_clip(model, 4, 32))


# -- token grid -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,grid", [("uniformer_xs", (16, 8, 4, 2)), ("uniformer_s", (8, 4, 2, 1))])
def test_token_grid_per_stage_and_any_frame_count(name, grid):
    torch.manual_seed(0)
    model = create_model(name, num_classes=3, frames=(4, 8)).eval()
    seen = {}
    hooks = [getattr(model, f"patch_embed{i}").register_forward_hook(
        lambda m, a, out, i=i: seen.__setitem__(i, tuple(out.shape))) for i in range(1, 5)]
    hooks += [blk.attn.register_forward_hook(lambda m, a, out: seen.__setitem__(m, tuple(a[0].shape)))
              for blk in _blocks(model) if isinstance(blk, SABlock)]
    try:
        with torch.no_grad():
            for t in (1, 2, 3, 5, 16):  # stage 1 halves time: ceil(T / 2) token frames
                out = model(torch.randn(2, t, 3, 32, 32))
                assert out.shape == (2, 3) and torch.isfinite(out).all()
                tt = (t + 1) // 2
                for i, (dim, hw) in enumerate(zip(model.dims, grid), 1):
                    assert seen[i] == (2, dim, tt, hw, hw), (t, i, seen[i])
                for blk in _blocks(model)[sum(model.depths[:2]):]:  # attention over all T'*H*W tokens
                    dim = blk.attn.qkv.in_features
                    hw = grid[model.dims.index(dim)]
                    assert seen[blk.attn] == (2, tt * hw * hw, dim)
    finally:
        for h in hooks:
            h.remove()


# -- FFN structure --------------------------------------------------------------------------------------
def test_private_norms_and_weight_alteration_placement():
    model = _xs((4, 8, 16))
    blocks = _blocks(model)
    assert len(blocks) == sum(ARCHS["xs"]["depths"])
    norms = [m for m in model.modules() if isinstance(m, FlexNorm)]
    assert len(norms) == 2 * len(blocks) + 4 + 1  # norm1/norm2, 4 patch embeddings, final BN
    for m in norms:
        assert set(m.copies) == {4, 8, 16}
    for blk in blocks:
        assert isinstance(blk.alter, WeightAlteration) and blk.alter.dims == 3
        assert all(torch.all(c.weight == 0) for c in blk.alter.copies.values())
        kind = nn.BatchNorm3d if isinstance(blk, CBlock) else nn.LayerNorm
        assert isinstance(blk.norm1.copy_for(8), kind) and isinstance(blk.norm2.copy_for(8), kind)
        if kind is nn.LayerNorm:
            assert blk.norm1.copy_for(8).eps == 1e-6
    assert isinstance(model.norm.copy_for(4), nn.BatchNorm3d) and model.patch_embed1.norm.copy_for(4).eps == 1e-5
    # WA comes first, before the DPE: a WA that zeroes the input makes the block ignore its input
    model.eval()
    blk = model.blocks3[0]
    with torch.no_grad():
        blk.alter.copy_for(8).weight.fill_(-1.0)  # x * (1 + w) = 0
        x1, x2 = torch.randn(2, 128, 4, 4, 4), torch.randn(2, 128, 4, 4, 4)
        for stream, same in ((8, True), (4, False)):
            with use_stream(model, stream, stream):
                assert torch.allclose(blk(x1), blk(x2)) == same, stream


def test_stats_stage_is_the_last_batchnorm_stage():
    from ffn_core.analysis.tables import bn_statistics

    assert get_model_cfg("uniformer_s").stats_stage == "blocks2"
    df = bn_statistics(_xs((4, 8)))
    assert set(df["layer"]) == {"blocks2.0.norm1", "blocks2.0.norm2"} and set(df["stream"]) == {4, 8}


# -- pretrained weights in the official layout ----------------------------------------------------------
def official_layout(dims, depths, num_classes=400, patch=4, image=False):
    """{key: shape} of an official UniFormer checkpoint (video; ``image``: the 2D ImageNet model)."""
    shapes = {}

    def conv(p, cout, cin, k):
        shapes[p + ".weight"], shapes[p + ".bias"] = (cout, cin, *(k[1:] if image else k)), (cout,)

    def lin(p, cout, cin):
        shapes[p + ".weight"], shapes[p + ".bias"] = (cout, cin), (cout,)

    def norm(p, c, bn=False):
        shapes.update({p + ".weight": (c,), p + ".bias": (c,)})
        if bn:
            shapes.update({p + ".running_mean": (c,), p + ".running_var": (c,), p + ".num_batches_tracked": ()})

    prev = 3
    for i, (c, d) in enumerate(zip(dims, depths), 1):
        conv(f"patch_embed{i}.proj", c, prev, (3, patch, patch) if i == 1 else (1, 2, 2))
        norm(f"patch_embed{i}.norm", c)
        for j in range(d):
            b = f"blocks{i}.{j}"
            conv(b + ".pos_embed", c, 1, (3, 3, 3))
            if i <= 2:
                norm(b + ".norm1", c, bn=True), conv(b + ".conv1", c, c, (1, 1, 1))
                conv(b + ".attn", c, 1, (5, 5, 5)), conv(b + ".conv2", c, c, (1, 1, 1)), norm(b + ".norm2", c, bn=True)
                conv(b + ".mlp.fc1", 4 * c, c, (1, 1, 1)), conv(b + ".mlp.fc2", c, 4 * c, (1, 1, 1))
            else:
                norm(b + ".norm1", c), lin(b + ".attn.qkv", 3 * c, c), lin(b + ".attn.proj", c, c)
                norm(b + ".norm2", c), lin(b + ".mlp.fc1", 4 * c, c), lin(b + ".mlp.fc2", c, 4 * c)
        prev = c
    norm("norm", dims[-1], bn=True)
    lin("head", num_classes, dims[-1])
    return shapes


def random_state(shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.tensor(7) if k.endswith("num_batches_tracked") else torch.rand(s, generator=g) + 0.5
            for k, s in shapes.items()}


def _xs_layout(**kw):
    a = ARCHS["xs"]
    return official_layout(a["dims"], a["depths"], patch=a["patch_size"], **kw)


def test_our_keys_are_the_official_keys():
    a = ARCHS["s"]
    model = _meta("uniformer_s", num_classes=400, frames=(4, 8, 16))
    wa = weight_alteration_keys(model)
    ours = {canonical_key(k): tuple(v.shape) for k, v in model.state_dict().items() if k not in wa}
    assert ours == official_layout(a["dims"], a["depths"])
    assert wa and all(".alter.t" in k for k in wa)


@pytest.mark.parametrize("wrapper", ["model", "model_state"])
def test_official_checkpoint_fills_every_private_copy(tmp_path, wrapper):
    src = random_state(_xs_layout())
    path = tmp_path / "uniformer_k400.pth"
    torch.save({wrapper: src, "epoch": 110}, path)
    fresh = _xs(seed=3)
    model = _xs(seed=3, pretrained=str(path))
    report = model.pretrained_report
    assert report.unexpected == [] and sorted(report.skipped) == ["head.bias", "head.weight"]
    wa = weight_alteration_keys(model)
    copies = 0
    for k, v in model.state_dict().items():
        if k in wa:
            assert torch.all(v == 0), k
        elif k.startswith("head."):
            assert torch.equal(v, fresh.state_dict()[k]), k  # the classifier is untouched
        else:
            assert torch.equal(v, src[canonical_key(k)].to(v.dtype)), k
            copies += canonical_key(k) != k
    assert copies == 3 * sum(".norm" in k or k.startswith("norm.") for k in src)  # 3 streams each


def test_imagenet_checkpoint_is_inflated(tmp_path):
    src = random_state(_xs_layout(image=True))
    out = uniformer_pretrained_keys(src)
    assert out["patch_embed1.proj.weight"].shape[2] == 3 and out["blocks1.0.attn.weight"].shape[2] == 5
    torch.testing.assert_close(out["blocks1.0.attn.weight"].sum(2), src["blocks1.0.attn.weight"])
    torch.testing.assert_close(out["blocks3.0.pos_embed.weight"][:, :, 1] * 3, src["blocks3.0.pos_embed.weight"])
    assert out["blocks3.0.attn.qkv.weight"] is src["blocks3.0.attn.qkv.weight"]
    path = tmp_path / "uniformer_in1k.pth"
    torch.save({"model": src}, path)
    model = _xs((4, 8), pretrained=str(path))
    assert model.pretrained_report.unexpected == []


def test_wrong_or_unrelated_checkpoint_is_a_clear_error(tmp_path):
    wrong = tmp_path / "wrong.pth"
    torch.save({"model": random_state(official_layout((32, 64, 128, 192), (1, 1, 2, 1), patch=2))}, wrong)
    with pytest.raises(ValueError, match="wrong shape"):
        _xs((4, 8), pretrained=str(wrong))
    unrelated = tmp_path / "tsm.pth"
    torch.save(create_model("tsm_tiny", num_classes=3, frames=(4,), width=0.25).state_dict(), unrelated)
    with pytest.raises(ValueError, match="no key of the source matched"):
        _xs((4, 8), pretrained=str(unrelated))


# -- pieces ---------------------------------------------------------------------------------------------
def test_drop_path_is_per_sample_and_linear_over_blocks():
    dp = DropPath(0.5).train()
    torch.manual_seed(0)
    y = dp(torch.ones(64, 3, 2, 2, 2))
    per_sample = y.flatten(1)
    assert set(per_sample.unique().tolist()) <= {0.0, 2.0} and (per_sample.std(1) == 0).all()
    assert 0 < (per_sample[:, 0] == 0).sum() < 64
    assert torch.equal(dp.eval()(y), y)
    model = _xs((4, 8), drop_path=0.2)
    rates = [blk.drop_path.p for blk in _blocks(model)]
    assert rates == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2])
    x = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():  # eval: no stochastic depth, the same network as drop_path=0
        torch.testing.assert_close(model.eval()(x), _xs((4, 8)).eval()(x))


@pytest.mark.parametrize("k,fmt", [(3, torch.contiguous_format), (5, torch.channels_last_3d)])
def test_depthwise_conv_backward_matches_autograd(k, fmt):
    torch.manual_seed(0)
    conv = DepthwiseConv3d(6, k)
    x = torch.randn(2, 6, 3, 5, 4).contiguous(memory_format=fmt).requires_grad_()
    g = torch.randn(2, 6, 3, 5, 4)
    ours = torch.autograd.grad(conv(x), (x, conv.weight, conv.bias), g)
    ref = torch.autograd.grad(F.conv3d(x, conv.weight, conv.bias, padding=k // 2, groups=6),
                              (x, conv.weight, conv.bias), g)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="drop_path"):
        _xs((4, 8), drop_path=1.0)
    with pytest.raises(ValueError, match="drop_path"):
        _xs((4, 8), drop_path=-0.1)
    with pytest.raises(ValueError, match="dims"):
        Uniformer(dims=(32, 64, 128), depths=(1, 1, 1, 1), num_classes=3)
    with pytest.raises(ValueError, match="head_dim"):
        Uniformer(dims=(32, 64, 96, 160), depths=(1, 1, 1, 1), num_classes=3, head_dim=64)
    with pytest.raises(ValueError, match="num_classes"):
        Uniformer(num_classes=0, **ARCHS["xs"])
    with pytest.raises(ValueError, match="too small"):
        _xs((4, 8)).eval()(torch.randn(1, 4, 3, 8, 8))
    with pytest.raises(TypeError, match="unknown argument"):
        create_model("uniformer_xs", num_classes=3, drop_rate=0.1)


def test_learns_a_tiny_batch_on_every_stream():
    torch.manual_seed(0)
    model = create_model("uniformer_xs", num_classes=4, frames=(4, 8), dropout=0.0).train()
    clips = [torch.randn(8, t, 3, 16, 16) for t in (4, 8)]  # 16 px: the smallest input of uniformer_xs
    y = torch.arange(8) % 4
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(12):
        losses = {t: F.cross_entropy(out, y) for t, out in model(clips).items()}
        first = first or {t: v.item() for t, v in losses.items()}
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    for t, v in losses.items():
        assert v.item() < 0.3 * first[t], (t, first[t], v.item())
