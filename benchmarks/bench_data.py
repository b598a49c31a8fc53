"""Cost of one training sample from the data layer: decoding the video file vs ``cache_videos``.

    python benchmarks/bench_data.py                                   # params/cpu.yaml's data
    python benchmarks/bench_data.py --params params/smoke.yaml --samples 100

Measured in the same run on the same list and the same seeds: ``VideoListDataset[i]`` for the
config's frame counts (train mode: TSN sampling, the train transform, all streams), first with
every sample decoded from its file (decord / PyAV / JPEG), then with every video decoded once into
the process-wide uint8 cache (the fill time is printed separately: it is paid once per process).
Printed: ms per sample for both, the ratio, and the cache's size.
"""
from __future__ import annotations

import argparse
import time

import torch

from ffn_core.config import load_config
from ffn_core.data import build_dataset
from ffn_core.data.datasets import clear_video_cache, video_cache_nbytes


def _per_sample(ds, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        torch.manual_seed(i)
        ds[i % len(ds)]
    return (time.perf_counter() - t0) / n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--params", default="params/cpu.yaml")
    p.add_argument("--samples", type=int, default=300)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (a DataLoader worker uses 1)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    cfg = load_config(a.params)
    clear_video_cache()
    plain = build_dataset(cfg.replace(cache_videos=False), "train")
    n = min(a.samples, len(plain))
    print(f"{cfg.data_root}: {len(plain)} train videos, frames {list(cfg.frames)}, crop {cfg.crop_size}, "
          f"{n} samples, {torch.get_num_threads()} thread(s)")
    decode = _per_sample(plain, n)
    t0 = time.perf_counter()
    cached = build_dataset(cfg.replace(cache_videos=True), "train")
    fill = time.perf_counter() - t0
    size = video_cache_nbytes() / 2**20
    hit = _per_sample(cached, n)
    print(f"{'decode from file':<22}{1000 * decode:8.2f} ms/sample")
    print(f"{'cache_videos':<22}{1000 * hit:8.2f} ms/sample   (cache fill {fill:.1f} s once, {size:.0f} MiB)")
    print(f"ratio cache / decode: {hit / decode:.2f}x; per epoch of {len(plain)} samples: "
          f"{decode * len(plain):.1f} s -> {hit * len(plain):.1f} s")
    clear_video_cache()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
