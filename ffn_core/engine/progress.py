"""Progress output: a tqdm bar when interactive, a log line every ``log_every`` steps when headless.

Headless (papermill, CI, ``torchrun`` logs: ``sys.stderr`` is not a TTY) output stays small: one line
per ``log_every`` steps plus one per epoch, because large tqdm/print floods can time out papermill's
IOPub channel (environment notes). Only rank 0 prints.

:func:`milestone` lines (one per epoch, per evaluation, per run started or reused) are also appended
to the file named by ``FFN_PROGRESS_FILE`` when that is set: the ``suite`` runner sets it and prints
the file's new lines while a notebook runs, so a headless ``make reproduce`` is never silent.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Optional

__all__ = ["Progress", "log", "milestone", "PROGRESS_ENV"]

PROGRESS_ENV = "FFN_PROGRESS_FILE"


def log(msg: str, enabled: bool = True) -> None:
    if enabled:
        print(msg, flush=True)


def milestone(msg: str, enabled: bool = True, where: str | os.PathLike = "") -> None:
    """:func:`log`, plus one timestamped line appended to ``$FFN_PROGRESS_FILE``, prefixed ``where:``
    (a run dir is written relative to the progress file's folder, e.g. ``models/uniformer_xs/st_8_e12``)."""
    if not enabled:
        return
    log(msg)
    path = os.environ.get(PROGRESS_ENV)
    if path:
        if isinstance(where, os.PathLike):
            try:
                where = os.path.relpath(os.path.abspath(where), os.path.dirname(os.path.abspath(path)))
            except ValueError:  # another drive (Windows)
                where = os.fspath(where)
        try:
            with open(path, "a", encoding="utf-8") as f:
                f.write(f"{time.strftime('%H:%M:%S')} {where + ': ' if where else ''}{msg}\n")
        except OSError:
            pass  # progress is a convenience: never fail a run over it


class Progress:
    """``update(step, text)`` after each step; ``close()`` at the end of the epoch."""

    def __init__(self, total: int, desc: str, log_every: int, enabled: bool = True,
                 interactive: Optional[bool] = None):
        self.total, self.desc, self.log_every, self.enabled = total, desc, max(1, log_every), enabled
        self.interactive = sys.stderr.isatty() if interactive is None else interactive
        self.bar = None
        if enabled and self.interactive:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)

    def wants_text(self, step: int) -> bool:
        """Whether ``update(step, ...)`` will show text (so callers compute it only then)."""
        if not self.enabled:
            return False
        if self.bar is not None:
            return step % max(1, min(self.log_every, 10)) == 0 or step == self.total
        return step % self.log_every == 0 or step == self.total

    def update(self, step: int, text: str = "") -> None:
        """``step`` is 1-based (steps done)."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            if text:
                self.bar.set_postfix_str(text, refresh=False)
        elif text:
            print(f"{self.desc} step {step}/{self.total} {text}", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
