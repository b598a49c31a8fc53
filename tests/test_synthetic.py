"""Synthetic temporal benchmark: determinism, files written, decodability, class invariants, resume."""
from __future__ import annotations

import dataclasses

import hashlib
import json
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pytest

from ffn_core.data import synthetic as syn
from ffn_core.data.synthetic import (CLASSES, TIERS, TierSpec, class_names, ensure_synthetic, generate, main,
                                     render_scene, render_video)
from ffn_core.data.synthetic_classes import make_scene

IDX = {c.name: i for i, c in enumerate(CLASSES)}
TINY = TierSpec("tiny", num_train=len(CLASSES), num_val=4, num_frames=16, size=32)


def _clean(name: str, seed: int, num_frames: int = 32, size: int = 32) -> tuple:
    scene = make_scene(IDX[name], np.random.default_rng(seed), num_frames)
    return scene, render_scene(scene, None, size, clean=True).astype(np.float64)


def _decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def _lines(path: Path) -> list:
    return [line.rsplit(None, 2) for line in path.read_text().splitlines()]


# ---------------------------------------------------------------------------------------------- rendering
def test_class_table_is_complete():
    names = class_names()
    assert names == [c.name for c in CLASSES] and len(set(names)) == len(names) >= 16
    for c in CLASSES:
        assert c.grade in ("coarse", "medium", "fine") and c.description and c.why
        assert c.reverse_of is None or CLASSES[IDX[c.reverse_of]].reverse_of is None


@pytest.mark.parametrize("num_frames", [8, 32])
@pytest.mark.parametrize("name", ["move_right", "rotate_cw_fast", "oscillate_5", "flash_right_then_left"])
def test_render_is_a_pure_function_of_the_rng(name, num_frames):
    a = render_video(IDX[name], np.random.default_rng(7), num_frames, 32)
    b = render_video(IDX[name], np.random.default_rng(7), num_frames, 32)
    c = render_video(IDX[name], np.random.default_rng(8), num_frames, 32)
    assert a.dtype == np.uint8 and a.shape == (num_frames, 32, 32, 3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("name", class_names())
def test_every_class_renders_and_changes_over_time(name):
    video = render_video(IDX[name], np.random.default_rng(0), 24, 32)
    assert video.shape == (24, 32, 32, 3) and video.std() > 5
    _, clean = _clean(name, 0, 24)
    assert clean.max() > 0  # the class object is drawn ...
    assert np.abs(np.diff(clean, axis=0)).sum(axis=(1, 2, 3)).max() > 0  # ... and something happens to it


@pytest.mark.parametrize("name,axis,sign", [("move_right", 1, 1), ("move_left", 1, -1),
                                            ("move_down", 0, 1), ("move_up", 0, -1)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_translation_moves_the_object_centroid(name, axis, sign, seed):
    _, clean = _clean(name, seed)
    mass = clean.sum(axis=3)  # (T, H, W)
    coords = np.arange(32) + 0.5
    profile = mass.sum(axis=2 - axis)  # (T, H) for y, (T, W) for x
    centroid = (profile * coords).sum(1) / profile.sum(1)
    assert sign * (centroid[-1] - centroid[0]) > 0.3 * 32 - 2  # 35-60 % of the frame, minus AA slack
    assert (sign * np.diff(centroid) > -0.5).all()  # monotone up to anti-aliasing noise


@pytest.mark.parametrize("name", [c.name for c in CLASSES if c.reverse_of])
def test_reverse_classes_are_exact_time_reversals(name):
    partner = CLASSES[IDX[name]].reverse_of
    for seed in range(3):
        fwd = make_scene(IDX[partner], np.random.default_rng(seed), 20)
        rev = make_scene(IDX[name], np.random.default_rng(seed), 20)
        assert len(fwd.objects) == len(rev.objects)
        for f, r in zip(fwd.objects, rev.objects):
            for key in ("x", "y", "radius", "angle", "flash"):
                assert np.allclose(getattr(r, key), getattr(f, key)[::-1]), key
        a = render_scene(fwd, None, 32, clean=True)
        b = render_scene(rev, None, 32, clean=True)
        assert np.array_equal(a[::-1], b)
        assert not np.array_equal(a, b)


@pytest.mark.parametrize("name,sense", [("rotate_cw_slow", 1), ("rotate_ccw_slow", -1)])
def test_rotation_sense_is_visible_on_screen(name, sense):
    """The bright half's centroid turns around the object's centroid clockwise (y down) for cw."""
    for seed in range(3):
        scene, clean = _clean(name, seed, 48, 64)
        obj = scene.objects[-1]
        yy, xx = np.mgrid[0:64, 0:64] + 0.5
        angles = []
        for frame in clean / 255:
            inside = frame.max(axis=2) > 0.1
            bright = inside & (np.abs(frame - obj.tone_a).sum(2) < np.abs(frame - obj.tone_b).sum(2))
            angles.append(np.arctan2(yy[bright].mean() - yy[inside].mean(), xx[bright].mean() - xx[inside].mean()))
        turned = np.unwrap(angles)[-1] - angles[0]
        assert sense * turned > 2 * np.pi * 0.25


def _tsn_centres(length: int, segments: int) -> np.ndarray:
    seg = length / segments
    return np.floor(np.arange(segments) * seg + seg / 2).astype(int)


@pytest.mark.parametrize("segments,aliased", [(4, True), (8, False), (16, False)])
@pytest.mark.parametrize("name", ["rotate_cw_fast", "rotate_ccw_fast"])
def test_fast_rotation_aliases_only_at_4_frames(name, segments, aliased):
    """Wagon-wheel effect: at 4 TSN centre frames a fast rotation steps the *other* way (by < half a turn)."""
    for seed in range(20):
        scene = make_scene(IDX[name], np.random.default_rng(seed), 48)
        angle = scene.objects[-1].angle
        true_sense = np.sign(angle[-1] - angle[0])
        step = np.diff(angle[_tsn_centres(48, segments)])
        seen = np.angle(np.exp(1j * step))  # the step as it looks: wrapped to (-pi, pi]
        assert (np.sign(seen) == (-true_sense if aliased else true_sense)).all()


@pytest.mark.parametrize("cycles", [1, 2, 3, 5])
def test_oscillation_has_the_named_number_of_cycles(cycles):
    for seed in range(5):
        obj = make_scene(IDX[f"oscillate_{cycles}"], np.random.default_rng(seed), 2000).objects[-1]
        xy = np.stack([obj.x, obj.y], 1)
        xy -= xy.mean(0)
        axis = np.linalg.svd(xy, full_matrices=False)[2][0]
        velocity = np.diff(xy @ axis)
        signs = np.sign(velocity[np.abs(velocity) > 1e-9])
        assert (np.diff(signs) != 0).sum() == 2 * cycles  # two turning points per back-and-forth


@pytest.mark.parametrize("name,left_first", [("flash_left_then_right", True), ("flash_right_then_left", False)])
def test_flash_order(name, left_first):
    for seed in range(3):
        _, clean = _clean(name, seed, 48)
        white = (clean.min(axis=3) > 240).sum(axis=1)  # (T, W): white pixels per column
        t_left, t_right = white[:, :16].sum(1).argmax(), white[:, 16:].sum(1).argmax()
        assert (t_left < t_right) == left_first


def test_bad_arguments_name_the_parameter():
    with pytest.raises(ValueError, match="class_idx"):
        render_video(len(CLASSES), np.random.default_rng(0), 8, 32)
    with pytest.raises(ValueError, match="size"):
        render_video(0, np.random.default_rng(0), 8, 31)
    with pytest.raises(ValueError, match="num_frames"):
        render_video(0, np.random.default_rng(0), 1, 32)
    with pytest.raises(ValueError, match="tier"):
        generate("unused", tier="huge")


def test_tiers():
    assert set(TIERS) == {"smoke", "cpu", "full"}
    smoke = TIERS["smoke"]
    assert smoke.num_train == 6 * len(CLASSES) and smoke.num_val == 3 * len(CLASSES)
    assert smoke.num_calib == 2 * len(CLASSES) and TIERS["cpu"].num_calib == 1000
    assert (TIERS["cpu"].num_train, TIERS["cpu"].num_val, TIERS["cpu"].num_frames) == (3000, 1000, 48)
    assert all(t.size % 2 == 0 for t in TIERS.values())


# ---------------------------------------------------------------------------------------------- files
@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic") / "smoke"
    assert main(["--tier", "smoke", "--out", str(out), "--seed", "3", "--workers", "1"]) == 0
    return out


def test_smoke_generation_writes_lists_classes_and_marker(smoke):
    spec = TIERS["smoke"]
    assert (smoke / "classes.txt").read_text().splitlines() == class_names()
    meta = json.loads((smoke / "synthetic.json").read_text())
    assert (meta["tier"], meta["seed"], meta["version"]) == ("smoke", 3, syn.VERSION)
    assert (meta["num_train"], meta["num_val"], meta["num_classes"]) == (spec.num_train, spec.num_val, len(CLASSES))
    assert meta["num_calib"] == spec.num_calib and meta["lists"]["calib"] == "calib.txt"
    for split, n, per_class in (("train", spec.num_train, 6), ("val", spec.num_val, 3), ("calib", spec.num_calib, 2)):
        rows = _lines(smoke / f"{split}.txt")
        assert [r[0] for r in rows] == [f"videos/{split}/{i:06d}.mp4" for i in range(1, n + 1)]
        assert all(int(r[1]) == spec.num_frames for r in rows)
        assert Counter(int(r[2]) for r in rows) == {c: per_class for c in range(len(CLASSES))}
        assert (smoke / "synthetic.json").stat().st_mtime_ns >= (smoke / f"{split}.txt").stat().st_mtime_ns
    assert not (smoke / syn.PARTIAL).exists()


def test_calib_split_is_held_out_from_train_and_val(smoke):
    """calib clips come from their own RNG stream: none repeats a train or val clip."""
    digest = {split: {hashlib.md5((smoke / r[0]).read_bytes()).hexdigest() for r in _lines(smoke / f"{split}.txt")}
              for split in ("train", "val", "calib")}
    assert len(digest["calib"]) == TIERS["smoke"].num_calib
    assert not digest["calib"] & digest["train"] and not digest["calib"] & digest["val"]
    assert syn.SPLITS == {"train": 0, "val": 1, "calib": 2}  # the codes seed every clip: never renumber


def test_videos_decode_to_the_listed_frame_count_with_pyav_and_decord(smoke):
    decord = pytest.importorskip("decord")
    for split in ("train", "val"):
        for k, (path, n, _) in enumerate(_lines(smoke / f"{split}.txt")):
            reader = decord.VideoReader(str(smoke / path))
            assert len(reader) == int(n) and reader[0].shape == (32, 32, 3)
            if k % 10 == 0:  # a full decode of every 10th clip with both libraries
                frames = _decode(smoke / path)
                assert frames.shape == (int(n), 32, 32, 3)
                assert np.array_equal(reader.get_batch(list(range(int(n)))).asnumpy(), frames)


@pytest.mark.parametrize("split,index", [("train", 0), ("val", 5)])
def test_video_content_matches_the_render_of_its_seeded_rng(smoke, split, index):
    """Sample i's rng is (seed, split, i), and the codec keeps small details (CRF 12, 4:4:4)."""
    path, n, label = _lines(smoke / f"{split}.txt")[index]
    expected = render_video(int(label), syn._sample_rng(3, split, index), int(n), 32).astype(float)
    err = np.abs(_decode(smoke / path).astype(float) - expected)
    assert err.mean() < 6 and np.percentile(err, 99) < 40


def test_same_seed_same_bytes_other_seed_differs_and_workers_agree(tmp_path):
    """Byte-identical for a seed whatever the worker count, in this (long, FFmpeg-loaded) pytest
    process and in a fresh interpreter: VERSION 2 renders every pixel in float64 (version 1's
    float32 rendering gave other bytes in some processes: 9-16 of 4,000 cpu-tier clips)."""
    import subprocess
    import sys

    import decord  # noqa: F401  (another FFmpeg in this process, as in a long test session)

    from ffn_core.data.fingerprint import data_fingerprint

    a = generate(tmp_path / "a", TINY, seed=1, workers=2)
    generate(tmp_path / "b", TINY, seed=1, workers=3)
    generate(tmp_path / "c", TINY, seed=2, workers=2)
    generate(tmp_path / "d", TINY, seed=1)  # in this process
    code = ("from ffn_core.data.synthetic import TierSpec, generate; "
            f"generate({str(tmp_path / 'e')!r}, TierSpec(**{dataclasses.asdict(TINY)!r}), seed=1)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
    assert a["generated"] == TINY.num_train + TINY.num_val
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file()
                   and p.name != "synthetic.json")
    assert len(files) > TINY.num_train + TINY.num_val
    for other in ("b", "d", "e"):
        for rel in files:
            assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / other / rel).read_bytes(), (other, rel)
        assert data_fingerprint(tmp_path / other) == data_fingerprint(tmp_path / "a")
    assert (tmp_path / "a" / "train.txt").read_bytes() != (tmp_path / "c" / "train.txt").read_bytes()
    assert (tmp_path / "a/videos/val/000001.mp4").read_bytes() != (tmp_path / "c/videos/val/000001.mp4").read_bytes()
    assert data_fingerprint(tmp_path / "c")["sha256"] != data_fingerprint(tmp_path / "a")["sha256"]


def test_jpeg_frames_match_the_videos(tmp_path):
    from PIL import Image

    generate(tmp_path, TINY, seed=0, write_frames=True)
    videos, frames = _lines(tmp_path / "val.txt"), _lines(tmp_path / "val_frames.txt")
    assert [(n, lab) for _, n, lab in videos] == [(n, lab) for _, n, lab in frames]
    for (vpath, n, _), (fpath, _, _) in zip(videos, frames):
        files = sorted((tmp_path / fpath).iterdir())
        assert [f.name for f in files] == [f"{i:05d}.jpg" for i in range(1, int(n) + 1)]
        first = np.asarray(Image.open(files[0]).convert("RGB"), dtype=float)
        assert first.shape == (32, 32, 3)
        assert np.abs(first - _decode(tmp_path / vpath)[0]).mean() < 8


def test_rerun_regenerates_only_missing_files(tmp_path):
    generate(tmp_path, TINY, seed=0)
    videos = sorted((tmp_path / "videos").rglob("*.mp4"))
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in videos}
    victim = videos[3]
    victim.unlink()
    (tmp_path / "synthetic.json").unlink()  # as if interrupted before the marker
    meta = generate(tmp_path, TINY, seed=0)
    assert (meta["generated"], meta["kept"]) == (1, len(videos) - 1)
    for p, (mtime, data) in before.items():
        assert p.read_bytes() == data
        assert (p.stat().st_mtime_ns == mtime) == (p != victim)
    assert not list(tmp_path.rglob("*.tmp"))
    assert generate(tmp_path, TINY, seed=0, overwrite=True)["generated"] == len(videos)


def test_ensure_synthetic_generates_only_when_needed(tmp_path, monkeypatch):
    root = ensure_synthetic(tmp_path, TINY, seed=0, verbose=False)
    assert root == tmp_path and (root / "synthetic.json").is_file()
    calls = []
    real = syn.generate
    monkeypatch.setattr(syn, "generate", lambda *a, **k: calls.append(k) or real(*a, **k))
    ensure_synthetic(tmp_path, TINY, seed=0, verbose=False)
    assert calls == []
    old = (tmp_path / "videos/train/000001.mp4").read_bytes()
    ensure_synthetic(tmp_path, TINY, seed=5, verbose=False)  # another seed: everything is regenerated
    assert len(calls) == 1 and json.loads((tmp_path / "synthetic.json").read_text())["seed"] == 5
    assert (tmp_path / "videos/train/000001.mp4").read_bytes() != old
