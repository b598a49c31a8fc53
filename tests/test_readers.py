"""Readers: exact decode on both video backends, JPEG folders, union decode, errors naming files."""
import pickle

import numpy as np
import pytest

from conftest import NUM_FRAMES, frame_ids, write_frame_folder
from ffn_core.data.readers import (
    DecordReader,
    FrameFolderReader,
    PyAVReader,
    VideoReadError,
    open_reader,
    probe_num_frames,
)
from ffn_core.data.sampling import multi_frequency_indices, union_indices

FRAME_SETS = [(4, 8, 16), (4, 16), (4, 8, 12, 16)]
VIDEO_READERS = {"decord": DecordReader, "pyav": PyAVReader}


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_video_backends_decode_exact_frames(media, backend):
    with VIDEO_READERS[backend](media["video"]) as r:
        assert r.num_frames() == NUM_FRAMES
        all_frames = r.read(list(range(NUM_FRAMES)))
        assert all_frames.dtype == np.uint8 and all_frames.shape == media["frames"].shape
        np.testing.assert_array_equal(all_frames, media["frames"])  # lossless fixture: bit-exact
        order = [7, 2, 2, 23, 0, 7]  # unsorted, with duplicates: returned in the order asked
        np.testing.assert_array_equal(r.read(order), media["frames"][order])
        np.testing.assert_array_equal(r.read([5]), media["frames"][[5]])  # repeated reads work


def test_decord_and_pyav_agree(media):
    idx = [0, 3, 3, 11, 17, 23]
    with DecordReader(media["video"]) as d, PyAVReader(media["video"]) as p:
        np.testing.assert_array_equal(d.read(idx), p.read(idx))


def test_frame_folder_reader(media):
    with FrameFolderReader(media["folder"], "{:05d}.jpg", start_index=1) as r:
        assert r.num_frames() == NUM_FRAMES
        out = r.read([9, 0, 23, 9])
    assert out.shape == (4, 32, 40, 3) and out.dtype == np.uint8
    assert frame_ids(out[..., 0]).tolist() == [9, 0, 23, 9]
    assert np.abs(out.astype(int) - media["frames"][[9, 0, 23, 9]]).max() <= 8  # JPEG q95


def test_frame_folder_template_and_start_index(tmp_path, media):
    folder = write_frame_folder(tmp_path / "v", media["frames"][:5], template="img_{:06d}.jpg", start_index=0)
    (folder / "notes.txt").write_text("not a frame")
    with open_reader(folder, "frames", template="img_{:06d}.jpg", start_index=0) as r:
        assert r.num_frames() == 5
        assert frame_ids(r.read([4, 0])[..., 0]).tolist() == [4, 0]


@pytest.mark.parametrize("frames", FRAME_SETS)
@pytest.mark.parametrize("source", ["decord", "pyav", "frames"])
def test_union_decode_equals_per_set_decodes(media, frames, source):
    sets = multi_frequency_indices(NUM_FRAMES, frames, "train", rng=np.random.default_rng(7))
    union, pos = union_indices(sets)
    kind = "frames" if source == "frames" else "video"
    path = media["folder"] if kind == "frames" else media["video"]
    with open_reader(path, kind, backend="pyav" if source == "pyav" else "decord") as r:
        decoded = r.read(union)
        for s, p in zip(sets, pos):
            np.testing.assert_array_equal(decoded[p], r.read(s))


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_missing_video_names_file(media, backend):
    with pytest.raises(VideoReadError, match="missing.mp4.*not found"):
        open_reader(media["missing"], "video", backend=backend)


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_corrupt_video_names_file(media, backend):
    with pytest.raises(VideoReadError, match="corrupt.mp4") as info:
        open_reader(media["corrupt"], "video", backend=backend)
    assert info.value.path == str(media["corrupt"]) and info.value.reason


def test_missing_and_corrupt_jpeg_name_the_file(tmp_path, media):
    folder = write_frame_folder(tmp_path / "v", media["frames"][:6])
    (folder / "00003.jpg").unlink()
    (folder / "00005.jpg").write_bytes(b"not a jpeg at all")
    with FrameFolderReader(folder) as r:
        assert r.num_frames() == 5  # files matching the template
        assert r.read([0, 1]).shape[0] == 2
        with pytest.raises(VideoReadError, match=r"00003\.jpg.*missing"):
            r.read([2])
        with pytest.raises(VideoReadError, match=r"00005\.jpg.*cannot decode"):
            r.read([4])
    with pytest.raises(VideoReadError, match="no_such_folder.*not found"):
        FrameFolderReader(tmp_path / "no_such_folder")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(VideoReadError, match="empty.*no frames"):
        FrameFolderReader(empty)


def test_truncated_video_falls_back_and_clamps(media):
    """decord opens the damaged file but over-reports its frames; PyAV takes over and decodes the prefix."""
    stated = NUM_FRAMES
    for backend in ("decord", "pyav"):
        n = probe_num_frames(media["truncated"], "video", backend=backend)
        assert 0 < n < stated
    with open_reader(media["truncated"], "video", backend="decord") as r:
        assert isinstance(r, DecordReader) and r.num_frames() == stated, "decord over-reports this file"
        out = r.read([0, r.num_frames() - 1])  # past the decodable end: clamped to the last frame
        assert out.shape == (2, 32, 40, 3)
        assert r._fallback is not None, "get_batch failed near the end: PyAV took over"
        assert r.num_frames() == n, "after one read the reader knows the decodable count"
        np.testing.assert_array_equal(r.read([n - 1]), out[1:])


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_probe_num_frames(media, backend):
    assert probe_num_frames(media["video"], "video", backend=backend) == NUM_FRAMES
    assert probe_num_frames(media["folder"], "frames") == NUM_FRAMES


def test_out_of_range_and_bad_indices(media):
    with open_reader(media["video"], "video") as r:
        with pytest.raises(IndexError, match=f"ids.mp4.*{NUM_FRAMES}.*out of range"):
            r.read([NUM_FRAMES])
        with pytest.raises(IndexError, match="out of range"):
            r.read([-1])
        with pytest.raises(ValueError, match="non-empty"):
            r.read([])


def test_bad_kind_backend_template():
    with pytest.raises(ValueError, match="kind"):
        open_reader("x", "audio")
    with pytest.raises(ValueError, match="backend"):
        open_reader("x", "video", backend="opencv")
    with pytest.raises(ValueError, match="template"):
        FrameFolderReader(".", template="frame.jpg")


def test_video_read_error_pickles_for_dataloader_workers():
    e = pickle.loads(pickle.dumps(VideoReadError("/data/a b.mp4", "decord cannot open it")))
    assert isinstance(e, VideoReadError) and e.path == "/data/a b.mp4"
    assert str(e) == "/data/a b.mp4: decord cannot open it"
    assert str(VideoReadError("only a message")) == "only a message"  # DataLoader re-raise form
