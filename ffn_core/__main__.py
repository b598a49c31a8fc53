"""Command line: ``python -m ffn_core {synth,prepare,train,eval,predict,export,split-calib,suite,models} ...``.

Each sub-command lives in its own module and is imported lazily, so ``--help`` stays fast.
"""
from __future__ import annotations

import sys

COMMANDS = {
    "synth": ("ffn_core.data.synthetic", "generate the embedded synthetic benchmark"),
    "prepare": ("ffn_core.data.prepare", "turn an official dataset release into TSN lists"),
    "train": ("ffn_core.engine.cli", "train a model (ST, FFN, baselines) from params + key=value"),
    "eval": ("ffn_core.engine.cli", "cross-evaluate checkpoints at any frame counts"),
    "predict": ("ffn_core.engine.predict", "classify video files / frame folders at a frame count, budget or cascade"),
    "export": ("ffn_core.engine.export", "write one stream as a plain TorchScript / ONNX model (norms, WA folded)"),
    "split-calib": ("ffn_core.data.calib", "hold out a class-stratified calib.txt from a training list"),
    "suite": ("ffn_core.suite", "run the notebook chain with papermill"),
    "models": ("ffn_core.models.accounting", "list the registered models: parameters and GMACs per clip"),
}


def _usage() -> str:
    lines = ["usage: python -m ffn_core COMMAND [args]", "", "commands:"]
    lines += [f"  {name:<12} {doc}" for name, (_, doc) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        print(f"error: unknown command {cmd!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    import importlib

    module = importlib.import_module(COMMANDS[cmd][0])
    if module.__name__ == "ffn_core.engine.cli":
        result = module.main([cmd, *rest])
    else:
        result = module.main(rest)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
