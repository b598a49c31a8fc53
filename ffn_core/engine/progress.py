"""Progress output: a tqdm bar when interactive, a log line every ``log_every`` steps when headless.

Headless (papermill, CI, ``torchrun`` logs: ``sys.stderr`` is not a TTY) output stays small: one line
per ``log_every`` steps plus one per epoch, because large tqdm/print floods can time out papermill's
IOPub channel (environment notes). Only rank 0 prints.
"""
from __future__ import annotations

import sys
from typing import Optional

__all__ = ["Progress", "log"]


def log(msg: str, enabled: bool = True) -> None:
    if enabled:
        print(msg, flush=True)


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
