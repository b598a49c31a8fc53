"""``dataset.json``: how to read a folder written by ``prepare`` (the loader's side of the contract).

``prepare`` writes ``<out>/dataset.json`` = ``{format, dataset, kind, template, start_index,
num_classes, classes_file, lists, ...}``. The registered :class:`~ffn_core.data.datasets.DatasetSpec`
of a dataset fixes one storage kind (e.g. ``ssv2`` = frame folders ``{:06d}.jpg``, ``k400`` =
videos), but a prepared folder may hold the other kind (SSv2 as .webm; K400/HMDB51/UCF101 with
``--extract-frames`` as ``{:05d}.jpg`` folders). :func:`prepared_spec` returns the registered spec
with ``kind``, ``template``, ``start_index`` and ``num_classes`` taken from ``dataset.json``, and
keeps the rest (normalisation, whether flipping is label-preserving).
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

__all__ = ["DESCRIPTION_FILE", "read_description", "prepared_spec"]

DESCRIPTION_FILE = "dataset.json"
_KEYS = ("dataset", "kind", "template", "start_index", "num_classes")


def read_description(data_root: str | os.PathLike) -> dict | None:
    """The parsed ``<data_root>/dataset.json``, ``None`` when there is none; a malformed file is a
    ``ValueError`` naming it and the bad key."""
    from ffn_core.data.datasets import DataError as ValueError  # noqa: A001 - a ValueError the CLI reports in one line

    path = Path(data_root) / DESCRIPTION_FILE
    if not path.is_file():
        return None
    try:
        desc = json.loads(path.read_text())  # JSON: plain data only, nothing in it can run
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(desc, dict) or any(k not in desc for k in _KEYS):
        raise ValueError(f"{path}: expected an object with the keys {', '.join(_KEYS)} (written by prepare)")
    if desc["kind"] not in ("frames", "video"):
        raise ValueError(f"{path}: kind={desc['kind']!r}, expected 'frames' or 'video'")
    if desc["kind"] == "frames" and not isinstance(desc["template"], str):
        raise ValueError(f"{path}: kind=frames needs a 'template' string such as '{{:05d}}.jpg'")
    if not isinstance(desc["num_classes"], int) or desc["num_classes"] <= 0:
        raise ValueError(f"{path}: num_classes={desc['num_classes']!r}, expected a positive integer")
    return desc


def prepared_spec(data_root: str | os.PathLike, base=None):
    """The :class:`DatasetSpec` to read the prepared folder ``data_root`` with.

    ``base`` (a registered name or a spec; default: the ``dataset`` named in ``dataset.json``)
    supplies normalisation and flip; ``dataset.json`` supplies the storage. Without a
    ``dataset.json`` the base spec is returned unchanged.
    """
    from ffn_core.data.datasets import DatasetSpec, get_dataset_spec

    desc = read_description(data_root)
    if base is None:
        if desc is None:
            raise ValueError(f"{Path(data_root) / DESCRIPTION_FILE} not found: pass base= (a dataset name)")
        base = desc["dataset"]
    spec = base if isinstance(base, DatasetSpec) else get_dataset_spec(base)
    if desc is None:
        return spec
    storage = {"kind": desc["kind"], "num_classes": desc["num_classes"]}
    if desc["kind"] == "frames":
        storage.update(template=desc["template"], start_index=int(desc["start_index"]))
    return dataclasses.replace(spec, **storage)
