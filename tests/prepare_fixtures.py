"""Miniature copies of the five official releases, in their own formats, for tests/test_prepare.py.

Each ``make_<dataset>(root)`` writes a few tiny videos (PyAV: 32x32, 8-24 frames; SSv1 as JPEG
folders) and the official annotation files, *including* the defects a real release or download has:
malformed lines, unknown labels, duplicates, missing and corrupt videos (random bytes with the
right extension), truncated frame folders. It returns a :class:`Fixture` stating exactly which
videos must be listed with which frame count and label, and which problem must be reported where
(``<annotation file name>:<line>`` or the video's file name). Class orders are deliberately not
alphabetical where the release defines its own order, so a sorted-labels bug would show.
"""
from __future__ import annotations

import json
import random
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SIZE = 32


@dataclass
class Fixture:
    root: Path
    classes: list
    prefix: str                                   # list-path prefix without extraction
    lists: dict = field(default_factory=dict)     # list name -> {media rel path: (frames, label)}
    problems: dict = field(default_factory=dict)  # kind -> set of "file:line" or video file names
    aliases: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def expect(self, split: str, rel: str, frames: int, label: int) -> None:
        self.lists.setdefault(split, {})[rel] = (frames, label)

    def problem(self, kind: str, ident: str) -> None:
        self.problems.setdefault(kind, set()).add(ident)


class Lines:
    """An annotation text file written line by line; ``add`` returns the 1-based line number."""

    def __init__(self, path: Path, header: str | None = None, newline: str = "\n"):
        self.path, self.lines, self.newline = Path(path), [], newline
        if header is not None:
            self.add(header)

    def add(self, text: str) -> str:
        self.lines.append(text)
        return f"{self.path.name}:{len(self.lines)}"

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_bytes("".join(t + self.newline for t in self.lines).encode())


def _frame(i: int, seed: int) -> np.ndarray:
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    img = np.stack([(x * 8 + i * 11 + seed * 37) % 256, (y * 8 + i * 5) % 256,
                    np.full_like(x, (i * 23 + seed * 71) % 256)], axis=-1)
    return img.astype(np.uint8)


_CODECS = {".webm": ("libvpx", "yuv420p"), ".avi": ("mpeg4", "yuv420p"), ".mp4": ("libx264", "yuv420p")}


def write_video(path: Path, frames: int, seed: int = 0) -> None:
    """A ``frames``-frame 32x32 video; codec by extension: .webm VP8, .avi MPEG-4 part 2, .mp4 H.264."""
    write_videos([(path, frames, seed)])


def write_videos(specs: list) -> None:
    """``write_video`` for each ``(path, frames, seed)``.

    Once decord is imported, its bundled FFmpeg breaks PyAV's libvpx encoder in this process
    (decoding still works): the WebM files are then encoded in one fresh interpreter instead,
    with the same codec and content.
    """
    import av

    retry = []
    for path, frames, seed in specs:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            _encode(av, path, frames, seed)
        except av.error.ArgumentError:
            if path.suffix != ".webm":
                raise
            retry.append([str(path), frames, seed])
    if retry:
        subprocess.run([sys.executable, __file__, json.dumps(retry)], check=True)


def _encode(av, path: Path, frames: int, seed: int) -> None:
    codec, pix = _CODECS[path.suffix]
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=12)
        s.width = s.height = SIZE
        s.pix_fmt = pix
        for i in range(frames):
            for pkt in s.encode(av.VideoFrame.from_ndarray(_frame(i, seed), format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


def write_corrupt(path: Path, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(random.Random(seed).randbytes(3000))


def write_jpegs(folder: Path, indices, seed: int = 0) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in indices:
        Image.fromarray(_frame(i, seed)).save(folder / f"{i:05d}.jpg", quality=90)


# ---------------------------------------------------------------------------------------------
def make_ssv1(root: Path) -> Fixture:
    classes = ["Tearing something into two pieces", "Holding something", "Pushing something from left to right"]
    fx = Fixture(Path(root), classes, "frames")
    frames_dir = fx.root / "20bn-something-something-v1"
    labels = Lines(fx.root / "something-something-v1-labels.csv")
    for c in classes:
        labels.add(c)
    labels.write()
    train = Lines(fx.root / "something-something-v1-train.csv")
    for vid, n, cls in (("1", 12, 1), ("2", 20, 0), ("3", 8, 2), ("4", 16, 1)):
        write_jpegs(frames_dir / vid, range(1, n + 1), seed=int(vid))
        train.add(f"{vid};{classes[cls]}")
        fx.expect("train", vid, n, cls)
    fx.problem("malformed", train.add("5 Holding something"))
    fx.problem("unknown_labels", train.add("6;Juggling something"))
    fx.problem("missing", train.add("7;Holding something"))
    write_jpegs(frames_dir / "8", range(2, 6))           # no 00001.jpg
    fx.problem("undecodable", "8")
    train.add("8;Holding something")
    fx.problem("duplicates", train.add("1;Tearing something into two pieces"))
    write_corrupt(frames_dir / "12" / "00001.jpg", seed=3)  # random bytes named .jpg
    for i in range(2, 10):
        write_jpegs(frames_dir / "12", [i])
    fx.problem("undecodable", "12")
    train.add("12;Tearing something into two pieces")
    train.write()
    val = Lines(fx.root / "something-something-v1-validation.csv")
    for vid, n, cls in (("9", 18, 2), ("10", 10, 0)):
        write_jpegs(frames_dir / vid, range(1, n + 1), seed=int(vid))
        val.add(f"{vid};{classes[cls]}")
        fx.expect("val", vid, n, cls)
    write_jpegs(frames_dir / "11", [1, 2, 3, 4, 5, 7])   # gap after 5
    val.add(f"11;{classes[1]}")
    fx.expect("val", "11", 5, 1)
    fx.problem("truncated", "11")
    val.write()
    return fx


def make_ssv2(root: Path) -> Fixture:
    classes = ["Putting something on something", "Holding something", "Pushing something from left to right"]
    fx = Fixture(Path(root), classes, "videos")
    vdir = fx.root / "20bn-something-something-v2"
    (fx.root / "something-something-v2-labels.json").write_text(
        json.dumps({c: str(i) for i, c in sorted(enumerate(classes), key=lambda t: t[1])}, indent=1))
    templates = ["Putting [something] on [something]", "Holding [something]",
                 "Pushing [something] from left to right"]

    def entry(vid, cls=None, template=None):
        t = template if template is not None else templates[cls]
        return {"id": vid, "label": t.replace("[something]", "a cup"), "template": t, "placeholders": ["a cup"]}

    def write_json(name: str, items: list, marks: list) -> None:
        # one entry per line after "[": entry i is on line i + 2
        (fx.root / name).write_text("[\n" + ",\n".join(json.dumps(it) for it in items) + "\n]\n")
        for i, (vid, kind) in enumerate(marks):
            if kind:
                fx.problem(kind, f"{vid}.webm" if kind == "undecodable" else f"{name}:{i + 2}")

    train_videos, val_videos = (("101", 14, 0), ("102", 24, 1), ("107", 16, 2)), (("201", 10, 2), ("202", 16, 0))
    write_videos([(vdir / f"{vid}.webm", n, int(vid)) for vid, n, _ in train_videos + val_videos])
    items, marks = [], []
    for vid, n, cls in train_videos:
        items.append(entry(vid, cls)); marks.append((vid, None))
        fx.expect("train", f"{vid}.webm", n, cls)
    items.append(entry("103", template="Juggling [something]")); marks.append(("103", "unknown_labels"))
    items.append({"id": "104", "label": "x"}); marks.append(("104", "malformed"))
    items.append(entry("105", 1)); marks.append(("105", "missing"))
    write_corrupt(vdir / "106.webm", seed=6)
    items.append(entry("106", 1)); marks.append(("106", "undecodable"))
    write_json("something-something-v2-train.json", items, marks)
    items, marks = [], []
    for vid, n, cls in val_videos:
        items.append(entry(vid, cls)); marks.append((vid, None))
        fx.expect("val", f"{vid}.webm", n, cls)
    write_json("something-something-v2-validation.json", items, marks)
    return fx


def make_k400(root: Path) -> Fixture:
    classes = ["abseiling", "air drumming", "zumba"]  # sorted, as the K400 convention is
    fx = Fixture(Path(root), classes, "videos")
    header = "label,youtube_id,time_start,time_end,split"
    train = Lines(fx.root / "annotations" / "train.csv", header)
    val = Lines(fx.root / "annotations" / "val.csv", header)
    rows = [  # (file, split, label, ytid, start, end, frames, folder-or-flat)
        (train, "train", "abseiling", "aaaaaaaaaaa", 0, 10, 16, True),
        (train, "train", "air drumming", "bbb-bbb_bbb", 5, 15, 20, True),
        (train, "train", "zumba", "ccccccccccc", 30, 40, 12, False),
        (val, "val", "abseiling", "eeeeeeeeeee", 2, 12, 18, True),
        (val, "val", "zumba", "fffffffffff", 0, 10, 8, False),
    ]
    for f, split, label, yid, s, e, n, in_folder in rows:
        name = f"{yid}_{s:06d}_{e:06d}.mp4"
        rel = f"{split}/{label}/{name}" if in_folder else f"{split}/{name}"
        write_video(fx.root / rel, n, seed=n)
        f.add(f"{label},{yid},{s},{e},{split}")
        fx.expect(split, rel, n, classes.index(label))
    fx.problem("malformed", train.add("zumba,ddddddddddd,abc,10,train"))
    fx.problem("malformed", train.add("zumba,ddddddddddd,0"))
    fx.problem("missing", train.add("abseiling,ggggggggggg,0,10,train"))
    write_corrupt(fx.root / "train" / "zumba" / "hhhhhhhhhhh_000001_000011.mp4", seed=1)
    train.add("zumba,hhhhhhhhhhh,1,11,train")
    fx.problem("undecodable", "hhhhhhhhhhh_000001_000011.mp4")
    fx.problem("unknown_labels", val.add("juggling balls,iiiiiiiiiii,0,10,val"))
    write_video(fx.root / "val" / "juggling balls" / "iiiiiiiiiii_000000_000010.mp4", 10)
    train.write(), val.write()
    return fx


def make_hmdb51(root: Path) -> Fixture:
    classes = ["brush_hair", "cartwheel", "chew"]
    fx = Fixture(Path(root), classes, "videos", aliases={"train": "train_split1", "val": "val_split1"})
    sdir, vdir = fx.root / "testTrainMulti_7030_splits", fx.root / "hmdb51_org"
    videos = {c: [f"{c}_clip_{j}_u_nm_np1_fr_med_{j}.avi" for j in range(3)] for c in classes}
    lengths = {0: 16, 1: 10, 2: 20}
    roles = {1: ("1", "2", "0"), 2: ("2", "1", "1"), 3: ("0", "1", "2")}  # id of video j in split k
    for ci, c in enumerate(classes):
        for j, name in enumerate(videos[c]):
            write_video(vdir / c / name, lengths[j] + ci, seed=ci * 3 + j)
        for k in (1, 2, 3):
            if c == "chew" and k == 3:
                fx.problem("malformed", "chew_test_split3.txt")  # the whole file is missing
                continue
            f = Lines(sdir / f"{c}_test_split{k}.txt")
            for j, name in enumerate(videos[c]):
                role = roles[k][j]
                f.add(f"{name} {role} ")  # the official files end lines with a space
                if role != "0":
                    fx.expect(f"{'train' if role == '1' else 'val'}_split{k}", f"{c}/{name}", lengths[j] + ci, ci)
            if c == "cartwheel" and k == 1:
                fx.problem("malformed", f.add("cartwheel_bad_line.avi 7"))
                fx.problem("missing", f.add("cartwheel_not_downloaded_0.avi 1"))
                f.add("cartwheel_corrupt_0.avi 2")
                write_corrupt(vdir / c / "cartwheel_corrupt_0.avi", seed=2)
                fx.problem("undecodable", "cartwheel_corrupt_0.avi")
            f.write()
    return fx


def make_ucf101(root: Path) -> Fixture:
    classes = ["ApplyEyeMakeup", "HandstandPushups", "YoYo"]
    fx = Fixture(Path(root), classes, "videos", aliases={"train": "train_split1", "val": "val_split1"})
    ldir, vdir = fx.root / "ucfTrainTestlist", fx.root / "UCF-101"
    ind = Lines(ldir / "classInd.txt", newline="\r\n")  # the official lists use CRLF
    for i, c in enumerate(classes, 1):
        ind.add(f"{i} {c}")
    ind.write()
    stems = {"HandstandPushups": "HandStandPushups"}  # the release's own spelling in file names
    rels = {}
    for ci, c in enumerate(classes):
        for g in (1, 2):
            rel = f"{c}/v_{stems.get(c, c)}_g0{g}_c01.avi"
            write_video(vdir / rel, 12 + 4 * g + ci, seed=ci * 2 + g)
            rels[(ci, g)] = rel
    for k in (1, 2, 3):
        train = Lines(ldir / f"trainlist0{k}.txt", newline="\r\n")
        test = Lines(ldir / f"testlist0{k}.txt", newline="\r\n")
        train_group = 1 if k != 2 else 2
        for ci, c in enumerate(classes):
            for g in (1, 2):
                rel, n = rels[(ci, g)], 12 + 4 * g + ci
                if g == train_group:
                    train.add(f"{rel} {ci + 1}")
                    fx.expect(f"train_split{k}", rel, n, ci)
                else:
                    test.add(rel)
                    fx.expect(f"val_split{k}", rel, n, ci)
        if k == 1:
            fx.problem("unknown_labels", train.add("YoYo/v_YoYo_g03_c01.avi 1"))  # index says ApplyEyeMakeup
            fx.problem("unknown_labels", train.add("YoYo/v_YoYo_g04_c01.avi 9"))  # index out of range
            fx.problem("unknown_labels", train.add("Juggling/v_Juggling_g01_c01.avi 2"))
            fx.problem("malformed", train.add("YoYo/v_YoYo_g05_c01.avi"))        # no index
            fx.problem("missing", test.add("YoYo/v_YoYo_g06_c01.avi"))
            write_corrupt(vdir / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g07_c01.avi", seed=7)
            test.add("ApplyEyeMakeup/v_ApplyEyeMakeup_g07_c01.avi")
            fx.problem("undecodable", "v_ApplyEyeMakeup_g07_c01.avi")
        train.write(), test.write()
    return fx


BUILDERS = {"ssv1": make_ssv1, "ssv2": make_ssv2, "k400": make_k400, "hmdb51": make_hmdb51, "ucf101": make_ucf101}


if __name__ == "__main__":  # used by write_videos: python prepare_fixtures.py '[[path, frames, seed], ...]'
    import av as _av

    for _path, _frames, _seed in json.loads(sys.argv[1]):
        _encode(_av, Path(_path), int(_frames), int(_seed))
