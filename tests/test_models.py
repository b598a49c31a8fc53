"""Registry-wide model invariants: every registered model x every frame set its cfg declares.

timm's parametrised model tests in the FFN form: forward / backward at each model's own test size,
finite outputs, **every parameter gets a gradient on the streams that use it and no other stream's
private copy does**, routing of untrained counts, per-clip temporal operations (permuting the clips
of a batch permutes the outputs), the single-stream ("ST") model is the plain backbone, a fresh FFN
computes exactly that plain network, its keys map onto the ST keys (so pretrained weights and
``init_from`` fill every private copy), and weight alteration costs < 1 % GMACs.
"""
import functools

import pytest
import torch

from ffn_core.models import (FlexNorm, FrameFlexibleModel, SeparateStreams, WeightAlteration, convert_st_to_ffn,
                             count_parameters, create_model, get_model_cfg, gmacs_per_clip, list_models)
from ffn_core.models.flexible_norm import _PerStream
from ffn_core.models.pretrained import canonical_key, weight_alteration_keys

NUM_CLASSES = 3
GRID = [(name, frames) for name in list_models() for frames in get_model_cfg(name).test_frames]
IDS = [f"{n}-{'-'.join(map(str, f))}" for n, f in GRID]
NAMES = list_models()


@functools.lru_cache(maxsize=None)
def _model(name: str, frames: tuple, **kw) -> FrameFlexibleModel:
    torch.manual_seed(0)
    return create_model(name, num_classes=NUM_CLASSES, frames=frames, **kw)


def _clip(name: str, t: int, batch: int = 2, seed: int = 0) -> torch.Tensor:
    size = get_model_cfg(name).test_size
    return torch.randn(batch, t, 3, size, size, generator=torch.Generator().manual_seed(seed + t))


def _private_owner(model) -> dict:
    """``{id(param): stream}`` for every parameter that belongs to one stream only."""
    owner = {}
    for m in model.modules():
        if isinstance(m, _PerStream):
            for t, copy in m.copies.items():
                owner.update({id(p): t for p in copy.parameters()})
        if isinstance(m, SeparateStreams):
            for t in m.frames:
                owner.update({id(p): t for p in m.streams[f"t{t}"].parameters()})
    return owner


def test_registry_lists_every_architecture():
    names = set(list_models())
    assert {"tsm_tiny", "tsm_tiny_s2", "tsm_r18", "tsm_r34", "tsm_r50", "tsm_r101"} <= names
    assert list_models("tsm_r*") == ["tsm_r101", "tsm_r18", "tsm_r34", "tsm_r50"]
    for name in names:  # every variant declares its facts
        cfg = get_model_cfg(name)
        assert cfg.layout in ("frames", "clip") and cfg.test_frames and cfg.classifier, name


@pytest.mark.parametrize("name,frames", GRID, ids=IDS)
def test_forward_backward_and_gradients_per_stream(name, frames):
    model = _model(name, frames).train()
    owner = _private_owner(model)
    assert set(owner.values()) == set(frames) or len(frames) == 1
    for t in frames:
        model.zero_grad(set_to_none=True)
        out = model(_clip(name, t))
        assert out.shape == (2, NUM_CLASSES) and torch.isfinite(out).all(), t
        out.square().mean().backward()
        dead, leaked = [], []
        for pname, p in model.named_parameters():
            uses = owner.get(id(p), t) == t  # shared, or this stream's own copy
            if uses and p.grad is None:
                dead.append(pname)
            if not uses and p.grad is not None:
                leaked.append(pname)
        assert not dead, f"stream {t}: parameters without a gradient: {dead[:5]}"
        assert not leaked, f"stream {t}: other streams' private parameters got gradients: {leaked[:5]}"
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert all(torch.isfinite(g).all() for g in grads) and sum(g.abs().sum() for g in grads) > 0


@pytest.mark.parametrize("name,frames", GRID, ids=IDS)
def test_routing_streams_and_per_clip_temporal_ops(name, frames):
    model = _model(name, frames).eval()
    clips = [_clip(name, t, batch=3) for t in frames]
    with torch.no_grad():
        out = model(clips)  # the training forward, through __call__
        assert list(out) == list(frames)
        for t, clip in zip(frames, clips):
            torch.testing.assert_close(out[t], model(clip))
            perm = torch.tensor([2, 0, 1])  # clips never exchange information
            torch.testing.assert_close(model(clip[perm]), model(clip)[perm], rtol=1e-4, atol=1e-5)
        for t in sorted({max(1, frames[0] // 2), frames[0] + 1, frames[-1] + 2} - set(frames)):
            x = _clip(name, t)
            assert model.route(t) in frames
            torch.testing.assert_close(model(x), model(x, stream=model.route(t)))
        if len(frames) > 1:  # a private norm is really per stream: perturb one, only its stream moves
            x = {t: _clip(name, t) for t in frames}
            before = {t: model(v) for t, v in x.items()}
            for m in model.modules():
                if isinstance(m, FlexNorm) and getattr(m.copy_for(frames[0]), "bias", None) is not None:
                    m.copy_for(frames[0]).bias.add_(0.5)
            after = {t: model(v) for t, v in x.items()}
            for m in model.modules():
                if isinstance(m, FlexNorm) and getattr(m.copy_for(frames[0]), "bias", None) is not None:
                    m.copy_for(frames[0]).bias.sub_(0.5)
            for t in frames:
                assert torch.equal(before[t], after[t]) == (t != frames[0]), t


@pytest.mark.parametrize("name", NAMES)
def test_single_stream_is_the_plain_backbone_and_ffn_starts_there(name):
    frames = get_model_cfg(name).test_frames[0]
    st = create_model(name, num_classes=NUM_CLASSES, frames=(frames[-1],)).eval()
    assert not any(isinstance(m, (FlexNorm, WeightAlteration)) for m in st.modules())
    ffn = _model(name, frames).eval()
    wa = weight_alteration_keys(ffn)
    ffn_keys = {canonical_key(k) for k in ffn.state_dict() if k not in wa}
    assert ffn_keys == set(st.state_dict()), "private copies must map onto the single-stream keys"
    ffn = _fresh(name, frames).eval()
    report = convert_st_to_ffn(st.state_dict(), ffn)
    assert report.unexpected == [] and report.loaded
    with torch.no_grad():  # WA starts at zero: every stream computes exactly the ST model
        for t in frames:
            x = _clip(name, t)
            torch.testing.assert_close(ffn(x), st(x), rtol=1e-5, atol=1e-6)


def _fresh(name, frames):
    torch.manual_seed(1)
    return create_model(name, num_classes=NUM_CLASSES, frames=frames)


@pytest.mark.parametrize("name", NAMES)
def test_ablation_switches_build_and_run(name):
    frames = get_model_cfg(name).test_frames[0]
    full = _model(name, frames)
    wo_sn = create_model(name, num_classes=NUM_CLASSES, frames=frames, private_norm=False)
    wo_wa = create_model(name, num_classes=NUM_CLASSES, frames=frames, weight_alteration=False)
    wo_ws = create_model(name, num_classes=NUM_CLASSES, frames=frames, weight_sharing=False)
    st = create_model(name, num_classes=NUM_CLASSES, frames=(frames[0],))
    assert not any(isinstance(m, FlexNorm) for m in wo_sn.modules())
    assert not any(isinstance(m, WeightAlteration) for m in wo_wa.modules())
    assert isinstance(wo_ws, SeparateStreams) and count_parameters(wo_ws) == len(frames) * count_parameters(st)
    assert count_parameters(st) < count_parameters(wo_wa) < count_parameters(full)
    assert wo_ws.get_classifier() is not None and full.get_classifier() is not None
    with torch.no_grad():
        for m in (wo_sn.eval(), wo_wa.eval(), wo_ws.eval()):
            assert m(_clip(name, frames[-1])).shape == (2, NUM_CLASSES)


@pytest.mark.parametrize("name", NAMES)
def test_weight_alteration_costs_under_one_percent(name):
    cfg = get_model_cfg(name)
    frames = cfg.test_frames[0]
    ffn = _model(name, frames)
    st = create_model(name, num_classes=NUM_CLASSES, frames=(frames[-1],))
    for t in frames:
        g_st, g_ffn = gmacs_per_clip(st, t, size=cfg.test_size), gmacs_per_clip(ffn, t, size=cfg.test_size)
        assert g_st > 0 and g_st <= g_ffn < 1.01 * g_st, (t, g_st, g_ffn)
