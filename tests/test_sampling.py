"""TSN segment sampling: ranges, segment coverage, determinism, views, union scatter."""
import math

import numpy as np
import pytest

from ffn_core.data.sampling import multi_frequency_indices, segment_indices, union_indices

FRAME_SETS = [(4, 8, 16), (4, 16), (4, 8, 12, 16)]


@pytest.mark.parametrize("T", [2, 4, 8, 16])
@pytest.mark.parametrize("mode", ["train", "val"])
@pytest.mark.parametrize("num_frames", [1, 2, 3, 7, 15, 16, 17, 33, 301])
def test_indices_in_range_sorted_int64(num_frames, T, mode):
    rng = np.random.default_rng(0)
    for clip, num_clips in [(0, 1), (0, 3), (2, 3)]:
        idx = segment_indices(num_frames, T, mode, rng=rng, clip=clip, num_clips=num_clips)
        assert idx.dtype == np.int64 and idx.shape == (T,)
        assert idx.min() >= 0 and idx.max() <= num_frames - 1
        assert np.all(np.diff(idx) >= 0), "TSN indices are in temporal order"


@pytest.mark.parametrize("T", [2, 4, 8, 16])
@pytest.mark.parametrize("mode", ["train", "val"])
def test_short_video_rule(T, mode):
    for n in range(1, T):
        idx = segment_indices(n, T, mode, rng=np.random.default_rng(1))
        expected = [math.floor(i * n / T) for i in range(T)]
        assert idx.tolist() == expected
        assert set(idx.tolist()) == set(range(n)), "every frame of a short video is used"


@pytest.mark.parametrize("bad", [0, -1])
def test_empty_video_raises(bad):
    with pytest.raises(ValueError, match="num_frames"):
        segment_indices(bad, 8, "val")


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="mode"):
        segment_indices(10, 4, "test")
    with pytest.raises(ValueError, match="T="):
        segment_indices(10, 0, "val")
    with pytest.raises(ValueError, match="clip"):
        segment_indices(10, 4, "val", clip=3, num_clips=3)
    with pytest.raises(ValueError, match="frames"):
        multi_frequency_indices(10, [], "val")


@pytest.mark.parametrize("num_frames,T", [(37, 8), (16, 16), (100, 4), (50, 16)])
def test_train_one_frame_per_segment_and_all_frames_reachable(num_frames, T):
    rng = np.random.default_rng(0)
    tick = num_frames / T
    seen = set()
    for _ in range(400):
        idx = segment_indices(num_frames, T, "train", rng=rng)
        for i, j in enumerate(idx):
            # frame j overlaps segment i = [i*tick, (i+1)*tick)
            assert math.floor(i * tick) <= j < (i + 1) * tick, (i, j)
        seen.update(idx.tolist())
    assert seen == set(range(num_frames)), "float segment boundaries make every frame reachable"


def test_train_is_seeded_and_random():
    a = segment_indices(200, 8, "train", rng=np.random.default_rng(5))
    b = segment_indices(200, 8, "train", rng=np.random.default_rng(5))
    c = segment_indices(200, 8, "train", rng=np.random.default_rng(6))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("num_frames,T", [(24, 8), (37, 16), (10, 4), (301, 16)])
def test_val_is_segment_centres_and_deterministic(num_frames, T):
    tick = num_frames / T
    expected = [math.floor(tick / 2 + i * tick) for i in range(T)]
    a = segment_indices(num_frames, T, "val", rng=np.random.default_rng(0))
    b = segment_indices(num_frames, T, "val", rng=np.random.default_rng(99))
    assert a.tolist() == expected and np.array_equal(a, b)


@pytest.mark.parametrize("num_clips", [2, 3, 5])
def test_multi_clip_views_differ_and_stay_in_segments(num_clips):
    num_frames, T = 96, 8
    tick = num_frames / T
    views = [segment_indices(num_frames, T, "val", clip=v, num_clips=num_clips) for v in range(num_clips)]
    for v in range(num_clips):
        for u in range(v):
            assert not np.array_equal(views[u], views[v])
        assert all(math.floor(i * tick) <= j < (i + 1) * tick for i, j in enumerate(views[v]))
        expected = [math.floor(tick * (v + 1) / (num_clips + 1) + i * tick) for i in range(T)]
        assert views[v].tolist() == expected
    assert np.all(np.diff(np.stack(views), axis=0) > 0), "later views sit later in every segment"


@pytest.mark.parametrize("frames", FRAME_SETS)
@pytest.mark.parametrize("mode", ["train", "val"])
def test_multi_frequency_shapes(frames, mode):
    sets = multi_frequency_indices(57, frames, mode, rng=np.random.default_rng(0))
    assert [len(s) for s in sets] == list(frames)
    assert all(s.min() >= 0 and s.max() < 57 for s in sets)


def test_multi_frequency_sets_are_independent_not_nested():
    rng = np.random.default_rng(0)
    nested = 0
    for _ in range(50):
        low, high = multi_frequency_indices(160, (4, 16), "train", rng=rng)
        nested += set(low.tolist()) <= set(high.tolist())
    assert nested < 10, "the 4-frame set must be drawn independently of the 16-frame set"


@pytest.mark.parametrize("frames", FRAME_SETS)
@pytest.mark.parametrize("num_frames", [3, 20, 90])
def test_union_scatter_recovers_every_set(frames, num_frames):
    sets = multi_frequency_indices(num_frames, frames, "train", rng=np.random.default_rng(3))
    union, pos = union_indices(sets)
    assert np.all(np.diff(union) > 0), "union is sorted and de-duplicated"
    assert set(union.tolist()) == set(np.concatenate(sets).tolist())
    assert len(pos) == len(sets)
    for s, p in zip(sets, pos):
        assert np.array_equal(union[p], s)
