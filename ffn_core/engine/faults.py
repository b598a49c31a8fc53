"""What a training run does when something goes wrong: signals, non-finite numbers, a busy run dir.

* :class:`StopSignals` - SIGTERM (what SLURM and Kubernetes send before preemption) and SIGINT
  (Ctrl-C) set a flag instead of killing the process; the training loop checks it at every step
  boundary, writes a mid-epoch checkpoint (the sampler position included, so ``resume=true``
  continues from that step) and ends with :class:`Interrupted`, naming the checkpoint. A second
  signal ends the process at once (the default action of that signal).
* :class:`NonFiniteGuard` - checks every step's loss terms (and, without an fp16 GradScaler, the
  gradient norm) for NaN/inf. ``on_nonfinite=raise``: :class:`NonFiniteError` naming the epoch,
  the step and the non-finite terms (``kl_4`` = the 4-frame stream). On CUDA the check is a flag on
  the device, read at the next point where the loop synchronises anyway (a log line, the end of the
  epoch), so it adds no per-step host sync; on CPU it is read at once. ``skip_step``: the update
  of that step is skipped (and counted); deciding that needs the flag before ``optimizer.step``,
  i.e. one host sync per step on CUDA.
* :class:`RunLock` - an exclusive ``flock`` on ``<out_dir>/.lock`` for the life of a run: a second
  run pointed at the same folder refuses with the first one's pid instead of interleaving
  checkpoints. The kernel drops the lock when a process dies, so a killed run never leaves a
  stale lock behind.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
from pathlib import Path
from typing import Mapping, Optional

import torch

from ffn_core.config import ConfigError

__all__ = ["Interrupted", "NonFiniteError", "RunInUseError", "StopSignals", "NonFiniteGuard", "RunLock"]


class Interrupted(RuntimeError):
    """Training stopped on a signal after writing ``checkpoint`` (resume with ``resume=true``)."""

    def __init__(self, signum: int, checkpoint: Path, epoch: int, step: int):
        self.signum, self.checkpoint, self.epoch, self.step = signum, Path(checkpoint), epoch, step
        name = signal.Signals(signum).name
        super().__init__(f"stopped by {name} at epoch {epoch + 1} step {step}: checkpoint {checkpoint}; "
                         "run again with resume=true to continue from that step")


class NonFiniteError(FloatingPointError):
    """A loss term or the gradient norm was NaN or infinite (``on_nonfinite=raise``)."""


class RunInUseError(ConfigError):
    """``out_dir`` is held by another running process."""


class StopSignals:
    """Turn SIGTERM / SIGINT into a flag for the duration of a ``with`` block (main thread only)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signum: Optional[int] = None
        self._saved: dict = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:  # the second signal: the default action, now
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.signum = signum
        print(f"\n{signal.Signals(signum).name} received: stopping after this step and writing a checkpoint "
              "(send it again to stop at once)", flush=True)

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._saved[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._saved.items():
            signal.signal(s, h)
        self._saved.clear()


class NonFiniteGuard:
    """Per-step NaN/inf check of the loss terms and the gradient norm (module docstring)."""

    def __init__(self, mode: str, device: torch.device):
        if mode not in ("raise", "skip_step"):
            raise ValueError(f"on_nonfinite={mode!r}: expected 'raise' or 'skip_step'")
        self.mode, self.device = mode, device
        self.deferred = device.type == "cuda" and mode == "raise"
        self.skipped = 0
        self._first: Optional[torch.Tensor] = None   # step of the first bad step (device), -1: none
        self._terms: Optional[torch.Tensor] = None   # its terms
        self._names: list = []

    @staticmethod
    def grad_norm(model: torch.nn.Module) -> torch.Tensor:
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if not grads:
            return torch.zeros(())
        return torch.nn.utils.get_total_norm(grads)

    def check(self, epoch: int, step: int, terms: Mapping[str, torch.Tensor],
              grad_norm: Optional[torch.Tensor]) -> bool:
        """Record step ``step``; returns False when this step's update must be skipped (``skip_step``).
        Raises :class:`NonFiniteError` (``raise``) now, or at the next :meth:`flush` on CUDA."""
        names = list(terms) + (["grad_norm"] if grad_norm is not None else [])
        values = torch.stack([v.detach().float().reshape(()) for v in terms.values()]
                             + ([grad_norm.detach().float().reshape(()).to(self.device)] if grad_norm is not None else []))
        bad = ~torch.isfinite(values).all()
        if self.deferred:
            if self._first is None or self._names != names:
                self._names = names
                self._first = torch.full((), -1, dtype=torch.long, device=values.device)
                self._terms = torch.zeros_like(values)
            take = bad & (self._first < 0)
            self._first = torch.where(take, torch.full_like(self._first, step), self._first)
            self._terms = torch.where(take, values, self._terms)
            self._epoch = epoch
            return True
        if not bool(bad):
            return True
        text = self._describe(epoch, step, names, values)
        if self.mode == "raise":
            raise NonFiniteError(text + "; lower lr, enable clip_grad, or set on_nonfinite=skip_step")
        self.skipped += 1
        if self.skipped <= 10:
            print(f"warning: {text}: update skipped (on_nonfinite=skip_step; {self.skipped} so far)", flush=True)
        return False

    def flush(self) -> None:
        """Read the deferred flag (call where the loop synchronises anyway)."""
        if self._first is None:
            return
        step = int(self._first)
        if step >= 0:
            raise NonFiniteError(self._describe(self._epoch, step, self._names, self._terms.cpu())
                                 + "; lower lr, enable clip_grad, or set on_nonfinite=skip_step")

    @staticmethod
    def _describe(epoch: int, step: int, names: list, values: torch.Tensor) -> str:
        shown = ", ".join(f"{n}={float(v):.4g}" for n, v in zip(names, values.tolist()))
        bad = [n for n, v in zip(names, values.tolist()) if not torch.isfinite(torch.tensor(v))]
        streams = sorted({n.split("_")[-1] for n in bad if n.split("_")[-1].isdigit()}, key=int)
        where = f" (stream {', '.join(streams)} frames)" if streams else ""
        return f"epoch {epoch + 1} step {step}: non-finite {', '.join(bad)}{where}: {shown}"


class RunLock:
    """Exclusive lock on ``<run_dir>/.lock`` (module docstring); ``enabled=False`` does nothing
    (ranks other than 0)."""

    def __init__(self, run_dir: str | os.PathLike, enabled: bool = True):
        self.path = Path(run_dir) / ".lock"
        self.enabled = enabled
        self._fd: Optional[int] = None

    def __enter__(self) -> "RunLock":
        if not self.enabled:
            return self
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = ""
            with contextlib.suppress(OSError):
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
            os.close(fd)
            raise RunInUseError(f"out_dir={self.path.parent}: another run is using it (pid {holder or '?'}); "
                                "wait for it to finish, stop it, or choose another out_dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            import fcntl

            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
