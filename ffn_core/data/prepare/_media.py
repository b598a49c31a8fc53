"""Media work of the preparation tool: probe frame counts, extract JPEG frames, check frame folders.

Everything here runs in worker processes and never raises for a bad video: :func:`process_media`
returns a :class:`MediaResult` whose ``error`` says what went wrong, so one corrupt file cannot
stop a 240k-video run.

Frame counts are what really decodes (PyAV, the whole stream), not the container's header, which
is often missing (WebM) or wrong (the decord over-reporting the environment notes warn about).
``probe="header"`` trusts a non-zero header count instead, for speed on very large releases.

Extraction is resumable: frames are written into a hidden ``.<name>.partial`` folder next to the
destination, a ``.ffn_done.json`` marker (frame count + notes) is written last, and the folder is
renamed into place. A destination folder without its marker (left by an interrupted run or
another tool) is redone; a leftover ``.partial`` folder is deleted and redone.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "FRAME_TEMPLATE", "FRAME_START", "DONE_MARKER", "VIDEO_EXTENSIONS",
    "MediaTask", "MediaResult", "process_media", "probe_video", "extract_frames",
    "count_frame_folder", "resized_shape", "pool_chunksize",
]

# 1-indexed, the SSv1 release's own naming, used for every dataset. Deliberate difference: the
# original lists use {:06d}.jpg (SSv2) and image_{:05d}.jpg (K400, HMDB51) (the official data lists);
# dataset.json records the template, so the loader needs no per-dataset convention.
FRAME_TEMPLATE = "{:05d}.jpg"
FRAME_START = 1
DONE_MARKER = ".ffn_done.json"
VIDEO_EXTENSIONS = (".mp4", ".webm", ".avi", ".mkv", ".mov", ".m4v", ".flv", ".3gp", ".mpg", ".mpeg", ".ogv")
_FRAME_RE = re.compile(r"^(\d+)\.jpe?g$", re.IGNORECASE)


@dataclass(frozen=True)
class MediaTask:
    """One unit of work. ``action`` is ``probe`` (video), ``extract`` (video -> frames at ``dest``)
    or ``frames`` (count an existing JPEG folder at ``source``)."""

    key: str
    source: str
    action: str
    dest: str = ""
    short_side: int = 256
    jpeg_quality: int = 90
    probe: str = "decode"


@dataclass
class MediaResult:
    key: str
    num_frames: int = 0
    error: str = ""               # non-empty: nothing usable (the video is left out of the lists)
    notes: list = field(default_factory=list)  # usable but suspicious (decoding stopped early, gaps)
    reused: bool = False          # extraction found a finished folder from an earlier run


def process_media(task: MediaTask) -> MediaResult:
    """Run ``task``; every failure is caught and returned as ``error`` (never raised)."""
    try:
        if task.action == "probe":
            n, notes = probe_video(task.source, task.probe)
            return MediaResult(task.key, n, notes=notes)
        if task.action == "extract":
            n, notes, reused = extract_frames(task.source, task.dest, task.short_side, task.jpeg_quality)
            return MediaResult(task.key, n, notes=notes, reused=reused)
        if task.action == "frames":
            n, notes = count_frame_folder(task.source)
            return MediaResult(task.key, n, notes=notes)
        return MediaResult(task.key, error=f"internal: unknown action {task.action!r}")
    except Exception as e:  # noqa: BLE001 - a bad video must never stop the run
        return MediaResult(task.key, error=_describe(e))


def _describe(e: BaseException) -> str:
    text = str(e).strip() or "no message"
    return f"{type(e).__name__}: {text}"


def _open_video(path: str):
    import av

    if os.path.getsize(path) == 0:
        raise ValueError("empty file (0 bytes)")
    container = av.open(path)
    if not container.streams.video:
        container.close()
        raise ValueError("no video stream")
    return container


def probe_video(path: str, mode: str = "decode") -> tuple[int, list]:
    """Frames that decode from ``path``'s first video stream -> ``(count, notes)``.

    ``mode="header"`` returns the container's frame count when it states one (> 0) and decodes
    otherwise. Raises when nothing decodes; a decode error after some frames is kept as a note and
    the frames decoded so far are the count (the loader must never index past them).
    """
    container = _open_video(path)
    try:
        stream = container.streams.video[0]
        if mode == "header" and stream.frames and stream.frames > 0:
            return int(stream.frames), []
        stream.thread_type = "AUTO"
        count, notes = 0, []
        try:
            for _ in container.decode(stream):
                count += 1
        except Exception as e:  # noqa: BLE001
            if count == 0:
                raise
            notes.append(f"decoding stopped after {count} frames ({_describe(e)})")
        if count == 0:
            raise ValueError("no decodable frames")
        return count, notes
    finally:
        container.close()


def resized_shape(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(w, h) with the shorter side = ``short_side`` and the aspect kept (0: unchanged)."""
    if short_side <= 0:
        return width, height
    if width <= height:
        return short_side, max(1, int(round(height * short_side / width)))
    return max(1, int(round(width * short_side / height))), short_side


def _read_marker(folder: Path) -> dict | None:
    marker = folder / DONE_MARKER
    if not marker.is_file():
        return None
    try:
        data = json.loads(marker.read_text())
        n = int(data["num_frames"])
    except (ValueError, KeyError, TypeError, OSError):
        return None
    if n <= 0 or not (folder / FRAME_TEMPLATE.format(n + FRAME_START - 1)).is_file():
        return None
    return data


def extract_frames(source: str, dest: str, short_side: int = 256, quality: int = 90) -> tuple[int, list, bool]:
    """Decode ``source`` into ``dest/00001.jpg ...`` at ``short_side`` -> ``(count, notes, reused)``.

    A finished ``dest`` (marker present and consistent) is reused without decoding.
    """
    dest_p = Path(dest)
    done = _read_marker(dest_p)
    if done is not None:
        return int(done["num_frames"]), list(done.get("notes", [])), True
    tmp = dest_p.parent / f".{dest_p.name}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        count, notes = _write_jpegs(source, tmp, short_side, quality)
        (tmp / DONE_MARKER).write_text(json.dumps({"num_frames": count, "notes": notes, "source": source}))
        if dest_p.exists():  # an unfinished folder from an interrupted run or another tool
            shutil.rmtree(dest_p)
        os.replace(tmp, dest_p)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return count, notes, False


def _write_jpegs(source: str, folder: Path, short_side: int, quality: int) -> tuple[int, list]:
    container = _open_video(source)
    count, notes = 0, []
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                w, h = resized_shape(frame.width, frame.height, short_side)
                image = frame.to_image(width=w, height=h)
                count += 1
                image.save(folder / FRAME_TEMPLATE.format(count + FRAME_START - 1), quality=quality)
        except Exception as e:  # noqa: BLE001
            if count == 0:
                raise
            notes.append(f"decoding stopped after {count} frames ({_describe(e)})")
    finally:
        container.close()
    if count == 0:
        raise ValueError("no decodable frames")
    return count, notes


def count_frame_folder(folder: str) -> tuple[int, list]:
    """Contiguous 1-indexed JPEG frames in ``folder`` (``00001.jpg`` ...) -> ``(count, notes)``.

    The first and the last frame are fully decoded with PIL, so an empty, corrupt or truncated
    folder is reported rather than found later by the loader. A gap keeps the frames before it.
    """
    from PIL import Image

    p = Path(folder)
    if not p.is_dir():
        raise FileNotFoundError(f"not a folder: {folder}")
    indices = set()
    for name in os.listdir(p):
        m = _FRAME_RE.match(name)
        if m:
            indices.add(int(m.group(1)))
    notes = []
    count = 0
    while count + FRAME_START in indices:
        count += 1
    if count == 0:
        raise ValueError(f"no frames named like {FRAME_TEMPLATE.format(FRAME_START)}")
    if len(indices) > count:
        notes.append(f"frame {count + FRAME_START} is missing: kept the {count} frames before the gap "
                     f"({len(indices) - count} later files ignored)")
    for index in sorted({FRAME_START, count + FRAME_START - 1}):
        path = p / FRAME_TEMPLATE.format(index)
        if not path.is_file():  # e.g. 00001.jpeg: counted by the pattern but not the template
            raise ValueError(f"{path.name} not found (frames must be named {FRAME_TEMPLATE})")
        with Image.open(path) as im:
            im.load()
    return count, notes


def pool_chunksize(n_tasks: int, workers: int) -> int:
    """Chunk size for a process pool: large enough to amortise IPC, small enough to balance."""
    return max(1, min(64, math.ceil(n_tasks / max(1, workers * 8))))
