"""Would *packed streams* make an FFN step cheaper? Every shared convolution of a model, measured two ways.

    python benchmarks/bench_packed.py                                  # tsm_tiny_s2, 32 px, batch 32
    python benchmarks/bench_packed.py --model tsm_r50 --size 112 --batch 4

An FFN step runs each shared convolution once per stream, on B*4, B*8 and B*16 frames. Packing runs
it once on the B*28 frames concatenated along the batch axis (bigger GEMMs, fewer calls) but has to
concatenate the streams' inputs and split the output again wherever a private norm, the weight
alteration or the temporal shift needs one stream alone - in a ResNet that is at every convolution.
This script times, for every convolution of the model (its real input shapes, recorded with forward
hooks on one stream), forward + backward of

* ``separate``: the convolution on each stream's input, one call per stream (today's step);
* ``packed``: ``cat`` of the three inputs, one call, ``split`` of the output (the same gradients);

and prints the sums and the ratio packed / separate, in one run. A ratio below 1 is the most a
packed implementation could save on the convolutions (norms and the rest do not change).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from ffn_core.models import create_model, to_channels_last


def conv_shapes(model: nn.Module, clip: torch.Tensor) -> list[tuple[nn.Conv2d, tuple]]:
    """``[(conv, input shape per frame)]`` of every Conv2d in one forward of ``clip``."""
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append((m, tuple(i[0].shape[1:]))))
             for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(clip)
    for h in hooks:
        h.remove()
    return seen


def _time(fn, iters: int, warmup: int = 2, device: torch.device = torch.device("cpu")) -> float:
    times = []
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--model", default="tsm_tiny_s2")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--frames", default="4,8,16")
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--nchw", action="store_true", help="NCHW instead of channels_last")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    frames = [int(t) for t in a.frames.split(",")]
    model = create_model(a.model, num_classes=10, frames=(max(frames),)).to(device).train()
    if not a.nchw:
        model = to_channels_last(model)
    fmt = torch.contiguous_format if a.nchw else torch.channels_last
    shapes = conv_shapes(model, torch.randn(1, 1, 3, a.size, a.size, device=device))
    sep_total = pack_total = 0.0
    print(f"device {device}, model {a.model}, {a.size} px, batch {a.batch}, frames {frames}, {a.threads} thread(s), "
          f"{'NCHW' if a.nchw else 'channels_last'}; median of {a.iters}")
    print(f"{'conv':<34}{'input':>16}{'separate ms':>13}{'packed ms':>11}{'ratio':>7}")
    for conv, shape in shapes:
        xs = [torch.randn(a.batch * t, *shape, device=device).contiguous(memory_format=fmt).requires_grad_(True) for t in frames]

        def separate():
            outs = [conv(x) for x in xs]
            torch.autograd.backward(outs, [torch.ones_like(o) for o in outs])

        def packed():
            out = conv(torch.cat(xs))
            parts = out.split([x.shape[0] for x in xs])
            torch.autograd.backward(parts, [torch.ones_like(o) for o in parts])

        ts, tp = _time(separate, a.iters, device=device), _time(packed, a.iters, device=device)
        sep_total, pack_total = sep_total + ts, pack_total + tp
        name = f"{conv.in_channels}->{conv.out_channels} k{conv.kernel_size[0]} s{conv.stride[0]}"
        print(f"{name:<34}{'x'.join(map(str, shape)):>16}{1000 * ts:13.2f}{1000 * tp:11.2f}{tp / ts:7.2f}")
    print(f"{'all convolutions':<50}{1000 * sep_total:13.1f}{1000 * pack_total:11.1f}{pack_total / sep_total:7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
