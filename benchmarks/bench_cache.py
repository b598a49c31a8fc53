"""Decode vs persisted decoded-video cache: ``python benchmarks/bench_cache.py [--params params/cpu.yaml]``.

Builds the train and val datasets of the params file (``cache_videos`` on) three times in one
process, each time after dropping the process cache: decoding every video (``persist_video_cache``
off), then with the persisted cache on (the first such build writes ``<data_root>/.decoded/`` if it
is not there yet), then again (it maps the file). Prints the seconds and the ratio to decoding.
"""
from __future__ import annotations

import argparse
import time

from ffn_core.config import load_config
from ffn_core.data import build_dataset
from ffn_core.data.datasets import clear_video_cache


def build_seconds(cfg) -> float:
    clear_video_cache()
    t = time.perf_counter()
    for split in ("train", "val"):
        build_dataset(cfg, split)
    return time.perf_counter() - t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--params", default="params/cpu.yaml")
    a = p.parse_args(argv)
    cfg = load_config(a.params).replace(cache_videos=True)
    decode = build_seconds(cfg.replace(persist_video_cache=False))
    print(f"decode every video (persist_video_cache=false): {decode:.1f} s")
    first = build_seconds(cfg.replace(persist_video_cache=True))
    print(f"persisted cache, first build (writes it unless present): {first:.1f} s")
    mapped = build_seconds(cfg.replace(persist_video_cache=True))
    print(f"persisted cache, mapped: {mapped:.1f} s ({mapped / max(decode, 1e-9):.3f}x decoding)")
    clear_video_cache()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
