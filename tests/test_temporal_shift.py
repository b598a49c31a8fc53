"""Temporal shift: definition, per-batch T, clip isolation, memory formats (TSM; issue #3 of the official repo)."""
import pytest
import torch

from ffn_core.models import TemporalShift, create_model, temporal_shift, use_stream

FRAME_COUNTS = [1, 2, 4, 8, 16]


def _reference_shift(x, T, fold_div=8):
    """Loop-by-loop definition: out[t, :f] = x[t+1, :f]; out[t, f:2f] = x[t-1, f:2f]; zero padded."""
    nt, c, h, w = x.shape
    fold = c // fold_div
    out = x.clone()
    for n in range(nt // T):
        for t in range(T):
            i = n * T + t
            out[i, :fold] = x[i + 1, :fold] if t + 1 < T else 0
            out[i, fold : 2 * fold] = x[i - 1, fold : 2 * fold] if t > 0 else 0
    return out


@pytest.mark.parametrize("T", FRAME_COUNTS)
def test_shift_matches_definition(T):
    x = torch.randn(3 * T, 16, 2, 3)
    torch.testing.assert_close(temporal_shift(x, T), _reference_shift(x, T), rtol=0, atol=0)


@pytest.mark.parametrize("T", FRAME_COUNTS)
def test_permuting_clips_permutes_outputs(T):
    x = torch.randn(4 * T, 16, 3, 3)
    perm = torch.tensor([2, 0, 3, 1])
    clips = x.reshape(4, T, 16, 3, 3)
    shifted = temporal_shift(clips[perm].flatten(0, 1), T).reshape(4, T, 16, 3, 3)
    expected = temporal_shift(x, T).reshape(4, T, 16, 3, 3)[perm]
    torch.testing.assert_close(shifted, expected, rtol=0, atol=0)


@pytest.mark.parametrize("T", FRAME_COUNTS)
def test_shift_never_crosses_clip_boundaries(T):
    x = torch.randn(3 * T, 16, 2, 2)
    y = x.clone()
    y[T:] = torch.randn_like(y[T:])  # change every clip but the first
    torch.testing.assert_close(temporal_shift(x, T)[:T], temporal_shift(y, T)[:T], rtol=0, atol=0)


def test_boundary_test_detects_the_original_bug():
    """The original code shifted 4-frame batches as 16-frame clips: clip 0 then sees clip 1."""
    x = torch.randn(4 * 4, 16, 2, 2)
    y = x.clone()
    y[4:] += 1.0
    wrong_a, wrong_b = temporal_shift(x, 16)[:4], temporal_shift(y, 16)[:4]
    assert not torch.equal(wrong_a, wrong_b)


@pytest.mark.parametrize("T", [2, 4, 8])
def test_channels_last_and_non_contiguous_input(T):
    x = torch.randn(2 * T, 16, 5, 4)
    ref = temporal_shift(x, T)
    cl = x.contiguous(memory_format=torch.channels_last)
    out = temporal_shift(cl, T)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    nc = x.transpose(2, 3).contiguous().transpose(2, 3)  # same values, non-contiguous strides
    assert not nc.is_contiguous()
    torch.testing.assert_close(temporal_shift(nc, T), ref, rtol=0, atol=0)


def test_channel_split_and_gradient():
    T, c = 4, 16
    x = torch.randn(T, c, 1, 1, requires_grad=True)
    out = temporal_shift(x, T)
    fold = c // 8
    torch.testing.assert_close(out[:, 2 * fold :], x[:, 2 * fold :])
    assert torch.all(out[-1, :fold] == 0) and torch.all(out[0, fold : 2 * fold] == 0)
    out.sum().backward()
    # every input value feeds exactly one output, except the two values shifted out of the clip
    assert torch.all(x.grad[0, :fold] == 0) and torch.all(x.grad[-1, fold : 2 * fold] == 0)
    assert x.grad.sum() == x.numel() - 2 * fold


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="not a multiple of num_frames=4"):
        temporal_shift(torch.randn(6, 16, 2, 2), 4)
    with pytest.raises(ValueError, match=r"\(N\*T, C, H, W\)"):
        temporal_shift(torch.randn(2, 4, 16, 2, 2), 4)
    with pytest.raises(RuntimeError, match="without an active stream"):
        TemporalShift()(torch.randn(4, 16, 2, 2))


def test_module_reads_T_from_the_active_stream():
    shift = TemporalShift()
    x = torch.randn(8, 16, 2, 2)
    for T in (2, 4, 8):
        with use_stream(shift, stream=4, num_frames=T):
            torch.testing.assert_close(shift(x), temporal_shift(x, T))
    assert shift._stream_state is None  # restored


@pytest.fixture(scope="module")
def tiny_ffn():
    torch.manual_seed(0)
    return create_model("tsm_tiny", num_classes=5, frames=(4, 8, 16), width=0.5).eval()


@pytest.mark.parametrize("T", [2, 4, 6, 8, 16])
def test_model_outputs_permute_with_clips(tiny_ffn, T):
    x = torch.randn(3, T, 3, 16, 16)
    perm = torch.tensor([1, 2, 0])
    with torch.no_grad():
        torch.testing.assert_close(tiny_ffn(x[perm]), tiny_ffn(x)[perm], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("T", [2, 4, 8, 16])
def test_model_clips_are_isolated(tiny_ffn, T):
    """Changing the other clips of the batch never changes a clip's logits (eval mode)."""
    x = torch.randn(3, T, 3, 16, 16)
    y = x.clone()
    y[1:] = torch.randn_like(y[1:])
    with torch.no_grad():
        torch.testing.assert_close(tiny_ffn(x)[0], tiny_ffn(y)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("T", [1, 2, 4, 8])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_custom_backward_is_the_shifts_gradient(T, channels_last):
    """The one-pass backward (shift the other way) equals autograd's gradient of the definition."""
    x = torch.randn(2 * T, 16, 3, 2, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    assert torch.autograd.gradcheck(lambda v: temporal_shift(v, T), (x.requires_grad_(),))
    g = torch.randn(2 * T, 16, 3, 2, dtype=torch.float64)
    ref = x.detach().clone().requires_grad_()
    _reference_shift(ref, T).backward(g)
    y = x.detach().clone().requires_grad_()
    temporal_shift(y, T).backward(g)
    torch.testing.assert_close(y.grad, ref.grad, rtol=0, atol=0)
