"""Dataset registry, list files and VideoListDataset (streams, shared crop, views, seeding, errors)."""
import logging
import math
import os
import shutil

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from conftest import NUM_FRAMES, frame_ids, static_gradient_frames, write_frame_folder, write_video
from ffn_core.config import Config
from ffn_core.data.datasets import (
    DatasetSpec,
    VideoListDataset,
    clear_video_cache,
    VideoRecord,
    build_dataset,
    get_dataset_spec,
    list_datasets,
    read_list_file,
    register_dataset,
    write_list_file,
)
from ffn_core.data.readers import VideoReadError
from ffn_core.data.sampling import segment_indices

FRAME_SETS = [(4, 8, 16), (4, 16), (4, 8, 12, 16)]
MEAN, STD = (0.5,) * 3, (0.25,) * 3
# a flip-enabled video spec (like K400) with classes from classes.txt
FLIP_SPEC = DatasetSpec("flip_test", "video", "{:05d}.jpg", None, MEAN, STD, flip=True)


def red_ids(clip: torch.Tensor) -> np.ndarray:
    """Frame ids of normalised clip frames (..., 3, H, W), spec mean/std 0.5/0.25."""
    red = (clip[..., 0, :, :] * 0.25 + 0.5) * 255
    return frame_ids(red.numpy())


@pytest.fixture
def id_root(tmp_path, media):
    """Data root with the identifiable video under a path containing a space, and 3 classes."""
    shutil.copy(media["video"], tmp_path / "my video.mp4")
    (tmp_path / "classes.txt").write_text("left\nright\nstill\n")
    write_list_file(tmp_path / "val.txt", [VideoRecord("my video.mp4", NUM_FRAMES, 2)])
    return tmp_path


@pytest.fixture
def static_root(tmp_path):
    """Four constant-in-time gradient videos (different patterns): any crop shows in every frame."""
    root = tmp_path / "static"
    records = []
    for i in range(4):
        write_video(root / f"v{i}.mp4", static_gradient_frames(18 + i, seed=i))
        records.append(VideoRecord(f"v{i}.mp4", 18 + i, i % 2))
    (root / "classes.txt").write_text("a\nb\n")
    write_list_file(root / "train.txt", records)
    return root


# ---------------------------------------------------------------------------------------------
def test_registry_specs():
    assert {"synthetic", "ssv1", "ssv2", "k400", "hmdb51", "ucf101"} <= set(list_datasets())
    for name in ("ssv1", "ssv2", "synthetic"):
        assert get_dataset_spec(name).flip is False, f"{name}: left/right matters, no flip"
    for name, classes in (("k400", 400), ("hmdb51", 51), ("ucf101", 101), ("ssv1", 174), ("ssv2", 174)):
        spec = get_dataset_spec(name)
        assert spec.num_classes == classes and spec.mean == (0.485, 0.456, 0.406)
        assert spec.flip is (name in ("k400", "hmdb51", "ucf101"))
    assert get_dataset_spec("ssv1").template == "{:05d}.jpg" and get_dataset_spec("ssv2").template == "{:06d}.jpg"
    syn = get_dataset_spec("synthetic")
    assert syn.kind == "video" and syn.num_classes is None and syn.mean == MEAN and syn.std == STD
    with pytest.raises(KeyError, match="ssv1"):
        get_dataset_spec("imagenet")


def test_register_replaces_by_name():
    original = get_dataset_spec("synthetic")
    try:
        register_dataset(DatasetSpec("synthetic", "video", "", 7, MEAN, STD, False, description="refined"))
        assert get_dataset_spec("synthetic").num_classes == 7
    finally:
        register_dataset(original)
    with pytest.raises(ValueError, match="kind"):
        DatasetSpec("x", "audio", "", 3, MEAN, STD, False)


def test_list_file_roundtrip_with_spaces(tmp_path):
    records = [VideoRecord("a/b c/d.mp4", 30, 0), VideoRecord("e.mp4", 1, 5)]
    write_list_file(tmp_path / "sub" / "l.txt", records)
    assert read_list_file(tmp_path / "sub" / "l.txt") == records
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["l.txt"], "no temporary file left behind"
    (tmp_path / "blank.txt").write_text("x.mp4 3 1\n\n  \ny z.mp4   4 0\n")
    assert read_list_file(tmp_path / "blank.txt") == [VideoRecord("x.mp4", 3, 1), VideoRecord("y z.mp4", 4, 0)]


@pytest.mark.parametrize("bad_line", ["only_two 3", "v.mp4 three 1", "v.mp4 3 one", "v.mp4 3 -1", "v.mp4 0 1"])
def test_list_file_errors_name_file_and_line(tmp_path, bad_line):
    path = tmp_path / "list.txt"
    path.write_text(f"ok.mp4 10 0\n\n{bad_line}\n")
    with pytest.raises(ValueError, match=r"list\.txt:3: expected '<path> <num_frames> <label>'.*got"):
        read_list_file(path)


def test_missing_list_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_list_file(tmp_path / "nope.txt")


# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("frames", FRAME_SETS)
def test_eval_sample_decodes_the_val_indices(id_root, frames):
    ds = VideoListDataset(id_root / "val.txt", id_root, "synthetic", frames, train=False, crop_size=24, resize=28)
    assert len(ds) == 1 and ds.num_classes == 3 and ds.class_names == ["left", "right", "still"]
    clips, label = ds[0]
    assert label == 2 and len(clips) == len(frames)
    for T, clip in zip(frames, clips):
        assert clip.shape == (T, 3, 24, 24) and clip.dtype == torch.float32
        assert red_ids(clip).tolist() == segment_indices(NUM_FRAMES, T, "val").tolist()


def test_eval_views_clips_times_crops(id_root):
    ds = VideoListDataset(id_root / "val.txt", id_root, "synthetic", (4, 8), train=False, crop_size=24,
                          resize=28, num_clips=2, test_crops=3)
    clips, _ = ds[0]
    assert [c.shape for c in clips] == [(6, 4, 3, 24, 24), (6, 8, 3, 24, 24)]
    for T, clip in zip((4, 8), clips):
        for v in range(6):
            c, j = divmod(v, 3)  # view v = clip * test_crops + crop
            expected = segment_indices(NUM_FRAMES, T, "val", clip=c, num_clips=2)
            assert red_ids(clip[v]).tolist() == expected.tolist()
        assert not torch.equal(clip[0], clip[1]), "different spatial crops"
        assert red_ids(clip[0]).tolist() != red_ids(clip[3]).tolist(), "different temporal clips"


def test_frame_folder_dataset(tmp_path, media):
    write_frame_folder(tmp_path / "vid one", media["frames"])
    write_list_file(tmp_path / "val.txt", [VideoRecord("vid one", NUM_FRAMES, 173)])
    ds = VideoListDataset(tmp_path / "val.txt", tmp_path, "ssv1", (4, 8), train=False, crop_size=24, resize=28)
    assert ds.num_classes == 174
    clips, label = ds[0]
    assert label == 173
    # ImageNet normalisation: invert it to read the frame ids back
    red = (clips[1][:, 0] * 0.229 + 0.485) * 255
    assert frame_ids(red.numpy()).tolist() == segment_indices(NUM_FRAMES, 8, "val").tolist()


@pytest.mark.parametrize("frames", [(4, 8, 16), (4, 16)])
def test_dataloader_streams_share_one_crop(static_root, frames):
    ds = VideoListDataset(static_root / "train.txt", static_root, FLIP_SPEC, frames, train=True, crop_size=24, resize=28)
    torch.manual_seed(0)
    seen = []
    for _ in range(2):  # two epochs
        for clips, labels in DataLoader(ds, batch_size=2, shuffle=False, num_workers=0):
            assert len(clips) == len(frames) and labels.shape == (2,)
            for T, clip in zip(frames, clips):
                assert clip.shape == (2, T, 3, 24, 24) and clip.dtype == torch.float32
            for b in range(2):
                ref = clips[0][b, 0]
                for clip in clips:  # static video + one shared crop => identical frames everywhere
                    assert torch.equal(clip[b], ref.expand_as(clip[b]))
                seen.append(ref.flatten()[::53])
    assert len({tuple(s.tolist()) for s in seen}) > 4, "crops differ across samples and epochs"


def _train_ids(ds, seed, workers):
    torch.manual_seed(seed)
    out = []
    for clips, _ in DataLoader(ds, batch_size=1, num_workers=workers):
        out.append([red_ids(c[0]).tolist() for c in clips])
    return out


def test_train_sampling_seeded_distinct_and_in_segments(tmp_path, media):
    for i in range(4):
        shutil.copy(media["video"], tmp_path / f"v{i}.mp4")
    (tmp_path / "classes.txt").write_text("a\n")
    write_list_file(tmp_path / "train.txt", [VideoRecord(f"v{i}.mp4", NUM_FRAMES, 0) for i in range(4)])
    ds = VideoListDataset(tmp_path / "train.txt", tmp_path, "synthetic", (4, 8), train=True, crop_size=24, resize=28)
    a, b = _train_ids(ds, 0, workers=2), _train_ids(ds, 0, workers=2)
    assert a == b, "torch.manual_seed + DataLoader workers give reproducible frame draws"
    assert len({str(s) for s in a}) > 1, "samples (same video, different workers/indices) draw differently"
    assert a != _train_ids(ds, 1, workers=2), "another seed draws other frames"
    epoch1 = _train_ids(ds, 3, workers=0)
    torch.manual_seed(3)
    first, second = [], []
    for store in (first, second):
        for clips, _ in DataLoader(ds, batch_size=1, num_workers=0):
            store.append([red_ids(c[0]).tolist() for c in clips])
    assert first == epoch1 and first != second, "the next epoch draws new frames"
    for sample in a:
        for T, ids in zip((4, 8), sample):
            tick = NUM_FRAMES / T
            assert all(math.floor(i * tick) <= j < (i + 1) * tick for i, j in enumerate(ids))


def test_indices_clamped_to_decodable_count(tmp_path, media):
    shutil.copy(media["video"], tmp_path / "v.mp4")
    shutil.copy(media["truncated"], tmp_path / "t.mp4")
    (tmp_path / "classes.txt").write_text("a\n")
    # the list over-states both videos' frame counts (e.g. decord-probed or stale)
    write_list_file(tmp_path / "val.txt", [VideoRecord("v.mp4", 500, 0), VideoRecord("t.mp4", NUM_FRAMES, 0)])
    ds = VideoListDataset(tmp_path / "val.txt", tmp_path, "synthetic", (4, 16), train=False, crop_size=24, resize=28)
    clips, _ = ds[0]
    assert red_ids(clips[1]).tolist() == segment_indices(NUM_FRAMES, 16, "val").tolist()
    clips, _ = ds[1]
    assert clips[1].shape == (16, 3, 24, 24) and torch.isfinite(clips[1]).all()


def test_corrupt_and_missing_videos_raise_or_skip(tmp_path, media, caplog):
    shutil.copy(media["video"], tmp_path / "good.mp4")
    shutil.copy(media["corrupt"], tmp_path / "bad.mp4")
    (tmp_path / "classes.txt").write_text("a\nb\nc\n")
    write_list_file(tmp_path / "l.txt", [VideoRecord("good.mp4", NUM_FRAMES, 0), VideoRecord("bad.mp4", 24, 1),
                                         VideoRecord("gone.mp4", 24, 2)])
    kw = dict(frames=(4,), crop_size=24, resize=28)
    strict = VideoListDataset(tmp_path / "l.txt", tmp_path, "synthetic", train=False, **kw)
    with pytest.raises(VideoReadError, match="bad.mp4"):
        strict[1]
    with pytest.raises(VideoReadError, match="gone.mp4.*not found"):
        strict[2]
    lenient = VideoListDataset(tmp_path / "l.txt", tmp_path, "synthetic", train=True, **kw)
    assert lenient.on_error == "skip" and strict.on_error == "raise"
    with caplog.at_level(logging.WARNING, logger="ffn_core.data.datasets"):
        for _ in range(2):
            assert lenient[1][1] == 0 and lenient[2][1] == 0, "the next readable sample (wrapping) is used"
    assert lenient.bad_videos == {str(tmp_path / "bad.mp4"), str(tmp_path / "gone.mp4")}
    warnings = [r for r in caplog.records if r.name == "ffn_core.data.datasets"]
    assert len(warnings) == 2, "one warning per bad file"


@pytest.mark.parametrize("frames", FRAME_SETS)
def test_cache_videos_same_samples_and_reads_from_memory(tmp_path, media, frames):
    for i in range(3):
        shutil.copy(media["video"], tmp_path / f"v{i}.mp4")
    shutil.copy(media["truncated"], tmp_path / "t.mp4")
    (tmp_path / "classes.txt").write_text("a\nb\n")
    records = [VideoRecord(f"v{i}.mp4", NUM_FRAMES, i % 2) for i in range(3)] + [VideoRecord("t.mp4", NUM_FRAMES, 1)]
    write_list_file(tmp_path / "l.txt", records)
    kw = dict(crop_size=24, resize=28)
    clear_video_cache()
    try:
        for train in (True, False):
            plain = VideoListDataset(tmp_path / "l.txt", tmp_path, "synthetic", frames, train=train, **kw)
            cached = VideoListDataset(tmp_path / "l.txt", tmp_path, "synthetic", frames, train=train,
                                      cache_videos=True, **kw)
            for i in range(len(records)):
                torch.manual_seed(i)
                a = plain[i]
                torch.manual_seed(i)
                b = cached[i]
                assert a[1] == b[1] and all(torch.equal(x, y) for x, y in zip(a[0], b[0]))
        for i in range(len(records)):
            (tmp_path / records[i].path).unlink()
        again = VideoListDataset(tmp_path / "l.txt", tmp_path, "synthetic", frames, train=False,
                                 cache_videos=True, **kw)
        assert [c.shape[0] for c in again[3][0]] == list(frames), "served from the cache, files gone"
        with pytest.raises(VideoReadError, match="v0.mp4"):
            plain[0]
    finally:
        clear_video_cache()


@pytest.mark.parametrize("frames", FRAME_SETS)
def test_persisted_video_cache_is_mapped_by_a_later_process(tmp_path, media, frames, monkeypatch, caplog):
    """persist_video_cache: the decoded list is written once under <root>/.decoded/; after the process
    cache is gone (a new process), the same samples come from that file without a single decode; a
    changed video changes the key (decoded afresh); an unwritable cache dir only logs a warning."""
    import ffn_core.data.datasets as datasets

    for i in range(3):
        shutil.copy(media["video"], tmp_path / f"v{i}.mp4")
    shutil.copy(media["corrupt"], tmp_path / "bad.mp4")
    (tmp_path / "classes.txt").write_text("a\nb\n")
    records = [VideoRecord(f"v{i}.mp4", NUM_FRAMES, i % 2) for i in range(3)] + [VideoRecord("bad.mp4", 24, 1)]
    write_list_file(tmp_path / "l.txt", records)
    kw = dict(crop_size=24, resize=28, cache_videos=True, persist_video_cache=True)
    clear_video_cache()
    try:
        first = VideoListDataset(tmp_path / "l.txt", tmp_path, "synthetic", frames, train=False, **kw)
        expected = [first[i] for i in range(3)]
        written = sorted((tmp_path / ".decoded").glob("l-*.json"))
        assert len(written) == 1 and written[0].with_suffix(".npy").is_file()
        assert not list((tmp_path / ".decoded").glob(".*tmp*")), "no temporary file left behind"
        clear_video_cache()
        real_open = datasets.open_reader
        monkeypatch.setattr(datasets, "open_reader", lambda *a, **k: pytest.fail("decoded although persisted"))
        again = VideoListDataset(tmp_path / "l.txt", tmp_path, "synthetic", frames, train=False, **kw)
        for i in range(3):
            assert again[i][1] == expected[i][1] and all(torch.equal(a, b) for a, b in zip(again[i][0], expected[i][0]))
        monkeypatch.setattr(datasets, "open_reader", real_open)
        with pytest.raises(VideoReadError, match="bad.mp4"):  # not in the file: the normal path reports it
            again[3]
        clear_video_cache()
        os.utime(tmp_path / "v1.mp4", ns=(1, 1))
        VideoListDataset(tmp_path / "l.txt", tmp_path, "synthetic", frames, train=False, **kw)
        assert len(list((tmp_path / ".decoded").glob("l-*.json"))) == 2, "a changed video: a new key"
        clear_video_cache()
        shutil.rmtree(tmp_path / ".decoded")
        (tmp_path / ".decoded").write_text("not a folder")
        with caplog.at_level(logging.WARNING, logger="ffn_core.data.datasets"):
            ds = VideoListDataset(tmp_path / "l.txt", tmp_path, "synthetic", frames, train=False, **kw)
        assert ds[0][1] == expected[0][1] and "could not persist" in caplog.text
    finally:
        clear_video_cache()


def test_cache_videos_keeps_the_corrupt_video_policy(tmp_path, media):
    shutil.copy(media["video"], tmp_path / "good.mp4")
    shutil.copy(media["corrupt"], tmp_path / "bad.mp4")
    (tmp_path / "classes.txt").write_text("a\nb\n")
    write_list_file(tmp_path / "l.txt", [VideoRecord("good.mp4", NUM_FRAMES, 0), VideoRecord("bad.mp4", 24, 1)])
    kw = dict(frames=(4,), crop_size=24, resize=28, cache_videos=True)
    clear_video_cache()
    try:
        strict = VideoListDataset(tmp_path / "l.txt", tmp_path, "synthetic", train=False, **kw)
        with pytest.raises(VideoReadError, match="bad.mp4"):
            strict[1]
        lenient = VideoListDataset(tmp_path / "l.txt", tmp_path, "synthetic", train=True, **kw)
        assert lenient[1][1] == 0 and lenient.bad_videos == {str(tmp_path / "bad.mp4")}
    finally:
        clear_video_cache()


def test_dataset_argument_errors(id_root, tmp_path):
    kw = dict(crop_size=24, resize=28)
    with pytest.raises(ValueError, match="eval only"):
        VideoListDataset(id_root / "val.txt", id_root, "synthetic", (4,), train=True, num_clips=2, **kw)
    with pytest.raises(ValueError, match="on_error"):
        VideoListDataset(id_root / "val.txt", id_root, "synthetic", (4,), train=False, on_error="ignore", **kw)
    with pytest.raises(ValueError, match=r"val\.txt:1: label 2 >= num_classes=2"):
        (id_root / "classes.txt").write_text("a\nb\n")
        VideoListDataset(id_root / "val.txt", id_root, "synthetic", (4,), train=False, **kw)
    (id_root / "classes.txt").unlink()
    with pytest.raises(FileNotFoundError, match="classes.txt"):
        VideoListDataset(id_root / "val.txt", id_root, "synthetic", (4,), train=False, **kw)


def test_build_dataset_from_config(id_root, static_root):
    cfg = Config(data_root=str(id_root), dataset="synthetic", frames=(4, 8), crop_size=24, num_clips=2, test_crops=3)
    val = build_dataset(cfg, "val")
    assert val.num_views == 6 and val.frames == (4, 8) and val.on_error == "skip"  # cfg.on_bad_sample
    assert val.transform.resize == cfg.test_resize == 27
    assert build_dataset(cfg, "val", frames=[16]).frames == (16,)
    with pytest.raises(FileNotFoundError, match=r"train\.txt.*ffn_core synth.*ffn_core prepare"):
        build_dataset(cfg, "train")
    train = build_dataset(cfg.replace(data_root=str(static_root)), "train")
    assert train.train and train.num_views == 1 and train.on_error == "skip"
    with pytest.raises(ValueError, match="split"):
        build_dataset(cfg, "test")
