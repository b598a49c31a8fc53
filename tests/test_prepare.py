"""``python -m ffn_core prepare``: each official format (miniature copies, tests/prepare_fixtures.py)
-> exact lists (paths, decoded frame counts, labels), every defect reported where it is, lists that
load into (B, T, 3, H, W) batches, and resumable frame extraction."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path, PurePosixPath

import pytest
import torch
from PIL import Image

import prepare_fixtures as pf
from ffn_core.data import VideoListDataset, read_list_file
from ffn_core.data.prepare import PrepareError, get_preparer, main, prepare, prepared_spec, read_description
from ffn_core.data.prepare._media import DONE_MARKER, count_frame_folder, resized_shape
from ffn_core.data.prepare._report import PROBLEM_KINDS
from ffn_core.data.prepare.ssv2 import iter_json_array
from ffn_core.data.prepare._common import Problems

DATASETS = sorted(pf.BUILDERS)
MIN_FRAMES = 16


def _ident(kind: str, item: dict) -> str:
    if kind == "undecodable":
        return Path(item["source"]).name
    if kind == "truncated":
        return PurePosixPath(item["path"]).name
    return Path(item["where"]).name  # "<annotation file>:<line>" (or the file, when it is missing)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """``prepared(ds)`` -> (fixture, out): the release built and prepared once per module."""
    cache = {}

    def get(ds: str):
        if ds not in cache:
            base = tmp_path_factory.mktemp(ds)
            fx = pf.BUILDERS[ds](base / "release")
            out = base / "out"
            assert main([ds, "--root", str(fx.root), "--out", str(out), "--workers", "1", "--quiet"]) == 0
            cache[ds] = (fx, out)
        return cache[ds]

    return get


def _read(path: Path) -> dict:
    return {r.path: (r.num_frames, r.label) for r in read_list_file(path)}


@pytest.mark.parametrize("ds", DATASETS)
def test_lists_are_exact(prepared, ds):
    fx, out = prepared(ds)
    assert (out / "classes.txt").read_text().splitlines() == fx.classes
    for name, expected in fx.lists.items():
        want = {f"{fx.prefix}/{rel}": v for rel, v in expected.items()}
        assert _read(out / f"{name}.txt") == want, name
    for alias, target in fx.aliases.items():
        assert (out / f"{alias}.txt").read_text() == (out / f"{target}.txt").read_text()
    for name in get_preparer(ds).list_names:
        assert (out / f"{name}.txt").is_file()
    for path in _read(out / "train.txt"):  # every listed path resolves from the data root
        assert (out / path).exists(), path


@pytest.mark.parametrize("ds", DATASETS)
def test_every_left_out_line_names_its_video(prepared, ds):
    """A line left out for its label names the video it would have listed (json and markdown)."""
    fx, out = prepared(ds)
    report = json.loads((out / "prepare_report.json").read_text())
    md = (out / "prepare_report.md").read_text()
    items = report["problems"]["unknown_labels"]
    assert len(items) == len(fx.problems.get("unknown_labels", ()))
    for item in items:
        line = next(ln for ln in md.splitlines() if f"`{item['where']}`" in ln)
        assert item["video"] and item["video"] in line and "left out" in line, (item, line)
        text = Path(item["where"].rsplit(":", 1)[0]).read_text().splitlines()[int(item["where"].rsplit(":", 1)[1]) - 1]
        vid = re.sub(r"_\d{6}_\d{6}$", "", PurePosixPath(item["video"]).name.split(".")[0])  # K400: <ytid>_<t0>_<t1>
        assert vid in text  # the id really is on that line


@pytest.mark.parametrize("ds", DATASETS)
def test_every_defect_is_reported_where_it_is(prepared, ds):
    fx, out = prepared(ds)
    report = json.loads((out / "prepare_report.json").read_text())
    md = (out / "prepare_report.md").read_text()
    assert report["clean"] is False and report["dataset"] == ds
    for kind in PROBLEM_KINDS:
        if kind == "short":
            continue
        got = {_ident(kind, item) for item in report["problems"][kind]}
        assert got == fx.problems.get(kind, set()), kind
        for item in report["problems"][kind]:
            assert (item.get("where") or item.get("path")) in md
    short = {(it["split"], it["path"]) for it in report["problems"]["short"]}
    assert short == {(split, f"{fx.prefix}/{rel}") for split, entries in fx.lists.items()
                     for rel, (n, _) in entries.items() if n < MIN_FRAMES}
    for split, row in report["splits"].items():
        assert row["listed"] == len(fx.lists.get(split, {})), split
    desc = read_description(out)
    assert desc["kind"] == ("frames" if ds == "ssv1" else "video")
    assert desc["num_classes"] == len(fx.classes) and desc["dataset"] == ds


def test_json_syntax_error_keeps_earlier_entries(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('[\n{"id": "1"},\n{"id": "2"},\n{"id": oops},\n{"id": "4"}\n]\n')
    problems = Problems()
    items = list(iter_json_array(path, problems, "train"))
    assert [(line, it["id"]) for line, it in items] == [(2, "1"), (3, "2")]
    assert [m["where"] for m in problems.malformed] == [f"{path}:4"]


def test_missing_release_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "something-something-v2-labels.json").write_text('{"Holding something": "0"}')
    assert main(["ssv2", "--root", str(tmp_path), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "20bn-something-something-v2" in err and "not found" in err
    with pytest.raises(PrepareError, match="--workers 0"):
        prepare("ssv2", tmp_path, workers=0)
    with pytest.raises(PrepareError, match="unknown dataset 'ssv3'"):
        prepare("ssv3", tmp_path)


def test_out_defaults_to_root_without_a_link(tmp_path):
    fx = pf.make_ucf101(tmp_path)
    prepare("ucf101", fx.root, workers=1, quiet=True)
    assert not (fx.root / "videos").exists()
    want = {f"UCF-101/{rel}": v for rel, v in fx.lists["val_split2"].items()}
    assert _read(fx.root / "val_split2.txt") == want


@pytest.mark.parametrize("backend", ["decord", "pyav"])
@pytest.mark.parametrize("ds", DATASETS)
def test_prepared_lists_load_as_batches(prepared, ds, backend):
    _, out = prepared(ds)
    spec = prepared_spec(out)
    frames = (2, 4)
    for split, train in (("train", True), ("val", False)):
        data = VideoListDataset(out / f"{split}.txt", out, spec, frames, train=train, crop_size=32, resize=32,
                                backend=backend, on_error="raise")
        clips, labels = next(iter(torch.utils.data.DataLoader(data, batch_size=2, shuffle=False)))
        assert [tuple(c.shape) for c in clips] == [(2, t, 3, 32, 32) for t in frames]
        assert labels.tolist() == [r.label for r in data.records[:2]]
        assert all(torch.isfinite(c).all() for c in clips)


def test_extract_frames_is_resumable(tmp_path):
    fx = pf.make_k400(tmp_path / "release")
    out = tmp_path / "out"
    args = ["k400", "--root", str(fx.root), "--out", str(out), "--extract-frames", "--short-side", "16",
            "--workers", "2", "--quiet"]
    assert main(args) == 0
    report = json.loads((out / "prepare_report.json").read_text())
    good = sum(len(v) for v in fx.lists.values())
    assert report["extraction"] == {**report["extraction"], "new": good, "reused": 0, "failed": 1}
    assert report["frames_extracted"] and report["kind"] == "frames"
    desc = read_description(out)
    assert (desc["kind"], desc["template"], desc["start_index"]) == ("frames", "{:05d}.jpg", 1)
    for split, entries in fx.lists.items():
        want = {f"frames/{PurePosixPath(rel).with_suffix('')}": v for rel, v in entries.items()}
        assert _read(out / f"{split}.txt") == want
    first = out / "frames" / "train" / "abseiling" / "aaaaaaaaaaa_000000_000010"
    assert sorted(p.name for p in first.glob("*.jpg")) == [f"{i:05d}.jpg" for i in range(1, 17)]
    with Image.open(first / "00001.jpg") as im:
        assert im.size == (16, 16)

    stamp = (first / "00003.jpg").stat().st_mtime_ns
    assert main(args) == 0
    again = json.loads((out / "prepare_report.json").read_text())["extraction"]
    assert (again["new"], again["reused"]) == (0, good)
    assert (first / "00003.jpg").stat().st_mtime_ns == stamp

    # an interrupted run: one folder lost its marker, one was never renamed into place
    (first / DONE_MARKER).unlink()
    second = out / "frames" / "train" / "air drumming" / "bbb-bbb_bbb_000005_000015"
    os.rename(second, second.parent / f".{second.name}.partial")
    (second.parent / f".{second.name}.partial" / "00002.jpg").write_bytes(b"half")
    assert main(args) == 0
    third = json.loads((out / "prepare_report.json").read_text())["extraction"]
    assert (third["new"], third["reused"]) == (2, good - 2)
    assert not (second.parent / f".{second.name}.partial").exists()
    assert count_frame_folder(str(second))[0] == 20

    data = VideoListDataset(out / "train.txt", out, prepared_spec(out), (4, 8), train=True, crop_size=16,
                            resize=16, on_error="raise")
    clips, label = data[1]
    assert [tuple(c.shape) for c in clips] == [(4, 3, 16, 16), (8, 3, 16, 16)]
    assert label == data.records[1].label


@pytest.mark.parametrize("w,h,side,want", [(32, 32, 16, (16, 16)), (340, 256, 256, (340, 256)),
                                           (640, 480, 256, (341, 256)), (480, 640, 256, (256, 341)),
                                           (50, 30, 0, (50, 30))])
def test_resized_shape_keeps_aspect(w, h, side, want):
    assert resized_shape(w, h, side) == want


def test_frame_folder_gap_keeps_the_frames_before_it(tmp_path):
    pf.write_jpegs(tmp_path / "v", [1, 2, 3, 5])
    n, notes = count_frame_folder(str(tmp_path / "v"))
    assert n == 3 and "frame 4 is missing" in notes[0]


def test_prepared_spec_overrides_storage_only(tmp_path):
    (tmp_path / "dataset.json").write_text(json.dumps(
        {"dataset": "k400", "kind": "frames", "template": "{:05d}.jpg", "start_index": 1, "num_classes": 3}))
    spec = prepared_spec(tmp_path)
    assert (spec.kind, spec.template, spec.num_classes, spec.flip) == ("frames", "{:05d}.jpg", 3, True)
    (tmp_path / "dataset.json").write_text('{"dataset": "k400"}')
    with pytest.raises(ValueError, match="dataset.json: expected an object with the keys"):
        prepared_spec(tmp_path)


@pytest.mark.parametrize("ds", ["ssv2", "k400"])
def test_build_dataset_reads_prepared_folder(prepared, ds):
    """The trainer's path: `dataset=<ds> data_root=<out>` honours dataset.json (ssv2 is registered as
    frame folders but prepared here as .webm videos)."""
    from ffn_core.config import load_config
    from ffn_core.data import build_dataset

    _, out = prepared(ds)
    cfg = load_config(dataset=ds, data_root=str(out), frames=[4, 8], crop_size=32, resize=32)
    data = build_dataset(cfg, "val")
    assert data.spec.kind == "video"
    clips, label = data[0]
    assert [c.shape for c in clips] == [(4, 3, 32, 32), (8, 3, 32, 32)]
    assert 0 <= label < data.num_classes
