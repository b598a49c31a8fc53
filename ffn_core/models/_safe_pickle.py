"""Read a pickle of plain numeric data (dicts, lists, numpy arrays) without running any code.

The official SlowFast Kinetics checkpoints (``SLOWFAST_8x8_R50.pkl``) are caffe2 pickles: a dict
``{"blobs": {name: numpy array}, ...}`` written by Python 2. ``pickle.load`` on such a file would
execute whatever the file asks for, so :func:`read_numpy_pickle` uses an unpickler that resolves
only the globals numpy arrays need (array reconstruction, dtypes, numpy scalars, the latin-1 bytes
codec of protocol-2 pickles) and ``OrderedDict``. A pickle that names anything else - ``os.system``,
``builtins.eval``, a class - is refused with :class:`UnsafePickleError` naming the file and the
global, before anything runs.

:func:`torch_load_weights_only` is the one place that calls ``torch.load(weights_only=True)`` for
checkpoints, pretrained files and released FFN files: its failure is a :class:`WeightsOnlyLoadError`
carrying a one-line reason, which each caller wraps with its own context.
"""
from __future__ import annotations

import os
import pickle
from typing import Any

__all__ = ["UnsafePickleError", "WeightsOnlyLoadError", "read_numpy_pickle", "torch_load_weights_only",
           "ALLOWED_GLOBALS"]

#: (module, name) pairs the unpickler may resolve.
ALLOWED_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("_codecs", "encode"),  # protocol-2 pickles store bytes as _codecs.encode(str, "latin1")
    ("collections", "OrderedDict"),
})


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle asks for a global outside :data:`ALLOWED_GLOBALS`."""


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file, path: str):
        super().__init__(file, encoding="latin1")  # Python-2 caffe2 pickles
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"{self._path}: refused to unpickle {module}.{name}: this reader accepts only dicts, lists and "
            "numpy arrays (a caffe2 checkpoint holds nothing else); the file would run code if loaded "
            "with plain pickle")

    def persistent_load(self, pid):  # noqa: D401 - torch-style persistent ids are not plain data
        raise UnsafePickleError(f"{self._path}: refused: the pickle uses persistent ids (a torch file? "
                                "load it with torch.load(weights_only=True) instead)")


def _check_plain(obj: Any, path: str) -> None:
    """Refuse object-dtype arrays: their elements passed the global check, but they are not numeric
    weights and would fail later without naming the file."""
    import numpy as np

    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, dict):
            stack.extend(o.values())
        elif isinstance(o, (list, tuple)):
            stack.extend(o)
        elif isinstance(o, np.ndarray) and o.dtype.hasobject:
            raise UnsafePickleError(f"{path}: refused: it holds an object-dtype array (expected numeric arrays only)")


def read_numpy_pickle(path: str | os.PathLike) -> Any:
    """The object in pickle file ``path`` if it is built from dicts, lists and numeric numpy arrays only."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        try:
            obj = _NumpyOnlyUnpickler(f, path).load()
        except UnsafePickleError:
            raise
        except Exception as e:  # truncated / not a pickle
            raise pickle.UnpicklingError(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from None
    _check_plain(obj, path)
    return obj


class WeightsOnlyLoadError(ValueError):
    """``torch.load(weights_only=True)`` failed. ``unsafe``: the file needs full unpickling (it names a
    global outside torch's allow-list); otherwise it is truncated or not a torch file. ``why`` is one
    line (the informative line of torch's multi-line message)."""

    def __init__(self, path: str, why: str, unsafe: bool, kind: str):
        self.path, self.why, self.unsafe, self.kind = path, why, unsafe, kind
        super().__init__(f"{path}: {kind}: {why}")


def _one_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()] or [type(e).__name__]
    for marker in ("Unsupported global", "Unpickler error", "Weights only"):
        hit = next((ln for ln in lines if marker in ln), None)
        if hit:
            return hit[:300]
    return lines[0][:300]


def torch_load_weights_only(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``; any failure becomes a :class:`WeightsOnlyLoadError`."""
    import torch

    path = os.fspath(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises UnpicklingError for a refused global, others for broken files
        raise WeightsOnlyLoadError(path, _one_line(e), isinstance(e, pickle.UnpicklingError),
                                   type(e).__name__) from None
