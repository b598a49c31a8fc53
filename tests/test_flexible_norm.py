"""FlexNorm (private norms, Eq. 6), WeightAlteration (Eq. 7-9), use_stream, and the routing rule."""
import pytest
import torch
from torch import nn

from ffn_core.models import FlexNorm, WeightAlteration, check_frames, route_stream, use_stream

FRAME_SETS = [(4, 16), (4, 8, 16), (4, 8, 12, 16)]

NORMS = [
    (nn.BatchNorm2d, (6,), (5, 6, 3, 3)),
    (nn.BatchNorm3d, (6,), (5, 6, 2, 3, 3)),
    (nn.LayerNorm, (6,), (5, 7, 6)),
]


@pytest.mark.parametrize("frames", FRAME_SETS)
@pytest.mark.parametrize("norm,args,shape", NORMS, ids=["bn2d", "bn3d", "ln"])
def test_flexnorm_runs_the_active_streams_copy(frames, norm, args, shape):
    fn = FlexNorm(norm, frames, *args)
    assert set(fn.copies) == set(frames)
    params = [id(p) for c in fn.copies.values() for p in c.parameters()]
    assert len(params) == len(set(params)) == 2 * len(frames)  # own affine parameters per copy
    with torch.no_grad():
        for i, c in enumerate(fn.copies.values()):
            c.weight.fill_(1.0 + i)
            c.bias.fill_(-float(i))
    fn.eval()
    x = torch.randn(shape)
    outs = {}
    for t in frames:
        with use_stream(fn, t):
            outs[t] = fn(x)
        torch.testing.assert_close(outs[t], fn.copy_for(t)(x))
    assert len({round(o.sum().item(), 3) for o in outs.values()}) == len(frames)


@pytest.mark.parametrize("frames", FRAME_SETS)
def test_running_stats_are_private(frames):
    fn = FlexNorm(nn.BatchNorm2d, frames, 4).train()
    for k, t in enumerate(frames):
        with use_stream(fn, t):
            fn(torch.randn(8, 4, 3, 3) * (k + 1) + 10 * k)
    means = [c.running_mean.mean().item() for c in fn.copies.values()]
    assert means == sorted(means) and len(set(means)) == len(frames)
    before = {t: c.running_mean.clone() for t, c in fn.copies.items()}
    with use_stream(fn, frames[0]):
        fn(torch.randn(8, 4, 3, 3) + 100)
    for t in frames[1:]:
        torch.testing.assert_close(fn.copy_for(t).running_mean, before[t], rtol=0, atol=0)
    assert not torch.equal(fn.copy_for(frames[0]).running_mean, before[frames[0]])


def test_state_dict_keys_use_frame_suffixes():
    fn = FlexNorm(nn.BatchNorm2d, (4, 8, 16), 3)
    assert {k.split(".")[0] for k in fn.state_dict()} == {"t4", "t8", "t16"}
    assert "t8.running_var" in fn.state_dict()


def test_flexnorm_without_stream_and_bad_stream():
    fn = FlexNorm(nn.BatchNorm2d, (4, 8), 3)
    with pytest.raises(RuntimeError, match="without an active stream"):
        fn(torch.randn(2, 3, 2, 2))
    with pytest.raises(ValueError, match=r"stream=16.*\(4, 8\)"):
        with use_stream(fn, 16):
            pass
    single = FlexNorm(nn.BatchNorm2d, (16,), 3)
    assert single(torch.randn(2, 3, 2, 2)).shape == (2, 3, 2, 2)  # one copy: nothing to choose


def test_use_stream_nests_and_restores():
    a, b = FlexNorm(nn.BatchNorm2d, (4, 8), 3), FlexNorm(nn.BatchNorm2d, (4, 8), 3)
    with use_stream(a, 4):
        with use_stream(b, 8):
            assert a._stream_state.stream == 4 and b._stream_state.stream == 8
            with use_stream(a, 8, num_frames=10):
                assert a._stream_state.stream == 8 and a._stream_state.num_frames == 10
            assert a._stream_state.stream == 4
        assert b._stream_state is None
    assert a._stream_state is None


def test_use_stream_restores_after_an_exception():
    a = FlexNorm(nn.BatchNorm2d, (4, 8), 3)
    with pytest.raises(KeyError):
        with use_stream(a, 4):
            raise KeyError("boom")
    assert a._stream_state is None


@pytest.mark.parametrize("frames", FRAME_SETS)
def test_weight_alteration_starts_as_identity_and_is_private(frames):
    wa = WeightAlteration(6, frames)
    x = torch.randn(2, 6, 3, 3)
    for t in frames:
        with use_stream(wa, t):
            torch.testing.assert_close(wa(x), x, rtol=0, atol=0)
    with torch.no_grad():
        wa.copy_for(frames[0]).weight.fill_(0.5)
    with use_stream(wa, frames[0]):
        torch.testing.assert_close(wa(x), 1.5 * x)  # x + phi(x): a per-channel scale
    with use_stream(wa, frames[-1]):
        torch.testing.assert_close(wa(x), x)
    assert sum(p.numel() for p in wa.parameters()) == 6 * len(frames)


def test_weight_alteration_init_options_and_gradient():
    wa = WeightAlteration(512, (4, 8), init="normal")
    std = torch.cat([c.weight.flatten() for c in wa.copies.values()]).std().item()
    assert 0.5e-3 < std < 2e-3
    wa3 = WeightAlteration(4, (4, 8), dims=3)
    x = torch.randn(2, 4, 3, 2, 2, requires_grad=True)
    with use_stream(wa3, 8):
        wa3(x).sum().backward()
    assert wa3.copy_for(8).weight.grad.abs().sum() > 0  # zero init is not a dead start
    assert wa3.copy_for(4).weight.grad is None
    with pytest.raises(ValueError, match="init"):
        WeightAlteration(4, (4,), init="kaiming")



@pytest.mark.parametrize("frames", FRAME_SETS)
@pytest.mark.parametrize("dims", [2, 3])
def test_folding_into_the_next_conv_equals_conv_of_the_altered_input(frames, dims):
    """Eq. 8: conv(x + phi(x)) == conv with the per-input-channel scale (1 + w) in its kernel, and
    the gradients of the conv weight, the WA weight and x agree."""
    torch.manual_seed(0)
    conv = (nn.Conv2d if dims == 2 else nn.Conv3d)(6, 5, 3, padding=1, bias=True).double()
    wa = WeightAlteration(6, frames, dims=dims).double()
    with torch.no_grad():
        for c in wa.copies.values():
            c.weight.normal_()
    shape = (2, 6, 4, 4) if dims == 2 else (2, 6, 3, 4, 4)
    x = torch.randn(shape, dtype=torch.float64)
    for t in frames:
        grads = []
        for fold in (False, True):
            xi = x.clone().requires_grad_()
            conv.zero_grad()
            wa.zero_grad()
            with use_stream(wa, t):
                out = wa.fold_into(conv, xi) if fold else conv(wa(xi))
            out.square().sum().backward()
            grads.append((out.detach(), xi.grad, conv.weight.grad.clone(), wa.copy_for(t).weight.grad.clone()))
        for a, b in zip(*grads):
            torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="ungrouped conv over 6"):
        wa.fold_into(nn.Conv2d(6, 6, 1, groups=6).double(), x)


ROUTES = {
    (4, 8, 16): {1: 4, 2: 4, 4: 4, 5: 4, 6: 8, 7: 8, 8: 8, 9: 8, 10: 8, 11: 8, 12: 16, 13: 16, 16: 16, 20: 16},
    (4, 16): {2: 4, 4: 4, 8: 4, 9: 4, 10: 16, 12: 16, 16: 16, 24: 16},
    (4, 8, 12, 16): {2: 4, 5: 4, 6: 8, 9: 8, 10: 12, 11: 12, 12: 12, 13: 12, 14: 16, 15: 16, 20: 16},
    (16,): {2: 16, 4: 16, 8: 16, 16: 16, 32: 16},
}


@pytest.mark.parametrize("frames", list(ROUTES))
def test_routing_nearest_ties_to_higher(frames):
    for n, expected in ROUTES[frames].items():
        assert route_stream(n, frames) == expected, (frames, n)


def test_routing_and_frames_validation():
    with pytest.raises(ValueError, match="positive int"):
        route_stream(0, (4, 8))
    assert check_frames(16) == (16,)
    assert check_frames([4, 8, 16]) == (4, 8, 16)
    with pytest.raises(ValueError, match=r"ascending; use \(4, 8, 16\)"):
        check_frames((16, 4, 8))
    with pytest.raises(ValueError, match="positive ints"):
        check_frames((0, 4))
    with pytest.raises(ValueError, match="positive ints"):
        check_frames(())
