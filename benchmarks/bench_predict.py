"""Inference latency per frame count: the FFN stream vs the exported single-T model, in one run.

    python benchmarks/bench_predict.py                                   # tsm_tiny_s2, 32 px
    python benchmarks/bench_predict.py --model tsm_r50 --size 224 --iters 5

For every frame count of ``--frames`` it times batch-``--batch`` forward passes (median of
``--iters`` after 2 warm-ups, ``torch.no_grad``, eval mode, ``--threads`` intra-op threads) of

* ``ffn``: the FFN model called as ``model(x)`` (routing, ``use_stream``, private norms, the weight
  alteration folded per call into conv1's kernel: what ``predict`` and ``eval`` run);
* ``exported``: the same stream after ``models.export`` (plain single-T model, norms and WA folded),
  eager PyTorch;
* ``torchscript``: that module traced (``torch.jit.trace``);
* ``onnxruntime``: that module exported with ``torch.onnx.export(dynamo=True)`` and run by
  onnxruntime's CPU provider with ``--threads`` intra-op threads (skipped without onnxruntime);

and prints each in ms with its ratio to ``ffn`` measured in the same run. Weights are random (the
latency does not depend on them); decode and transforms are not included (see bench_data.py).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

from ffn_core.models import create_model, gmacs_per_clip
from ffn_core.models.export import ExportedStream, fold_norms, stream_into


def _time(fn, x, iters: int) -> float:
    with torch.no_grad():
        for _ in range(2):
            fn(x)
        ts = []
        for _ in range(iters):
            t0 = time.perf_counter()
            fn(x)
            ts.append(time.perf_counter() - t0)
    return 1000 * statistics.median(ts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="tsm_tiny_s2")
    ap.add_argument("--frames", type=int, nargs="+", default=[4, 8, 16])
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--classes", type=int, default=174)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
    frames = tuple(sorted(a.frames))
    ffn = create_model(a.model, num_classes=a.classes, frames=frames).eval()
    print(f"{a.model}, {a.size} px, batch {a.batch}, {a.threads} thread(s), torch {torch.__version__}"
          + (f", onnxruntime {ort.__version__}" if ort else ", no onnxruntime"))
    print(f"{'T':>3} {'GMACs':>8} {'ffn ms':>9} {'exported':>14} {'torchscript':>14} {'onnxruntime':>14}")
    for T in frames:
        x = torch.randn(a.batch, T, 3, a.size, a.size)
        st = create_model(a.model, num_classes=a.classes, frames=(T,)).eval()
        stream_into(ffn, st, T)
        exp = ExportedStream(st, T).eval()
        with torch.no_grad():
            fold_norms(exp, x[:1])
        row = {"ffn": _time(ffn, x, a.iters), "exported": _time(exp, x, a.iters)}
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            row["torchscript"] = _time(torch.jit.trace(exp, x, check_trace=False), x, a.iters)
            if ort is not None:
                with tempfile.TemporaryDirectory() as d:
                    path = str(Path(d) / "m.onnx")
                    torch.onnx.export(exp, (x,), dynamo=True, input_names=["clips"], output_names=["logits"],
                                      verbose=False, external_data=False).save(path)
                    so = ort.SessionOptions()
                    so.intra_op_num_threads, so.inter_op_num_threads = a.threads, 1
                    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
                    feed = {"clips": x.numpy()}
                    row["onnxruntime"] = _time(lambda _: sess.run(None, feed), x, a.iters)
        base = row["ffn"]
        cells = [f"{row[k]:8.2f} ({row[k] / base:.2f}x)" if k in row else f"{'-':>14}"
                 for k in ("exported", "torchscript", "onnxruntime")]
        print(f"{T:>3} {gmacs_per_clip(st, T, a.size):8.3f} {base:9.2f} " + " ".join(cells), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
