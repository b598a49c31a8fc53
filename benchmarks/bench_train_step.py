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

Printed: median ms per step, clips/s and, on every device, the peak bytes of activations saved for
backward in one step (``torch.autograd.graph.saved_tensors_hooks``: every tensor autograd keeps,
model parameters excluded, counted once per storage while it is alive), plus the peak RSS growth of
the process during the step on CPU (sampled every 2 ms) or ``max_memory_allocated`` on CUDA; with the
ratios FFN / (sum of the ST steps) and stream_backward / summed. The paper's claim is that FFN costs
about the three ST trainings together (it runs three forward/backward passes); stream_backward
should cost the same time while keeping only one stream's activations alive at a time (ideal for
4/8/16: 16/28 of the summed step's, -43 %).

Throughput and MFU: every row also gets its achieved TFLOP/s, counting a training step as 3x the
forward FLOPs (2 FLOPs per MAC, MACs from ``ffn_core.models.accounting.gmacs_per_clip``), and, with
``--peak-tflops`` (or on a CUDA device listed in ``PEAK_BF16_TFLOPS``: the vendor's stated dense
bf16 peak), MFU = achieved / peak. ``--profile`` prints ``torch.profiler``'s top operators of one
FFN step (where the time goes beyond the three streams' own convolutions).
"""
from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

import torch

from ffn_core.engine.step import autocast_context, forward_backward, optimizer_step
from ffn_core.losses import MFALoss
from ffn_core.models import create_model, to_channels_last


#: Vendor-stated dense bf16 tensor-core peaks (TFLOP/s, no sparsity), matched against the CUDA name.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100 SXM": 989.0, "H100 80GB HBM3": 989.0, "H100 PCIe": 756.0,
                    "H100 NVL": 835.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "RTX 4090": 165.0}


def device_peak_tflops(device: torch.device, given: float) -> tuple[float, str]:
    """``(peak TFLOP/s, where it comes from)``; 0 when unknown."""
    if given:
        return given, "--peak-tflops"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, peak in PEAK_BF16_TFLOPS.items():
            if key in name:
                return peak, f"{name}: stated dense bf16 peak"
    return 0.0, ""


def train_tflop_per_clip(model, frames, size: int) -> float:
    """3x forward FLOPs of one clip through every stream in ``frames`` (TFLOP)."""
    from ffn_core.models.accounting import gmacs_per_clip

    return sum(3 * 2 * gmacs_per_clip(model, t, size=size) for t in frames) / 1e3


def profile_step(model, inputs, target, loss_fn, device, amp: str, rows: int = 15) -> None:
    from torch.profiler import ProfilerActivity, profile

    autocast = autocast_context(device, amp)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    for _ in range(2):
        forward_backward(model, inputs, target, loss_fn, autocast=autocast)
        optimizer_step(model, opt, None)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        forward_backward(model, inputs, target, loss_fn, autocast=autocast)
        optimizer_step(model, opt, None)
        _sync(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=rows))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class SavedActivations:
    """Peak bytes of the tensors autograd saves for backward (parameters excluded), per storage."""

    def __init__(self, model):
        self.params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self.live: dict = {}
        self.current = self.peak = 0

    def pack(self, t):
        st = t.untyped_storage()
        key = st.data_ptr()
        if key in self.params:
            return t
        entry = self.live.get(key)
        if entry is None:
            self.live[key] = [st.nbytes(), 1]
            self.current += st.nbytes()
            self.peak = max(self.peak, self.current)
        else:
            entry[1] += 1
        return _Saved(self, key, t)

    @staticmethod
    def unpack(h):
        return h.t if isinstance(h, _Saved) else h

    def release(self, key) -> None:
        entry = self.live[key]
        entry[1] -= 1
        if entry[1] == 0:
            self.current -= entry[0]
            del self.live[key]

    def hooks(self):
        return torch.autograd.graph.saved_tensors_hooks(self.pack, self.unpack)


class _Saved:
    __slots__ = ("owner", "key", "t")

    def __init__(self, owner, key, t):
        self.owner, self.key, self.t = owner, key, t

    def __del__(self):
        self.owner.release(self.key)


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class RSSPeak:
    """Peak resident-set growth over a ``with`` block (a thread samples /proc/self/statm)."""

    def __enter__(self):
        self.base = self.peak = _rss()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, _rss())

    @property
    def growth(self) -> int:
        return self.peak - self.base


def measure(model, inputs, target, loss_fn, device, amp: str, stream_backward: bool, iters: int, warmup: int) -> dict:
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16" and device.type == "cuda")
    autocast = autocast_context(device, amp)
    times = []

    def step():
        forward_backward(model, inputs, target, loss_fn, stream_backward=stream_backward, autocast=autocast,
                         scaler=scaler)
        optimizer_step(model, opt, scaler)

    for i in range(warmup + iters):
        if device.type == "cuda" and i == warmup:
            torch.cuda.reset_peak_memory_stats(device)
        _sync(device)
        t0 = time.perf_counter()
        step()
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    out = {"ms": 1000 * statistics.median(times)}
    if device.type == "cuda":
        out["peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    saved = SavedActivations(model)  # one more step, counted (not timed: the hooks cost time)
    with saved.hooks(), RSSPeak() as rss:
        step()
        _sync(device)
    out["saved_mib"] = saved.peak / 2**20
    if device.type == "cpu":
        out["rss_mib"] = rss.growth / 2**20
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
    p.add_argument("--peak-tflops", type=float, default=0.0, help="the device's peak TFLOP/s for MFU")
    p.add_argument("--profile", action="store_true", help="print torch.profiler's top operators of one FFN step")
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

    if a.profile:
        profile_step(ffn, inputs, target, loss, device, a.amp)
    flop = {f"ST-{t}": train_tflop_per_clip(ffn, (t,), a.size) for t in frames}
    flop.update({name: train_tflop_per_clip(ffn, frames, a.size) for name in results if name.startswith("FFN")})
    peak, peak_src = device_peak_tflops(device, a.peak_tflops)
    st_sum = sum(results[f"ST-{t}"]["ms"] for t in frames)
    st_peak = max((results[f"ST-{t}"].get("peak_mib", 0) for t in frames), default=0)
    mem = "peak MiB" if device.type == "cuda" else "RSS+ MiB"
    print(f"{'step':<26}{'ms/step':>10}{'clips/s':>10}{'saved MiB':>11}{mem:>10}{'TFLOP/s':>9}"
          + (f"{'MFU':>7}" if peak else ""))
    for name, r in results.items():
        mem_v = r.get("peak_mib", r.get("rss_mib"))
        tflops = flop[name] * a.batch / (r["ms"] / 1000)
        print(f"{name:<26}{r['ms']:10.1f}{1000 * a.batch / r['ms']:10.1f}{r['saved_mib']:11.1f}"
              + (f"{mem_v:10.0f}" if mem_v is not None else f"{'-':>10}") + f"{tflops:9.3f}"
              + (f"{100 * tflops / peak:6.1f}%" if peak else ""))
    if peak:
        print(f"MFU = achieved / {peak:.0f} TFLOP/s ({peak_src}); a step = 3x forward FLOPs")
    print(f"{'sum of ST steps':<26}{st_sum:10.1f}")
    s, sb = results["FFN summed"], results["FFN stream_backward"]
    print(f"ratio FFN summed / sum of ST steps:       time {s['ms'] / st_sum:.2f}x")
    print(f"ratio stream_backward / summed backward:  time {sb['ms'] / s['ms']:.2f}x, saved activations "
          f"{sb['saved_mib'] / s['saved_mib']:.2f}x ({100 * (sb['saved_mib'] / s['saved_mib'] - 1):+.0f} %)"
          + (f", peak memory {sb['peak_mib'] / s['peak_mib']:.2f}x" if "peak_mib" in s else ""))
    if device.type == "cpu":
        import resource

        print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB "
              "(RSS+ per step is growth over the step before it: the allocator reuses freed memory, so it is "
              "a lower bound, not a per-variant peak)")
    o = results[f"FFN summed, {layout}"]
    print(f"ratio FFN summed {layout} / {'channels_last' if a.channels_last else 'NCHW'}:  time {o['ms'] / s['ms']:.2f}x")
    if "peak_mib" in s:
        print(f"peak memory: FFN summed / largest ST {s['peak_mib'] / st_peak:.2f}x, "
              f"stream_backward / largest ST {sb['peak_mib'] / st_peak:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
