"""Frame readers with one interface: JPEG frame folders (PIL), videos (decord, PyAV fallback).

Every reader returns ``uint8`` arrays ``(N, H, W, 3)`` (RGB) in the order of the indices asked
for (duplicates allowed) and raises :class:`VideoReadError` naming the file and the reason when a
video or frame is missing or corrupt.

decord (fast, but unmaintained since 2022) is guarded: it decodes the sorted unique indices in one
``get_batch`` call; when it cannot open a file or fails part-way (it sometimes over-reports the
frame count of damaged files), the reader falls back to PyAV for that video, whose decoder stops
at the last decodable frame. Indices past that end are clamped to the last decodable frame (with a
warning); :func:`probe_num_frames` gives the decodable count to store in the list file, so that
properly built lists never need the clamp.
"""
from __future__ import annotations

import logging
import os
import re
import string
from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np

__all__ = [
    "VideoReadError",
    "Reader",
    "FrameFolderReader",
    "DecordReader",
    "PyAVReader",
    "open_reader",
    "probe_num_frames",
    "KINDS",
    "BACKENDS",
]

log = logging.getLogger(__name__)

KINDS = ("frames", "video")
BACKENDS = ("decord", "pyav")

_WARNED: set = set()


def _warn_once(path: str, message: str, *args) -> None:
    """Log a warning about ``path`` once per process and message (readers are reopened per sample)."""
    key = (path, message)
    if key not in _WARNED:
        _WARNED.add(key)
        log.warning("%s: " + message, path, *args)


class VideoReadError(RuntimeError):
    """A video or frame file is missing or cannot be decoded; ``str(e)`` is ``"<file>: <reason>"``."""

    def __init__(self, path: str | os.PathLike, reason: str = "") -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if reason else self.path)

    def __reduce__(self):  # picklable across DataLoader worker processes
        return (type(self), (self.path, self.reason))


class Reader(ABC):
    """Common interface: ``.path``, ``num_frames()``, ``read(indices)``, ``close()``, ``with``."""

    path: str

    @abstractmethod
    def num_frames(self) -> int:
        """Number of frames that :meth:`read` accepts (indices ``0 .. num_frames() - 1``)."""

    @abstractmethod
    def _read_unique(self, unique: np.ndarray) -> np.ndarray:
        """Frames for sorted unique in-range indices, ``(len(unique), H, W, 3)`` uint8."""

    def read(self, indices: Sequence[int]) -> np.ndarray:
        """``uint8 (len(indices), H, W, 3)`` RGB frames, in the order given (duplicates allowed)."""
        idx = np.asarray(indices)
        if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"{self.path}: indices must be a non-empty 1-D sequence of ints, got {indices!r}")
        n = self.num_frames()
        bad = idx[(idx < 0) | (idx >= n)]
        if bad.size:
            raise IndexError(f"{self.path}: frame index {int(bad[0])} out of range [0, {n})")
        unique, inverse = np.unique(idx.astype(np.int64), return_inverse=True)
        frames = self._read_unique(unique)
        return frames[inverse.reshape(-1)]

    def close(self) -> None:
        """Release the file handles (idempotent)."""

    def __enter__(self) -> "Reader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"


# ---------------------------------------------------------------------------------------------
def _template_regex(template: str) -> re.Pattern:
    """``"img_{:05d}.jpg"`` -> a regex with one integer group (the template must have one field)."""
    parts = list(string.Formatter().parse(template))
    fields = [p for p in parts if p[1] is not None]
    if len(fields) != 1 or fields[0][1] not in ("", "0"):
        raise ValueError(
            f"template={template!r}: expected exactly one positional integer field, e.g. '{{:05d}}.jpg'"
        )
    pattern = "".join(re.escape(lit) + (r"(\d+)" if field is not None else "") for lit, field, _, _ in parts)
    return re.compile(pattern)


class FrameFolderReader(Reader):
    """A folder of JPEG (or any PIL-readable) frames named ``template.format(start_index + i)``.

    ``num_frames()`` is the number of files in the folder whose name the template produces. A
    frame that is missing (a gap) or cannot be decoded raises :class:`VideoReadError` naming it.
    """

    def __init__(self, folder: str | os.PathLike, template: str = "{:05d}.jpg", start_index: int = 1) -> None:
        self.path = os.fspath(folder)
        self.template = template
        self.start_index = int(start_index)
        regex = _template_regex(template)
        if not os.path.isdir(self.path):
            raise VideoReadError(self.path, "frame folder not found")
        try:
            names = os.listdir(self.path)
        except OSError as e:
            raise VideoReadError(self.path, f"cannot list frame folder ({e})") from None
        count = 0
        for name in names:
            m = regex.fullmatch(name)
            if m and template.format(int(m.group(1))) == name and int(m.group(1)) >= self.start_index:
                count += 1
        if count == 0:
            raise VideoReadError(self.path, f"no frames named like {template!r} (start_index={start_index})")
        self._n = count

    def num_frames(self) -> int:
        return self._n

    def frame_path(self, index: int) -> str:
        return os.path.join(self.path, self.template.format(self.start_index + int(index)))

    def _read_unique(self, unique: np.ndarray) -> np.ndarray:
        from PIL import Image

        out = []
        for i in unique:
            f = self.frame_path(i)
            if not os.path.isfile(f):
                raise VideoReadError(f, f"frame {int(i)} missing (folder has {self._n} frames named like {self.template!r})")
            try:
                with Image.open(f) as im:
                    arr = np.asarray(im.convert("RGB"))
            except Exception as e:  # PIL raises OSError, SyntaxError, ValueError ... on bad files
                raise VideoReadError(f, f"cannot decode image ({type(e).__name__}: {e})") from None
            if out and arr.shape != out[0].shape:
                raise VideoReadError(f, f"frame size {arr.shape[:2]} differs from earlier frames {out[0].shape[:2]}")
            out.append(arr)
        return np.stack(out)


# ---------------------------------------------------------------------------------------------
class PyAVReader(Reader):
    """Sequential PyAV decode (the fallback backend; exact, slower on long videos).

    ``num_frames()`` is the container's frame count if it states one, else a full decode count.
    :meth:`read` decodes from the start up to the largest index; if the stream ends or breaks
    earlier, the reader learns the decodable count and clamps later indices to the last frame.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        import av

        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise VideoReadError(self.path, "video file not found")
        try:
            self._container = av.open(self.path)
        except Exception as e:  # av.error.FFmpegError and friends
            raise VideoReadError(self.path, f"PyAV cannot open it ({type(e).__name__}: {e})") from None
        if not self._container.streams.video:
            self.close()
            raise VideoReadError(self.path, "no video stream in the file")
        self._stated = int(self._container.streams.video[0].frames or 0)
        self._decodable: int | None = None
        self._decoded_once = False

    def _frames(self):
        """Yield decoded frames in presentation order, stopping quietly at the first broken packet."""
        import av

        if self._decoded_once:
            self._container.seek(0)
        self._decoded_once = True
        stream = self._container.streams.video[0]
        try:
            for packet in self._container.demux(stream):
                yield from packet.decode()
        except av.error.FFmpegError as e:
            _warn_once(self.path, "decoding stopped early (%s)", e)

    def count_decodable(self) -> int:
        """Decode the whole stream (no colour conversion) and return the number of frames."""
        if self._decodable is None:
            self._decodable = sum(1 for _ in self._frames())
        return self._decodable

    def num_frames(self) -> int:
        if self._decodable is not None:
            return self._decodable
        return self._stated if self._stated > 0 else self.count_decodable()

    def _read_unique(self, unique: np.ndarray) -> np.ndarray:
        wanted = set(int(i) for i in unique)
        last_needed = int(unique[-1])
        got: dict[int, np.ndarray] = {}
        last_frame, n = None, 0
        for n, frame in enumerate(self._frames()):
            last_frame = frame
            if n in wanted:
                got[n] = frame.to_ndarray(format="rgb24")
            if n >= last_needed:
                break
        else:
            n = n + 1 if last_frame is not None else 0
            self._decodable = n  # the stream ended (or broke) before last_needed
        if last_frame is None:
            raise VideoReadError(self.path, "no decodable video frames")
        missing = [i for i in wanted if i not in got]
        if missing:
            _warn_once(self.path, "only %d decodable frames (container states %d); clamping later indices "
                       "to the last frame", self._decodable, self._stated)
            tail = last_frame.to_ndarray(format="rgb24")
            for i in missing:
                got[i] = tail
        return np.stack([got[int(i)] for i in unique])

    def close(self) -> None:
        c = getattr(self, "_container", None)
        if c is not None:
            c.close()
            self._container = None


class DecordReader(Reader):
    """decord ``VideoReader`` (``num_threads=1``; parallelise with DataLoader workers instead).

    The sorted unique indices are decoded in one ``get_batch`` call and scattered back. If
    ``get_batch`` fails (decord over-reports the frame count of some damaged files), this video is
    re-read with :class:`PyAVReader` from then on.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        import decord

        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise VideoReadError(self.path, "video file not found")
        try:
            self._vr = decord.VideoReader(self.path, num_threads=1)
            self._n = len(self._vr)
        except Exception as e:  # decord raises DECORDError (a RuntimeError) with a C++ trace
            raise VideoReadError(self.path, f"decord cannot open it ({_first_line(e)})") from None
        if self._n <= 0:
            raise VideoReadError(self.path, "decord reports no frames")
        self._fallback: PyAVReader | None = None

    def num_frames(self) -> int:
        return self._fallback.num_frames() if self._fallback is not None else self._n

    def _read_unique(self, unique: np.ndarray) -> np.ndarray:
        if self._fallback is None:
            try:
                batch = self._vr.get_batch(unique.tolist())
                arr = batch.asnumpy() if hasattr(batch, "asnumpy") else np.asarray(batch)
                if arr.shape[0] == len(unique) and arr.ndim == 4 and arr.shape[-1] == 3:
                    return np.ascontiguousarray(arr, dtype=np.uint8)
                reason = f"get_batch returned shape {arr.shape}"
            except Exception as e:
                reason = _first_line(e)
            _warn_once(self.path, "decord failed (%s); falling back to PyAV for this video", reason)
            self._fallback = PyAVReader(self.path)
        # the fallback may know fewer frames than decord claimed: clamp, decode, scatter back
        clamped, inverse = np.unique(np.minimum(unique, self._fallback.num_frames() - 1), return_inverse=True)
        return self._fallback._read_unique(clamped)[inverse.reshape(-1)]

    def close(self) -> None:
        self._vr = None  # decord frees the decoder when the object is dropped
        if getattr(self, "_fallback", None) is not None:
            self._fallback.close()


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


# ---------------------------------------------------------------------------------------------
def _check_kind_backend(kind: str, backend: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}: expected one of {', '.join(KINDS)}")
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}: expected one of {', '.join(BACKENDS)}")


_warned_no_decord = False


def open_reader(
    path: str | os.PathLike,
    kind: str,
    template: str = "{:05d}.jpg",
    start_index: int = 1,
    backend: str = "decord",
) -> Reader:
    """Open ``path`` as a frame folder (``kind="frames"``) or a video file (``kind="video"``).

    For videos, ``backend="decord"`` falls back to PyAV when decord is not installed or cannot
    open the file; if both fail, :class:`VideoReadError` gives both reasons.
    """
    global _warned_no_decord
    _check_kind_backend(kind, backend)
    if kind == "frames":
        return FrameFolderReader(path, template=template, start_index=start_index)
    if backend == "decord":
        try:
            import decord  # noqa: F401
        except ImportError:
            if not _warned_no_decord:
                log.warning("decord is not installed: reading videos with PyAV")
                _warned_no_decord = True
        else:
            try:
                return DecordReader(path)
            except VideoReadError as first:
                if not os.path.isfile(os.fspath(path)):
                    raise
                try:
                    reader = PyAVReader(path)
                except VideoReadError as second:
                    raise VideoReadError(path, f"{first.reason}; {second.reason}") from None
                _warn_once(os.fspath(path), "%s; reading it with PyAV", first.reason)
                return reader
    return PyAVReader(path)


def probe_num_frames(
    path: str | os.PathLike,
    kind: str,
    template: str = "{:05d}.jpg",
    start_index: int = 1,
    backend: str = "decord",
) -> int:
    """Decodable frame count (what a list file's ``<num_frames>`` should hold).

    Frame folders: the number of frame files. Videos with ``backend="pyav"``: a full decode
    count. With ``backend="decord"``: decord's count if its last frame decodes, else PyAV's full
    decode count (decord over-reports on some damaged files).
    """
    _check_kind_backend(kind, backend)
    if kind == "frames":
        with FrameFolderReader(path, template=template, start_index=start_index) as r:
            return r.num_frames()
    with open_reader(path, kind, backend=backend) as r:
        if isinstance(r, DecordReader):
            n = r.num_frames()
            r.read([n - 1])  # switches to the PyAV fallback if the end is not decodable
            if r._fallback is None:
                return n
            return r._fallback.count_decodable()
        return r.count_decodable()
