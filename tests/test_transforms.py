"""Clip transforms: shapes, one shared crop per call, TSN crop geometry, seeding, flip, crops."""
import numpy as np
import pytest
import torch

from conftest import identifiable_frames, static_gradient_frames
from ffn_core.data.transforms import MultiScaleCrop, build_transform, crop_offsets

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def as_tensor(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous()


@pytest.mark.parametrize("n", [4, 12, 28])
def test_shapes_and_dtype(n):
    x = as_tensor(identifiable_frames(min(n, 25)).repeat(2, axis=0)[:n])
    train = build_transform(True, 24, 28, MEAN, STD, flip=True)(x)
    test = build_transform(False, 24, 28, MEAN, STD, flip=True)(x)
    three = build_transform(False, 24, 28, MEAN, STD, flip=True, test_crops=3)(x)
    assert train.shape == test.shape == (n, 3, 24, 24) and three.shape == (3, n, 3, 24, 24)
    assert train.dtype == test.dtype == three.dtype == torch.float32
    assert type(train) is torch.Tensor, "plain tensors, not tv_tensors, reach the collate"


def test_normalisation_of_a_constant_frame():
    x = torch.full((2, 3, 32, 40), 204, dtype=torch.uint8)
    out = build_transform(False, 24, 28, MEAN, STD, flip=False)(x)
    torch.testing.assert_close(out, torch.full_like(out, (204 / 255 - 0.5) / 0.25))


@pytest.mark.parametrize("seed", range(6))
def test_one_crop_is_shared_by_all_frames(seed):
    """All frames identical in -> all frames identical out, whatever crop/scale/flip was drawn."""
    torch.manual_seed(seed)
    x = as_tensor(static_gradient_frames(28, seed=seed))
    out = build_transform(True, 24, 28, MEAN, STD, flip=True)(x)
    assert torch.equal(out, out[:1].expand_as(out))


def test_seeding_reproduces_and_crops_vary():
    x = as_tensor(static_gradient_frames(4))
    t = build_transform(True, 24, 28, MEAN, STD, flip=True)
    outs = []
    for seed in range(12):
        torch.manual_seed(seed)
        a = t(x)
        torch.manual_seed(seed)
        assert torch.equal(a, t(x)), "torch.manual_seed makes the crop reproducible"
        outs.append(a[0])
    distinct = {tuple(o.flatten()[::97].tolist()) for o in outs}
    assert len(distinct) >= 4, "different seeds draw different crops"


def test_multiscale_crop_geometry():
    """Crop sides come from short_side * scales (|i-j| <= 1), at the 13 fixed offsets."""
    h, w, size = 60, 80, 48
    crop = MultiScaleCrop(size, scales=(1, 0.875, 0.75, 0.66))
    sides = [60, 52, 45, 39]
    sides = [size if abs(s - size) < 3 else s for s in sides]  # 45 snaps to 48 (TSN rule)
    allowed = {(sides[j], sides[i]) for i in range(4) for j in range(4) if abs(i - j) <= 1}
    seen = set()
    torch.manual_seed(0)
    video = torch.zeros(2, 3, h, w, dtype=torch.uint8)
    for _ in range(300):
        p = crop.make_params([video])
        cw, ch = p["width"], p["height"]
        assert (cw, ch) in allowed
        assert (p["left"], p["top"]) in crop_offsets(w, h, cw, ch, more_fix_crop=True)
        seen.add((cw, ch))
    assert seen == allowed
    assert len(set(crop_offsets(w, h, 39, 39))) == 13 and len(crop_offsets(w, h, 39, 39, False)) == 5


def _is_flipped(out: torch.Tensor) -> bool:
    # channel 0 of the static gradient increases with x; a flip makes it decrease
    row = out[0, 0].mean(0)
    return bool(row[-1] < row[0])


@pytest.mark.parametrize("flip", [False, True])
def test_flip_only_when_enabled(flip):
    x = as_tensor(static_gradient_frames(2))
    t = build_transform(True, 24, 28, MEAN, STD, flip=flip)
    flips = []
    for seed in range(20):
        torch.manual_seed(seed)
        flips.append(_is_flipped(t(x)))
    if flip:
        assert 3 <= sum(flips) <= 17
    else:
        assert not any(flips)


def test_test_mode_is_deterministic_centre_crop():
    x = as_tensor(static_gradient_frames(3))
    t = build_transform(False, 24, 28, MEAN, STD, flip=True)
    torch.manual_seed(0)
    a = t(x)
    torch.manual_seed(1)
    assert torch.equal(a, t(x)) and not _is_flipped(a)


@pytest.mark.parametrize("h,w", [(32, 40), (40, 32)])
def test_three_crops_along_the_long_side(h, w):
    x = as_tensor(static_gradient_frames(2, h=h, w=w))
    one = build_transform(False, 24, 28, MEAN, STD, flip=False)(x)
    three = build_transform(False, 24, 28, MEAN, STD, flip=False, test_crops=3)(x)
    torch.testing.assert_close(three[1], one)  # the middle crop is the centre crop
    assert not torch.equal(three[0], three[1]) and not torch.equal(three[1], three[2])
    channel = 0 if w > h else 1  # the gradient along the long side grows from crop 0 to crop 2
    means = [c[:, channel].mean().item() for c in three]
    assert means[0] < means[1] < means[2]


def test_bad_input_and_parameters():
    t = build_transform(True, 24, 28, MEAN, STD, flip=False)
    with pytest.raises(ValueError, match="uint8 tensor"):
        t(torch.zeros(2, 3, 32, 40))
    with pytest.raises(ValueError, match="uint8 tensor"):
        t(torch.zeros(2, 32, 40, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="resize"):
        build_transform(False, 32, 28, MEAN, STD, flip=False)
    with pytest.raises(ValueError, match="test_crops"):
        build_transform(False, 24, 28, MEAN, STD, flip=False, test_crops=2)
    with pytest.raises(ValueError, match="mean"):
        build_transform(False, 24, 28, (0.5,), STD, flip=False)
    with pytest.raises(ValueError, match="scales"):
        build_transform(True, 24, 28, MEAN, STD, flip=False, scales=(1.5,))


@pytest.mark.parametrize("train,test_crops", [(True, 1), (False, 1), (False, 3)])
def test_normalisation_is_torchvisions(train, test_crops):
    """The fused normalisation equals v2.ToDtype(scale=True) + v2.Normalize on the same crops."""
    from ffn_core._tv import torchvision  # noqa: F401  (the import workaround first)
    from torchvision.transforms import v2

    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    t = build_transform(train, 16, 16, mean, std, flip=False, scales=[1.0], test_crops=test_crops)
    x = torch.randint(0, 256, (3, 3, 16, 20), dtype=torch.uint8)
    ref = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))])
    got = t(x)
    crops = [x[..., :, 2:18]] if test_crops == 1 else [x[..., :, 0:16], x[..., :, 2:18], x[..., :, 4:20]]
    if train:  # scale 1.0 of a 16x20 frame: a 16x16 crop at one of the fixed offsets, so compare per offset
        assert any(torch.allclose(got, ref(x[..., :, o:o + 16]), atol=1e-5) for o in range(0, 5))
    else:
        want = torch.stack([ref(c) for c in crops]) if test_crops == 3 else ref(crops[0])
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert got.dtype == torch.float32


@pytest.mark.parametrize("size,scales,flip", [(32, (1.0,), True), (24, (1, 0.875, 0.75, 0.66), True),
                                              (16, (1, 0.875), False)])
def test_fast_train_path_equals_the_torchvision_compose(size, scales, flip):
    """The training transform runs the crop and flip on the plain tensor; it must give what the
    v2.Compose it replaces gives, and leave the RNG where the Compose leaves it."""
    from torchvision import tv_tensors

    t = build_transform(True, size, 0, (0.4, 0.5, 0.6), (0.2, 0.3, 0.25), flip=flip, scales=scales)
    g = torch.Generator().manual_seed(0)
    for i in range(40):
        x = torch.randint(0, 256, (4, 3, 32, 40), dtype=torch.uint8, generator=g)
        torch.manual_seed(i)
        a, after_a = t(x), torch.rand(1)
        torch.manual_seed(i)
        b, after_b = t.normalize(t.spatial(tv_tensors.Video(x)).as_subclass(torch.Tensor)), torch.rand(1)
        assert torch.equal(a, b) and torch.equal(after_a, after_b), i
