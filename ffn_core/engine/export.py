"""``python -m ffn_core export --checkpoint best.pt --frames 8 --format {torchscript,onnx} --out model8.onnx``.

Writes ONE stream of a trained model as a plain single-T network (:mod:`ffn_core.models.export`):
the stream's private norms become the plain norms and are folded into the adjacent convolutions,
the weight alteration is folded into the kernel it feeds, and the result takes clips
``(B, T, 3, H, W)`` (B free, T fixed, H = W = the checkpoint's ``crop_size`` unless ``--size``) and
returns logits ``(B, K)`` - with the parameter count and GMACs of the ST model of that architecture
(before norm folding: exactly the ST model's parameters; after: fewer, since the norms are gone).
``--frames`` may be any count: the stream is the one evaluation would route it to (nearest trained,
ties higher), run on that many frames.

Before writing, the exported module is checked against the FFN stream on a random clip (max
absolute logit difference <= ``--atol``, default 1e-4), and the written file is loaded back
(``torch.jit.load`` / onnxruntime) and checked again; a failure is one ``error:`` line, exit 2. A
side file ``<out>.json`` records frames, stream, input size, normalisation, class names, GMACs,
parameters, what was folded and what was kept, and the measured differences. The file is written
atomically (temp file + rename). ONNX needs ``pip install .[export]`` (onnx, onnxscript, onnxruntime).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

import torch

from ffn_core.atomic import atomic_path, atomic_write_text
from ffn_core.config import ConfigError

from .cli import one_line

__all__ = ["export_stream", "main"]


def _single_t_model(cfg, num_classes: int, stream: int):
    from .checkpoint import build_model

    return build_model(cfg, num_classes, (stream,), pretrained="")


def export_stream(checkpoint: str | Path, frames: int, fmt: str, out: str | Path, *, size: Optional[int] = None,
                  fold: bool = True, atol: float = 1e-4, seed: int = 0) -> dict:
    """Export stream ``route(frames)`` of ``checkpoint`` to ``out``; returns the side file's dict."""
    from ffn_core.models import count_parameters, gmacs_per_clip
    from ffn_core.models.export import ChannelScale, ExportError, ExportedStream, fold_norms, stream_into

    from .checkpoint import load_checkpoint

    if fmt not in ("torchscript", "onnx"):
        raise ConfigError(f"--format {fmt!r}: expected torchscript or onnx")
    if not isinstance(frames, int) or frames < 1:
        raise ConfigError(f"--frames {frames!r}: expected a positive int")
    model, cfg = load_checkpoint(checkpoint)
    stream = model.route(frames)
    size = int(size or cfg.crop_size)
    st = _single_t_model(cfg, int(model.num_classes), stream).eval()
    plain_params, plain_gmacs = count_parameters(st), gmacs_per_clip(st, frames, size)  # before any change
    report = stream_into(model, st, stream)
    exported = ExportedStream(st, stream, num_frames=frames).eval()
    x = torch.randn(2, frames, 3, size, size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ref = model(x, stream=stream)
        folded = fold_norms(exported, x[:1]) if fold else {"after_conv": [], "before_conv": [], "kept": []}
        diff_module = (exported(x) - ref).abs().max().item()
    if not diff_module <= atol:
        raise ExportError(f"export: the single-T module differs from stream {stream} by {diff_module:.3g} > "
                          f"--atol {atol} (please report this model: {cfg.model})")
    out = Path(out)
    with atomic_path(out) as tmp:  # replaces `out` only once the file loaded back matches the stream
        if fmt == "torchscript":
            import warnings

            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")  # TracerWarnings: shape checks fold to constants (T is fixed)
                traced = torch.jit.trace(exported, x[:1], check_trace=False)
                traced.save(str(tmp))
                loaded = torch.jit.load(str(tmp))(x).float()
        else:
            loaded = _export_onnx(exported, x, str(tmp))
        diff_file = (loaded - ref).abs().max().item()
        if not diff_file <= atol:
            raise ExportError(f"export: {out} (as loaded back) differs from stream {stream} by {diff_file:.3g} "
                              f"> --atol {atol}")
    info = {
        "file": str(out), "format": fmt, "checkpoint": str(checkpoint), "model": cfg.model,
        "frames": frames, "stream": stream, "trained_frames": list(model.frames),
        "input": {"shape": ["B", frames, 3, size, size], "layout": "clips (B, T, 3, H, W), float32",
                  "mean": list(getattr(getattr(model, "model_cfg", None), "mean", []) or []),
                  "std": list(getattr(getattr(model, "model_cfg", None), "std", []) or [])},
        "class_names": list(getattr(model, "class_names", []) or []),
        "num_classes": int(model.num_classes),
        "gmacs": gmacs_per_clip(exported, frames, size), "gmacs_st_model": plain_gmacs,
        "params": count_parameters(exported) + sum(m.scale.numel() for m in exported.modules()
                                                   if isinstance(m, ChannelScale)),
        "params_st_model": plain_params,
        "weight_alteration": {"folded": len(report["folded"]), "kept_as_scale": report["kept"]},
        "norms": {"folded_after_conv": len(folded["after_conv"]), "folded_before_conv": len(folded["before_conv"]),
                  "kept": folded["kept"]},
        "dropped_keys": len(report["dropped"]),
        "max_abs_diff": {"module": diff_module, "file": diff_file},
    }
    side = out.with_name(out.name + ".json")
    atomic_write_text(side, json.dumps(info, indent=1) + "\n")
    return info


def _export_onnx(module, x: torch.Tensor, path: str) -> torch.Tensor:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError("--format onnx needs onnx, onnxscript and onnxruntime: pip install '.[export]'") from None
    import warnings

    batch = torch.export.Dim("batch", min=1, max=1024)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, (x,), dynamo=True, input_names=["clips"], output_names=["logits"],
                                    dynamic_shapes={"clips": {0: batch}}, verbose=False, external_data=False)
        program.save(path)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return torch.from_numpy(sess.run(None, {"clips": x.numpy()})[0])


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ffn_core export", description=__doc__.split("\n\n")[1])
    p.add_argument("--checkpoint", required=True, help="best.pt / last.pt written by train")
    p.add_argument("--frames", type=int, required=True, help="frame count of the input (its stream is exported)")
    p.add_argument("--format", choices=("torchscript", "onnx"), required=True)
    p.add_argument("--out", required=True, help="output file (.pt for TorchScript, .onnx)")
    p.add_argument("--size", type=int, default=None, help="input height = width (default: the checkpoint's crop_size)")
    p.add_argument("--no-fold-norms", action="store_true", help="keep the BatchNorms as separate ops")
    p.add_argument("--atol", type=float, default=1e-4, help="max |logit difference| to the FFN stream")
    a = p.parse_args(argv)
    from ffn_core.models.export import ExportError

    from .checkpoint import CheckpointError

    try:
        info = export_stream(a.checkpoint, a.frames, a.format, a.out, size=a.size, fold=not a.no_fold_norms,
                             atol=a.atol)
    except (ConfigError, CheckpointError, ExportError, FileNotFoundError, ValueError) as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    print(f"wrote {info['file']} ({info['format']}): {info['model']} stream {info['stream']} at {info['frames']} "
          f"frames, input {tuple(info['input']['shape'])}; {info['params']:,} parameters (ST model "
          f"{info['params_st_model']:,} before norm folding), {info['gmacs']:.4f} GMACs (ST model "
          f"{info['gmacs_st_model']:.4f}); WA folded {info['weight_alteration']['folded']}, norms folded "
          f"{info['norms']['folded_after_conv'] + info['norms']['folded_before_conv']}, kept "
          f"{len(info['norms']['kept'])}; max |diff| {info['max_abs_diff']['file']:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
