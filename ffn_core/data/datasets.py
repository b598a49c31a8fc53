"""Dataset registry (:class:`DatasetSpec`) and the TSN list-file dataset (:class:`VideoListDataset`).

A list file has one line per video, ``<path> <num_frames> <label>``: ``path`` is relative to the
data root and may contain spaces (``num_frames`` and ``label`` are the last two whitespace
tokens); ``num_frames`` is the decodable count (:func:`~ffn_core.data.readers.probe_num_frames`).

A sample is ``(clips, label)``: ``clips`` holds one float32 tensor ``(T_k, 3, H, W)`` per frame
count in ``frames`` (ascending); in eval mode with ``V = num_clips * test_crops > 1`` views each is
``(V, T_k, 3, H, W)``. Frame indices of every stream are drawn independently (paper §3.1), decoded
once (sorted union) and transformed together, so every stream shares one crop/scale/flip.

Decoded-video cache (``cache_videos=True``, config key ``cache_videos``): every video of the list is
decoded once, all its frames at the stored resolution, into a process-wide uint8 cache that every
dataset of the process shares (train and every per-frame-count eval set); samples then index that
array instead of opening the file. It is filled eagerly in the building process, before any
DataLoader worker forks, so workers read it copy-on-write. Sampling, clamping, transforms and the
corrupt-video policy are unchanged (a video that fails to decode is simply not cached, and the
normal path reports it). Meant for small datasets: the synthetic ``cpu`` tier is 0.6 GB
(4,000 videos x 48 frames x 32 x 32 x 3); the size is logged.

Persisted (``persist_video_cache=True``, the default with ``cache_videos``): the decoded frames of a
list are also written once to ``<data_root>/.decoded/<list>-<key>.npy`` (every frame of every
readable video, flat uint8) with a JSON index beside it, and a later process - the next notebook of
the suite, the next ``train`` - maps that file instead of decoding again. The key is a sha256 of
the list file's bytes and of every listed video's size and modification time, so a regenerated or
edited dataset is decoded afresh; the index is written last (after an atomic rename of the array),
so a killed write leaves no file that would be read. A read-only data root only logs a note.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ffn_core.atomic import atomic_path, atomic_write_text
from ffn_core.config import parse_frames
from ffn_core.data.readers import KINDS, VideoReadError, open_reader
from ffn_core.data.sampling import multi_frequency_indices, union_indices
from ffn_core.data.transforms import build_transform

__all__ = [
    "DatasetSpec", "register_dataset", "get_dataset_spec", "list_datasets",
    "VideoRecord", "read_list_file", "write_list_file", "VideoListDataset", "build_dataset", "DataError",
    "read_bad_log", "IMAGENET_MEAN", "IMAGENET_STD",
]

log = logging.getLogger(__name__)

_DECODED: dict[str, np.ndarray] = {}  # path -> (N, H, W, 3) uint8, see "Decoded-video cache"


def clear_video_cache() -> None:
    """Drop every cached decoded video (``cache_videos``) of this process."""
    _DECODED.clear()


def video_cache_nbytes() -> int:
    """Bytes held by this process's decoded-video cache (``cache_videos``)."""
    return sum(a.nbytes for a in _DECODED.values())


PERSIST_DIR = ".decoded"  # under the data root: the persisted decoded-video cache (module docstring)


def _persist_key(list_file: Path, paths: Sequence[str]) -> str:
    """sha256 (16 hex) of the list's bytes and each listed video's size and mtime (missing: -1)."""
    import hashlib

    h = hashlib.sha256(list_file.read_bytes())
    for p in paths:
        try:
            st = os.stat(p)
            h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{p}\0-1\n".encode())
    return h.hexdigest()[:16]


def _load_persisted(index_file: Path) -> tuple[int, set]:
    """Map a persisted cache into ``_DECODED``: ``(videos added, paths that did not decode)``."""
    try:
        index = json.loads(index_file.read_text())
        flat = np.load(index_file.with_suffix(".npy"), mmap_mode="r")
    except (OSError, ValueError) as e:
        log.warning("cache_videos: ignoring %s (%s); decoding instead", index_file, e)
        return 0, set()
    added = 0
    for path, offset, shape in index["videos"]:
        if path not in _DECODED:
            _DECODED[path] = flat[offset:offset + int(np.prod(shape))].reshape(shape)
            added += 1
    return added, set(index.get("unreadable", ()))


def _write_persisted(index_file: Path, paths: Sequence[str]) -> None:
    """Write the decoded frames of ``paths`` (those in ``_DECODED``) as one flat array + index; the
    others are listed as unreadable (left to the normal path, which applies the corrupt-video policy)."""
    videos, offset = [], 0
    for p in paths:
        if p in _DECODED:
            videos.append([p, offset, list(_DECODED[p].shape)])
            offset += _DECODED[p].size
    try:
        with atomic_path(index_file.with_suffix(".npy")) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(offset,))
            for p, off, _ in videos:
                out[off:off + _DECODED[p].size] = _DECODED[p].reshape(-1)
            out.flush()
            del out
        atomic_write_text(index_file, json.dumps({"videos": videos, "unreadable": [p for p in paths if p not in _DECODED]}))
    except OSError as e:
        log.warning("cache_videos: could not persist the decoded videos to %s (%s); this process keeps them "
                    "in memory only", index_file.parent, e)


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class DatasetSpec:
    """How to read one dataset: storage ``kind`` (``"frames"`` folders or ``"video"`` files), the
    frame-file ``template`` and ``start_index`` (frames only), ``num_classes`` (``None``: one class
    name per line of ``<data_root>/classes.txt``), normalisation ``mean``/``std`` and whether
    horizontal ``flip`` is a valid augmentation (not on Something-Something or the synthetic
    benchmark, whose labels depend on left/right: paper Supp. A)."""

    name: str
    kind: str
    template: str
    num_classes: int | None
    mean: tuple
    std: tuple
    flip: bool
    start_index: int = 1
    description: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"dataset {self.name!r}: kind={self.kind!r}, expected one of {', '.join(KINDS)}")
        if self.num_classes is not None and (not isinstance(self.num_classes, int) or self.num_classes <= 0):
            raise ValueError(f"dataset {self.name!r}: num_classes={self.num_classes!r}, expected a positive int or None")
        self.mean, self.std = tuple(float(m) for m in self.mean), tuple(float(s) for s in self.std)
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"dataset {self.name!r}: mean/std must be 3 values each (std > 0)")


_REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add ``spec`` to the registry (a later registration of the same name replaces it)."""
    if not isinstance(spec, DatasetSpec):
        raise TypeError(f"register_dataset: expected a DatasetSpec, got {type(spec).__name__}")
    _REGISTRY[spec.name] = spec
    return spec


def get_dataset_spec(name: str) -> DatasetSpec:
    if name not in _REGISTRY:
        raise KeyError(f"dataset={name!r}: unknown; known datasets: {', '.join(list_datasets())}")
    return _REGISTRY[name]


def list_datasets() -> list[str]:
    return sorted(_REGISTRY)


for _spec in (
    DatasetSpec("synthetic", "video", "{:05d}.jpg", None, (0.5,) * 3, (0.25,) * 3, False,
                description="embedded synthetic temporal benchmark (mp4); classes from classes.txt"),
    DatasetSpec("ssv1", "frames", "{:05d}.jpg", 174, IMAGENET_MEAN, IMAGENET_STD, False,
                description="Something-Something V1 (JPEG frame folders)"),
    DatasetSpec("ssv2", "frames", "{:06d}.jpg", 174, IMAGENET_MEAN, IMAGENET_STD, False,
                description="Something-Something V2 (JPEG frame folders extracted from webm)"),
    DatasetSpec("k400", "video", "{:05d}.jpg", 400, IMAGENET_MEAN, IMAGENET_STD, True,
                description="Kinetics-400 (video files)"),
    DatasetSpec("hmdb51", "video", "{:05d}.jpg", 51, IMAGENET_MEAN, IMAGENET_STD, True,
                description="HMDB51 (video files)"),
    DatasetSpec("ucf101", "video", "{:05d}.jpg", 101, IMAGENET_MEAN, IMAGENET_STD, True,
                description="UCF101 (video files)"),
):
    register_dataset(_spec)


# ---------------------------------------------------------------------------------------------
@dataclass
class VideoRecord:
    path: str
    num_frames: int
    label: int


_EXPECTED = "expected '<path> <num_frames> <label>'"


class DataError(ValueError):
    """A list file, a label or a dataset description is wrong; the message names the file (and line)."""


def _check_inside(root: Path, rel: str, where: str) -> None:
    """Reject list entries that would read outside the dataset root (absolute paths, ``..`` escapes).

    The check is lexical: symbolic links inside the root (``prepare ssv1`` links the release's frame
    folders into ``frames/``) are the dataset owner's choice and are followed."""
    if os.path.isabs(rel) or (len(rel) > 1 and rel[1] == ":"):
        raise DataError(f"{where}: path {rel!r} is absolute; list entries must be relative to the data root {root}")
    norm = os.path.normpath(rel)
    if norm == ".." or norm.startswith(".." + os.sep) or norm == ".":
        raise DataError(f"{where}: path {rel!r} resolves outside the data root {root}")


def _parse_list(path: str | os.PathLike) -> list[tuple[int, VideoRecord]]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"list file {p} not found")
    out = []
    for lineno, raw in enumerate(p.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        parts = line.rsplit(None, 2)
        if len(parts) != 3:
            raise DataError(f"{p}:{lineno}: {_EXPECTED}, got {raw!r}")
        try:
            num_frames, label = int(parts[1]), int(parts[2])
        except ValueError:
            raise DataError(f"{p}:{lineno}: {_EXPECTED} with integer num_frames and label, got {raw!r}") from None
        if num_frames <= 0:
            raise DataError(f"{p}:{lineno}: {_EXPECTED} with num_frames >= 1, got {raw!r}")
        if label < 0:
            raise DataError(f"{p}:{lineno}: {_EXPECTED} with a label >= 0, got {raw!r}")
        out.append((lineno, VideoRecord(parts[0], num_frames, label)))
    return out


def read_list_file(path: str | os.PathLike) -> list[VideoRecord]:
    """Parse a TSN list file (blank lines are skipped); errors name ``FILE:LINE``."""
    return [r for _, r in _parse_list(path)]


def write_list_file(path: str | os.PathLike, records: Sequence[VideoRecord]) -> None:
    """Write ``records`` as a TSN list file atomically (temporary file + rename)."""
    lines = []
    for i, r in enumerate(records):
        if not r.path or r.path != r.path.strip() or "\n" in r.path or "\r" in r.path:
            raise ValueError(f"record {i} ({r.path!r}): the path must be non-empty, one line, no leading/trailing spaces")
        if int(r.num_frames) <= 0 or int(r.label) < 0:
            raise ValueError(f"record {i} ({r.path!r}): expected num_frames >= 1 and label >= 0, got {r}")
        lines.append(f"{r.path} {int(r.num_frames)} {int(r.label)}\n")
    atomic_write_text(path, "".join(lines))


# ---------------------------------------------------------------------------------------------
class VideoListDataset(Dataset):
    """TSN list file -> ``(clips, label)`` samples for a set of frame counts (module docstring).

    Sampling: train draws fresh TSN indices each time (``mode="train"``); eval uses segment
    centres shifted per temporal clip. Indices are clamped to ``min(stored num_frames, the
    reader's decodable count)``. Eval views: ``V = num_clips * test_crops``; view
    ``v = clip * test_crops + crop`` (every temporal clip gets all spatial crops).

    Randomness (train only): each ``__getitem__`` draws one 62-bit seed from torch's global RNG
    and seeds ``numpy.random.default_rng((seed, index))`` with it; the crop/flip also use torch's
    RNG. A ``DataLoader`` seeds each worker's torch RNG with ``base_seed + worker_id``, where
    ``base_seed`` is drawn from the main process's torch RNG per epoch, so after
    ``torch.manual_seed(s)`` all draws are reproducible and differ across workers and epochs (also
    with ``num_workers=0``, where the main RNG simply advances). Eval draws nothing from any RNG.

    Corrupt or missing videos (:class:`VideoReadError`), ``on_error`` (the ``on_bad_sample`` key):

    * ``"raise"``: the error propagates, naming the file and its list line (``list.txt:12``);
    * ``"skip"``, training: the next index (``i + 1``, wrapping, skipping known bad ones) is returned
      instead, so the substitution is deterministic;
    * ``"skip"``, evaluation: a placeholder sample (zeros) with label ``-1`` is returned; every
      tally and prediction file leaves label ``-1`` out, so the accuracy is over the readable clips
      only and says how many those are.

    Either way a skipped video is recorded once per process in ``.bad_videos`` and, when
    ``bad_log`` names a file, appended to it as one JSON line (``split``, ``path``, ``where`` =
    list file:line, ``error``). DataLoader workers are separate processes: the log file is how the
    main process learns about their skips (``read_bad_log``).

    Paths in the list must stay inside ``root``: absolute paths and ``..`` escapes are a
    :class:`DataError` naming the list line, raised when the dataset is built. Videos shorter than
    the largest frame count are counted (``short_videos``; TSN sampling repeats frames for them)
    and logged once as a warning.
    """

    def __init__(self, list_file: str | os.PathLike, root: str | os.PathLike, spec: DatasetSpec | str,
                 frames: Sequence[int], train: bool, crop_size: int, resize: int, num_clips: int = 1,
                 test_crops: int = 1, backend: str = "decord", on_error: str | None = None,
                 cache_videos: bool = False, persist_video_cache: bool = False,
                 scales: Sequence[float] | None = None,
                 bad_log: str | os.PathLike | None = None, split: str = "") -> None:
        self.spec = get_dataset_spec(spec) if isinstance(spec, str) else spec
        self.list_file, self.root = Path(list_file), Path(root)
        self.frames = parse_frames(frames, key="frames")
        self.train, self.backend = bool(train), backend
        if train and (num_clips != 1 or test_crops != 1):
            raise ValueError(f"num_clips={num_clips}, test_crops={test_crops}: multiple views are for eval only (train=False)")
        if not isinstance(num_clips, int) or num_clips < 1:
            raise ValueError(f"num_clips={num_clips!r}: expected an integer >= 1")
        self.num_clips, self.test_crops = num_clips, test_crops
        self.on_error = on_error or ("skip" if train else "raise")
        if self.on_error not in ("raise", "skip"):
            raise ValueError(f"on_error={on_error!r}: expected 'raise' or 'skip'")
        extra = {} if scales is None else {"scales": tuple(scales)}  # train multi-scale crop sides
        self.transform = build_transform(train, crop_size, resize, self.spec.mean, self.spec.std,
                                         self.spec.flip, test_crops=test_crops, **extra)
        parsed = _parse_list(self.list_file)
        for lineno, r in parsed:
            _check_inside(self.root, r.path, f"{self.list_file}:{lineno}")
        self.records = [r for _, r in parsed]
        self.linenos = [lineno for lineno, _ in parsed]
        self.split = split or ("train" if train else "val")
        self.bad_log = Path(bad_log) if bad_log else None
        if not self.records:
            raise DataError(f"list file {self.list_file} has no records")
        self.class_names = self._load_class_names()
        self.num_classes = len(self.class_names)
        for lineno, r in parsed:
            if r.label >= self.num_classes:
                raise DataError(f"{self.list_file}:{lineno}: label {r.label} >= num_classes={self.num_classes} "
                                 f"(dataset {self.spec.name!r})")
        self.bad_videos: set[str] = set()
        longest = max(self.frames)
        self.short_videos = sum(1 for r in self.records if r.num_frames < longest)
        if self.short_videos:
            log.warning("%d of %d videos in %s have fewer than %d frames: TSN sampling repeats frames for them "
                        "(frames=%s)", self.short_videos, len(self.records), self.list_file, longest, list(self.frames))
        self.cache_videos = bool(cache_videos)
        self.persist_video_cache = self.cache_videos and bool(persist_video_cache)
        if self.cache_videos:
            self._fill_cache()

    def _fill_cache(self) -> None:
        """Decode every not yet cached video of the list once, all frames (module docstring)."""
        paths = [self.video_path(i) for i in range(len(self.records))]
        todo = [i for i, p in enumerate(paths) if p not in _DECODED]
        if not todo:
            return
        index_file = None
        if self.persist_video_cache:
            index_file = self.root / PERSIST_DIR / f"{self.list_file.stem}-{_persist_key(self.list_file, paths)}.json"
            if index_file.is_file():
                n, unreadable = _load_persisted(index_file)
                todo = [i for i in todo if paths[i] not in _DECODED and paths[i] not in unreadable]
                log.info("cache_videos: mapped %d decoded videos of %s from %s", n, self.list_file, index_file)
                if not todo:
                    return

        def decode(i: int) -> tuple[str, np.ndarray | None]:
            path = paths[i]
            try:
                with self._open(i) as reader:
                    return path, np.ascontiguousarray(reader.read(np.arange(reader.num_frames())))
            except VideoReadError:
                return path, None  # left to the normal path, which applies the corrupt-video policy

        added = 0
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:  # decoders release the GIL
            for path, arr in pool.map(decode, todo):
                if arr is not None:
                    _DECODED[path] = arr
                    added += arr.nbytes
        total = video_cache_nbytes()
        log.info("cache_videos: decoded %d videos of %s (%.0f MB; %.0f MB cached in this process)",
                 len(todo), self.list_file, added / 2**20, total / 2**20)
        if index_file is not None:
            _write_persisted(index_file, paths)

    @property
    def num_views(self) -> int:
        return self.num_clips * self.test_crops

    def _load_class_names(self) -> list[str]:
        path = self.root / "classes.txt"
        if path.is_file():
            names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
            if self.spec.num_classes is not None and len(names) != self.spec.num_classes:
                raise DataError(f"{path}: {len(names)} class names, but dataset {self.spec.name!r} "
                                 f"has {self.spec.num_classes} classes")
            if not names:
                raise DataError(f"{path}: no class names (expected one per line)")
            return names
        if self.spec.num_classes is None:
            raise FileNotFoundError(f"{path} not found: dataset {self.spec.name!r} reads its class names "
                                    "from classes.txt in the data root (one per line)")
        return [str(i) for i in range(self.spec.num_classes)]

    def __len__(self) -> int:
        return len(self.records)

    def video_path(self, index: int) -> str:
        return os.path.join(self.root, self.records[index].path)

    def where(self, index: int) -> str:
        """``list_file:line`` of record ``index``."""
        return f"{self.list_file}:{self.linenos[index]}"

    def __getitem__(self, index: int):
        n = len(self.records)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} records of {self.list_file}")
        index %= n
        first_error = None
        for step in range(n if self.train else 1):
            i = (index + step) % n
            path = self.video_path(i)
            if path in self.bad_videos and self.train and step < n - 1:
                continue
            try:
                return self._load(i), self.records[i].label
            except VideoReadError as e:
                if self.on_error == "raise":
                    raise VideoReadError(e.path, f"{e.reason} (listed at {self.where(i)}; on_bad_sample=skip "
                                                 "leaves it out)") from None
                first_error = first_error or e
                self._record_bad(i, e)
        if not self.train:
            return self._placeholder(), -1
        raise VideoReadError(self.list_file, f"no readable video left (first error: {first_error})")

    def _record_bad(self, index: int, error: VideoReadError) -> None:
        path = self.video_path(index)
        if path in self.bad_videos:
            return
        self.bad_videos.add(path)
        what = "using the next sample instead" if self.train else "left out of the evaluation"
        log.warning("skipping unreadable video %s (%s): %s", path, self.where(index), what)
        if self.bad_log is not None:
            line = json.dumps({"split": self.split, "path": path, "where": self.where(index),
                               "error": str(error.reason)[:300]})
            self.bad_log.parent.mkdir(parents=True, exist_ok=True)
            with open(self.bad_log, "a", encoding="utf-8") as f:  # one short O_APPEND write per line
                f.write(line + "\n")

    def _placeholder(self) -> tuple:
        """Zeros shaped like an evaluation sample (the label ``-1`` marks it as left out)."""
        size = self.transform.crop_size
        clips = []
        for t in self.frames:
            x = torch.zeros(t, 3, size, size)
            clips.append(x if self.num_views == 1 else x.unsqueeze(0).repeat(self.num_views, 1, 1, 1, 1))
        return tuple(clips)

    def _index_sets(self, num_frames: int, index: int) -> list[list[np.ndarray]]:
        """``sets[c][k]``: indices for temporal clip ``c`` and frame count ``frames[k]``."""
        if self.train:
            seed = int(torch.randint(0, 2**62, ()).item())
            rng = np.random.default_rng((seed, index))
            return [multi_frequency_indices(num_frames, self.frames, "train", rng=rng)]
        return [multi_frequency_indices(num_frames, self.frames, "val", clip=c, num_clips=self.num_clips)
                for c in range(self.num_clips)]

    def _open(self, index: int):
        return open_reader(self.video_path(index), self.spec.kind, template=self.spec.template,
                           start_index=self.spec.start_index, backend=self.backend)

    def _sample(self, index: int, decodable: int, read) -> tuple:
        """Draw the index sets (clamped to ``decodable``), read their sorted union once: ``(frames, pos)``."""
        sets = self._index_sets(min(self.records[index].num_frames, decodable), index)
        union, pos = union_indices([s for clip_sets in sets for s in clip_sets])
        return read(union), pos

    def _load(self, index: int) -> tuple:
        cached = _DECODED.get(self.video_path(index)) if self.cache_videos else None
        if cached is not None:
            frames, pos = self._sample(index, len(cached), lambda union: cached[union])
        else:
            with self._open(index) as reader:
                frames, pos = self._sample(index, reader.num_frames(), reader.read)
        # the transform is per-frame identical, so transforming the union (not the K-fold
        # concatenation) gives the same frames with fewer pixels to process
        x = self.transform(torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous())
        views = x if self.test_crops == 3 else x.unsqueeze(0)  # (crops, U, 3, h, w)
        K = len(self.frames)
        clips = []
        pos = [torch.from_numpy(p) for p in pos]  # tensor indices: index_select, not numpy fancy indexing
        for k in range(K):
            per_view = [views[j].index_select(0, pos[c * K + k]) for c in range(self.num_clips)
                        for j in range(self.test_crops)]
            clips.append(per_view[0] if len(per_view) == 1 else torch.stack(per_view))
        return tuple(clips)


def read_bad_log(path: str | os.PathLike) -> dict:
    """``{split: {path: {"where", "error"}}}`` from a ``bad_log`` file (each path once, first entry kept)."""
    out: dict = {}
    p = Path(path)
    if not p.is_file():
        return out
    for raw in p.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            item = json.loads(raw)
        except json.JSONDecodeError:  # a line cut by a crash
            continue
        out.setdefault(item.get("split", ""), {}).setdefault(item["path"], {"where": item.get("where", ""),
                                                                          "error": item.get("error", "")})
    return out


def model_normalization(cfg, spec: DatasetSpec) -> DatasetSpec:
    """``spec`` with the mean/std that ``cfg.model``'s pretrained weights expect (its declared
    ``ModelCfg``: ImageNet for the ResNets, 0.45/0.225 for SlowFast and Uniformer) when the run starts
    from ``pretrained`` weights; a model trained from scratch keeps the dataset's normalisation."""
    if not getattr(cfg, "pretrained", ""):
        return spec
    from ffn_core.models import get_model_cfg, list_models

    if cfg.model not in list_models():
        return spec
    mcfg = get_model_cfg(cfg.model)
    return dataclasses.replace(spec, mean=tuple(mcfg.mean), std=tuple(mcfg.std))


def build_dataset(cfg, split: str, frames: Sequence[int] | None = None,
                  bad_log: str | os.PathLike | None = None) -> VideoListDataset:
    """A :class:`VideoListDataset` for ``split`` ("train" | "val") from a :class:`~ffn_core.config.Config`."""
    if split not in ("train", "val"):
        raise ValueError(f"split={split!r}: expected 'train' or 'val'")
    train = split == "train"
    list_file = cfg.train_list_path if train else cfg.val_list_path
    if not Path(list_file).is_file():
        raise FileNotFoundError(
            f"list file {list_file} not found (split={split}, data_root={cfg.data_root}): generate the "
            "synthetic benchmark with `python -m ffn_core synth` or convert an official release with "
            "`python -m ffn_core prepare`"
        )
    # A folder written by `python -m ffn_core prepare` describes its storage (videos or frame
    # folders, template) in dataset.json; the registered spec supplies normalisation and flip.
    from ffn_core.data.prepare.description import prepared_spec

    spec = model_normalization(cfg, prepared_spec(cfg.data_root, cfg.dataset))
    return VideoListDataset(
        list_file, cfg.data_root, spec, frames if frames is not None else cfg.frames, train=train,
        crop_size=cfg.crop_size, resize=cfg.test_resize,
        num_clips=1 if train else cfg.num_clips, test_crops=1 if train else cfg.test_crops,
        backend=cfg.video_backend, cache_videos=cfg.cache_videos, persist_video_cache=cfg.persist_video_cache,
        scales=cfg.train_scales,
        on_error=getattr(cfg, "on_bad_sample", None), bad_log=bad_log, split=split,
    )
