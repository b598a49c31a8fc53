"""Is the data layer fast enough to keep the training step busy? Decode strategies, backends, workers.

    python benchmarks/bench_data.py                                   # params/cpu.yaml (cpu tier, tsm_tiny_s2)
    python benchmarks/bench_data.py --size 112 --model tsm_r50 --batch 4   # a 112 px R50 run on frame folders

Everything is measured in one run, on the same videos and the same TSN index sets:

1. **Decode strategy** (per sample, all frame counts of ``frames``, no transform): one read per
   frame count (``per-stream``: what three separate loaders would do) vs one read of the sorted,
   de-duplicated union (what ``VideoListDataset`` does), for decord, PyAV and JPEG frame folders.
2. **Loader** (``VideoListDataset`` + the training ``DataLoader``: sampling, decode, transform,
   collate, every stream) with 0, 1 and 2 worker processes, from files and from ``cache_videos``:
   ms per batch.
3. **Consumption**: the median training step of ``--model`` on random clips of that batch
   (``benchmarks/bench_train_step.py``'s FFN step). ``data %`` = the time a step waits for its batch
   over the step time: with 0 workers loading is serial (``load / (load + step)``); with ``w``
   workers it overlaps, and the wait is ``max(0, interval - step)`` where ``interval`` is the
   measured time between batches of the ``w`` workers running alone. That is a lower bound on 2
   cores: the workers then compete with the step's threads (the engine's ``data_time_s`` column in
   ``metrics.csv`` is the measured wait of a real run).

The videos are synthetic: the configured tier, or with ``--size S`` a small set rendered at S px
with JPEG frame folders beside the mp4s (``--videos`` of them, in a temporary folder).
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ffn_core.config import load_config
from ffn_core.data import build_dataset, multi_frequency_indices, open_reader, union_indices
from ffn_core.data.datasets import clear_video_cache
from ffn_core.engine.distributed import DistInfo
from ffn_core.engine.loader import build_train_loader, set_epoch


def _decode(records, root: Path, kind: str, backend: str, frames, union: bool, template="{:05d}.jpg") -> float:
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for r in records:
        sets = multi_frequency_indices(r.num_frames, frames, "train", rng=rng)
        with open_reader(str(root / r.path), kind, template=template, start_index=1, backend=backend) as reader:
            if union:
                idx, _ = union_indices(sets)
                reader.read(idx)
            else:
                for s in sets:
                    reader.read(s)
    return (time.perf_counter() - t0) / len(records)


def _dataset(cfg, frame_folders: Path | None):
    """The training dataset of ``cfg``; with ``frame_folders`` (a ``*_frames.txt`` list) the same
    videos read from their JPEG folders."""
    if frame_folders is None:
        return build_dataset(cfg, "train")
    from ffn_core.data import VideoListDataset, get_dataset_spec

    spec = dataclasses.replace(get_dataset_spec(cfg.dataset), kind="frames", template="{:05d}.jpg", start_index=1)
    return VideoListDataset(frame_folders, cfg.data_root, spec, cfg.frames, train=True, crop_size=cfg.crop_size,
                            resize=cfg.test_resize, scales=cfg.train_scales)


def _loader_ms(cfg, workers: int, batches: int, frame_folders: Path | None = None) -> float:
    ds = _dataset(cfg, frame_folders)
    loader, _ = build_train_loader(ds, cfg.replace(num_workers=workers), DistInfo(), torch.device("cpu"))
    set_epoch(loader, 0, cfg.seed)
    it = iter(loader)
    next(it)  # worker start-up and the first batch are not the steady state
    t0 = time.perf_counter()
    n = 0
    for _ in range(batches):
        try:
            next(it)
        except StopIteration:
            break
        n += 1
    del it
    return 1000 * (time.perf_counter() - t0) / max(n, 1)


def _step_ms(model_name: str, cfg, frames, iters: int) -> float:
    """Median training step (the params' amp and memory format) of the FFN on ``frames``, or of
    the ST model when ``frames`` has one entry."""
    from ffn_core.engine.step import autocast_context, forward_backward, optimizer_step
    from ffn_core.losses import MFALoss
    from ffn_core.models import create_model, to_channels_last

    model = create_model(model_name, num_classes=18, frames=tuple(frames)).train()
    if cfg.channels_last:
        model = to_channels_last(model)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    inputs = [(t, torch.randn(cfg.batch_size, t, 3, cfg.crop_size, cfg.crop_size)) for t in sorted(frames, reverse=True)]
    if len(frames) == 1:
        inputs = [(None, inputs[0][1])]
    y = torch.randint(0, 18, (cfg.batch_size,))
    loss = MFALoss() if len(frames) > 1 else (lambda z, t: (torch.nn.functional.cross_entropy(
        next(iter(z.values())).float(), t), {}))
    autocast = autocast_context(torch.device("cpu"), cfg.amp)
    times = []
    for i in range(iters + 2):
        t0 = time.perf_counter()
        forward_backward(model, inputs, y, loss, autocast=autocast)
        optimizer_step(model, opt, None)
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def _share(load_ms: float, step_ms: float, workers: int) -> float:
    """The %% of a step spent waiting for data: serial with 0 workers, the excess otherwise."""
    wait = load_ms if workers == 0 else max(0.0, load_ms - step_ms)
    return 100 * wait / (wait + step_ms)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--params", default="params/cpu.yaml")
    p.add_argument("--size", type=int, default=0, help="render --videos clips at this size with JPEG folders (0: use the params' data)")
    p.add_argument("--videos", type=int, default=64)
    p.add_argument("--samples", type=int, default=100, help="videos for the decode comparison")
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--model", default="", help="model of the step (default: the params' model)")
    p.add_argument("--batch", type=int, default=0, help="batch size (default: the params')")
    p.add_argument("--threads", type=int, default=0, help="torch threads of the step (0: the default)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = load_config(a.params)
    overrides = {"batch_size": a.batch or cfg.batch_size}
    tmp = None
    if a.size:
        from ffn_core.data.synthetic import TierSpec, generate

        tmp = tempfile.TemporaryDirectory(prefix="bench_data_")
        root = Path(tmp.name)
        spec = TierSpec("bench", num_train=a.videos, num_val=4, num_frames=48, size=a.size)
        generate(root, spec, seed=0, write_frames=True, workers=2, verbose=False)
        overrides.update(data_root=str(root), crop_size=a.size, resize=a.size, cache_videos=False, tier="")
    cfg = cfg.replace(**overrides)
    model = a.model or cfg.model
    root = Path(cfg.data_root)
    ds = build_dataset(cfg.replace(cache_videos=False), "train")
    records = ds.records[: min(a.samples, len(ds.records))]
    frames = cfg.frames
    print(f"data {root} ({len(ds)} train videos), frames {list(frames)}, crop {cfg.crop_size}, batch {cfg.batch_size}, "
          f"model {model}; {torch.get_num_threads()} torch thread(s)")
    print("\n1. decode per sample (ms): per-stream reads vs the sorted union")
    print(f"{'backend':<14}{'per-stream':>12}{'union':>10}{'ratio':>8}")
    backends = [("decord", "video", "decord"), ("pyav", "video", "pyav")]
    frame_list = root / "train_frames.txt"
    if frame_list.is_file():
        from ffn_core.data import read_list_file

        backends.append(("jpeg folders", "frames", read_list_file(frame_list)[: len(records)]))
    for name, kind, backend in backends:
        recs = backend if isinstance(backend, list) else records
        be = "decord" if isinstance(backend, list) else backend
        per = _decode(recs, root, kind, be, frames, union=False)
        uni = _decode(recs, root, kind, be, frames, union=True)
        print(f"{name:<14}{1000 * per:12.2f}{1000 * uni:10.2f}{uni / per:8.2f}")

    step = _step_ms(model, cfg, frames, iters=5)
    print(f"\n2./3. loader ms per batch of {cfg.batch_size} vs the training step ({step:.0f} ms, FFN {list(frames)}, "
          f"amp {cfg.amp})")
    print(f"{'source':<26}{'workers':>8}{'ms/batch':>10}{'data %':>8}")
    sources = [("video files", cfg.replace(cache_videos=False, video_backend="decord"), None)]
    if frame_list.is_file():
        sources.append(("jpeg folders", cfg.replace(cache_videos=False), frame_list))
    if not a.size:
        sources.append(("cache_videos (RAM)", cfg.replace(cache_videos=True), None))
    default = "cache_videos (RAM)" if cfg.cache_videos and not a.size else ("jpeg folders" if a.size else "video files")
    for name, c, folders in sources:
        for w in (0, 1, 2):
            ms = _loader_ms(c, w, a.batches, folders)
            print(f"{name:<26}{w:>8}{ms:10.1f}{_share(ms, step, w):8.1f}")
        if name == default:  # 4. every run the suite trains on this data: the FFN above, each ST-T here
            per_t = [(t, _loader_ms(c.replace(frames=(t,), strategy="st"), cfg.num_workers, a.batches, folders),
                      _step_ms(model, c, (t,), iters=5)) for t in frames]
        clear_video_cache()
    print(f"\nthe params' setting: {default}, num_workers={cfg.num_workers}")
    print("\n4. the params' setting for each single-T run (ST-T: the loader reads T frames per clip)")
    print(f"{'run':<10}{'ms/batch':>10}{'step ms':>9}{'data %':>8}")
    for t, ms, st in per_t:
        print(f"{'ST-' + str(t):<10}{ms:10.1f}{st:9.0f}{_share(ms, st, cfg.num_workers):8.1f}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
