"""Cost of one FFN training step vs three ST steps, and stream-by-stream vs summed backward.

    python benchmarks/bench_train_step.py                       # tiny model, CPU, 32 px
    python benchmarks/bench_train_step.py --device cuda --model tsm_r50 --size 224 --batch 8 --amp bf16

Measured in the same run, on random clips (no data loading), with the engine's own step
(``ffn_core.engine.step``: forward every stream, loss, backward, optimiser step):

* ``ST-T`` - a single-stream model trained at T frames (CE), for each T in ``--frames``;
* ``FFN summed`` - one FFN model on all streams, MFAL loss, one backward (the original code);
* ``FFN stream_backward`` - the same, back-propagated stream by stream (highest T first);
* ``FFN summed, <other layout>`` - the summed step in the other memory format (channels_last if
  ``--channels-last`` is not given, else NCHW).

Printed: median ms per step, clips/s, and on CUDA the peak allocated memory per step, with the
ratios FFN / (sum of the ST steps) and stream_backward / summed. The paper's claim is that FFN costs
about the three ST trainings together (it runs three forward/backward passes); stream_backward
should cost the same time with the peak memory of the largest stream instead of the sum.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from ffn_core.engine.step import autocast_context, forward_backward, optimizer_step
from ffn_core.losses import MFALoss
from ffn_core.models import create_model, to_channels_last


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(model, inputs, target, loss_fn, device, amp: str, stream_backward: bool, iters: int, warmup: int) -> dict:
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16" and device.type == "cuda")
    autocast = autocast_context(device, amp)
    times = []
    for i in range(warmup + iters):
        if device.type == "cuda" and i == warmup:
            torch.cuda.reset_peak_memory_stats(device)
        _sync(device)
        t0 = time.perf_counter()
        forward_backward(model, inputs, target, loss_fn, stream_backward=stream_backward, autocast=autocast,
                         scaler=scaler)
        optimizer_step(model, opt, scaler)
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    out = {"ms": 1000 * statistics.median(times)}
    if device.type == "cuda":
        out["peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def _ce(logits, target):
    (z,) = logits.values()
    return torch.nn.functional.cross_entropy(z.float(), target), {}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--model", default="tsm_tiny")
    p.add_argument("--size", type=int, default=32, help="crop size (px)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--frames", default="4,8,16")
    p.add_argument("--classes", type=int, default=18)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--amp", default="none", choices=("none", "bf16", "fp16"))
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave the default)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    frames = tuple(sorted(int(t) for t in a.frames.split(",")))
    torch.manual_seed(0)
    clips = {t: torch.randn(a.batch, t, 3, a.size, a.size, device=device) for t in frames}
    target = torch.randint(0, a.classes, (a.batch,), device=device)

    def build(fr):
        m = create_model(a.model, num_classes=a.classes, frames=fr).to(device).train()
        return to_channels_last(m) if a.channels_last else m

    print(f"device {device}, model {a.model}, {a.size} px, batch {a.batch}, frames {list(frames)}, amp {a.amp}, "
          f"{torch.get_num_threads()} CPU threads; median of {a.iters} steps after {a.warmup} warm-up")
    results = {}
    for t in frames:
        results[f"ST-{t}"] = measure(build((t,)), [(None, clips[t])], target, _ce, device, a.amp, False, a.iters, a.warmup)
    ffn = build(frames)
    inputs = [(t, clips[t]) for t in sorted(frames, reverse=True)]
    loss = MFALoss()
    results["FFN summed"] = measure(ffn, inputs, target, loss, device, a.amp, False, a.iters, a.warmup)
    results["FFN stream_backward"] = measure(ffn, inputs, target, loss, device, a.amp, True, a.iters, a.warmup)
    other = create_model(a.model, num_classes=a.classes, frames=frames).to(device).train()
    if not a.channels_last:
        other = to_channels_last(other)
    layout = "NCHW" if a.channels_last else "channels_last"
    results[f"FFN summed, {layout}"] = measure(other, inputs, target, loss, device, a.amp, False, a.iters, a.warmup)

    st_sum = sum(results[f"ST-{t}"]["ms"] for t in frames)
    st_peak = max((results[f"ST-{t}"].get("peak_mib", 0) for t in frames), default=0)
    print(f"{'step':<22}{'ms/step':>10}{'clips/s':>10}{'peak MiB':>10}")
    for name, r in results.items():
        peak = f"{r['peak_mib']:10.0f}" if "peak_mib" in r else f"{'-':>10}"
        print(f"{name:<22}{r['ms']:10.1f}{1000 * a.batch / r['ms']:10.1f}{peak}")
    print(f"{'sum of ST steps':<22}{st_sum:10.1f}")
    s, sb = results["FFN summed"], results["FFN stream_backward"]
    print(f"ratio FFN summed / sum of ST steps:       time {s['ms'] / st_sum:.2f}x")
    print(f"ratio stream_backward / summed backward:  time {sb['ms'] / s['ms']:.2f}x"
          + (f", peak memory {sb['peak_mib'] / s['peak_mib']:.2f}x" if "peak_mib" in s else ""))
    o = results[f"FFN summed, {layout}"]
    print(f"ratio FFN summed {layout} / {'channels_last' if a.channels_last else 'NCHW'}:  time {o['ms'] / s['ms']:.2f}x")
    if "peak_mib" in s:
        print(f"peak memory: FFN summed / largest ST {s['peak_mib'] / st_peak:.2f}x, "
              f"stream_backward / largest ST {sb['peak_mib'] / st_peak:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
