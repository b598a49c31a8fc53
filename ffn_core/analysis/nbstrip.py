"""Strip notebooks for committing: outputs, execution counts, papermill/widget metadata.

Keeps what papermill needs (``kernelspec`` and ``language_info`` notebook metadata) and each
cell's ``tags`` (the ``parameters`` tag). ``python -m ffn_core.analysis.nbstrip notebooks/*.ipynb``
rewrites files in place (``make strip-notebooks``); ``--check`` only reports files that are not
stripped and exits 1 (for CI).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

__all__ = ["strip_notebook", "strip_file", "is_stripped", "main"]

_KEEP_NB_META = ("kernelspec", "language_info")
_KEEP_CELL_META = ("tags",)


def strip_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Return ``nb`` (modified in place) without outputs and volatile metadata."""
    nb.metadata = nbformat.from_dict({k: v for k, v in nb.metadata.items() if k in _KEEP_NB_META})
    for cell in nb.cells:
        cell.metadata = nbformat.from_dict({k: v for k, v in cell.metadata.items() if k in _KEEP_CELL_META})
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def _dumps(nb) -> str:
    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"


def is_stripped(path: str | Path) -> bool:
    text = Path(path).read_text()
    nb = nbformat.reads(text, as_version=4)
    return _dumps(strip_notebook(nb)) == text


def strip_file(path: str | Path) -> bool:
    """Strip ``path`` in place; True if the file changed."""
    p = Path(path)
    text = p.read_text()
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as e:  # nbformat raises several types for bad JSON / schema
        raise ValueError(f"{p}: not a readable notebook ({e})") from None
    out = _dumps(strip_notebook(nb))
    if out != text:
        p.write_text(out)
        return True
    return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ffn_core.analysis.nbstrip", description=__doc__.split("\n")[0])
    ap.add_argument("paths", nargs="+", help="notebooks (.ipynb)")
    ap.add_argument("--check", action="store_true", help="report unstripped notebooks, change nothing")
    a = ap.parse_args(argv)
    bad = 0
    for path in a.paths:
        if not Path(path).is_file():
            print(f"nbstrip: {path}: no such file", file=sys.stderr)
            bad += 1
            continue
        if a.check:
            if not is_stripped(path):
                print(f"nbstrip: {path} has outputs or volatile metadata (run make strip-notebooks)")
                bad += 1
        elif strip_file(path):
            print(f"nbstrip: stripped {path}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
