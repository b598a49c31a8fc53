"""``python -m ffn_core train`` and ``python -m ffn_core eval`` (called as ``main(["train", ...])``).

::

    python -m ffn_core train --params params/smoke.yaml strategy=ffn frames=4,8,16 out_dir=runs/x
    torchrun --nproc_per_node=2 -m ffn_core train --params params/cpu.yaml out_dir=runs/x
    python -m ffn_core eval --checkpoint runs/x/best.pt [--checkpoint runs/y/best.pt ...] \\
        --frames 2,4,6,8,12,16 --out runs/eval [--ensemble] [--save-logits] [num_clips=2 test_crops=3 ...]

``eval`` writes ``OUT/cross_eval.csv`` (rows: checkpoints, columns: frame counts, top-1 %) and
``OUT/cross_eval.json``; trailing ``key=value`` pairs override the checkpoints' data/eval keys.

Exit codes: 0 done; 2 an error in the input - a config key, a checkpoint, missing data, a list
line, an unreadable video under ``on_bad_sample=raise``, a non-finite loss under
``on_nonfinite=raise``, an ``out_dir`` in use - printed as ONE ``error:`` line (no traceback; the
message names the file, line or key); 128 + N after signal N (SIGTERM: 143, SIGINT: 130), once
the checkpoint it names is written.
"""
from __future__ import annotations

import argparse
import sys

from ffn_core.config import ConfigError, load_config, parse_cli_overrides

__all__ = ["main"]


def _train(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m ffn_core train",
                                description="Train a model; key=value pairs override the params file.")
    p.add_argument("--params", default=None, help="params YAML (flat keys; see ffn_core/config.py)")
    p.add_argument("overrides", nargs="*", help="key=value, e.g. strategy=ffn frames=4,8,16 out_dir=runs/x")
    a = p.parse_args(argv)
    from .train import fit

    cfg = load_config(a.params, **parse_cli_overrides(a.overrides))
    fit(cfg)
    return 0


def _eval(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m ffn_core eval",
                                description="Cross-evaluate checkpoints at any frame counts.")
    p.add_argument("--checkpoint", action="append", required=True, help="a best.pt / last.pt (repeatable)")
    p.add_argument("--frames", required=True, help="frame counts to evaluate, e.g. 2,4,6,8,12,16")
    p.add_argument("--out", required=True, help="folder for cross_eval.csv / cross_eval.json")
    p.add_argument("--ensemble", action="store_true", help="add a row averaging all checkpoints' softmax")
    p.add_argument("--save-logits", action="store_true", help="also write per-sample logits_<name>_T<T>.npz")
    p.add_argument("--device", default=None, help="auto | cpu | cuda[:N] (default: the checkpoint's)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("overrides", nargs="*", help="data/eval key=value, e.g. data_root=DIR num_clips=2 test_crops=3")
    a = p.parse_args(argv)
    from .evaluate import cross_evaluate

    if a.batch_size is not None and a.batch_size < 1:
        raise ConfigError(f"--batch-size {a.batch_size}: expected an integer >= 1")
    result = cross_evaluate(a.checkpoint, a.frames, a.out, ensemble=a.ensemble, device=a.device,
                            overrides=parse_cli_overrides(a.overrides), save_logits=a.save_logits,
                            batch_size=a.batch_size)
    frames = result["frames"]
    print("top-1 (%)  " + " ".join(f"{T:>7}" for T in frames))
    for r in result["rows"]:
        print(f"{r['name'][:10]:<10} " + " ".join(f"{r['top1'][T]:7.2f}" for T in frames))
    print(f"wrote {a.out}/cross_eval.csv and cross_eval.json")
    return 0


def one_line(e: BaseException) -> str:
    """The message of ``e`` on one line. An exception re-raised from a DataLoader worker carries the
    worker's traceback in its message: keep only the original message, its last line."""
    text = str(e).strip()
    if "Original Traceback" in text:
        last = text.splitlines()[-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    """``main(["train", ...])`` or ``main(["eval", ...])``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("train", "eval"):
        print("usage: python -m ffn_core {train,eval} ...  (see --help of each)", file=sys.stderr)
        return 2
    from ffn_core.data import DataError, VideoReadError

    from .checkpoint import CheckpointError
    from .faults import Interrupted, NonFiniteError

    try:
        return (_train if argv[0] == "train" else _eval)(argv[1:])
    except Interrupted as e:
        print(f"interrupted: {e}", file=sys.stderr)
        return 128 + int(e.signum)
    except (ConfigError, CheckpointError, FileNotFoundError, DataError, VideoReadError, NonFiniteError) as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
