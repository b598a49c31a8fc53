"""DataLoaders for training and evaluation, reproducible per (seed, epoch) and across ranks.

Training order: a ``DistributedSampler`` (also for one process, ``num_replicas=1``) shuffles with
``seed + epoch`` (``set_epoch`` every epoch); rank ``r`` takes every ``world``-th index, so with the
same *global* batch the samples of a global step are the same set for 1 or N processes.

Training augmentation: :class:`PerSampleSeed` seeds torch's CPU generator from ``(seed, epoch, index)``
just before each ``__getitem__`` (the dataset draws its TSN offsets, crop and flip from torch's
global RNG only) and restores the previous generator state afterwards. A sample is therefore a pure
function of ``(seed, epoch, index)``: the same for any ``num_workers``, any world size, and a run
interrupted and resumed at an epoch boundary; the model's own randomness (dropout) is untouched.

Evaluation: :class:`ShardSampler` gives rank ``r`` the indices ``r, r + world, ...`` in order, with no
padding (``DistributedSampler`` would repeat samples to even out the shards and bias the accuracy),
so summed counts are exact.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from .distributed import DistInfo

__all__ = ["PerSampleSeed", "ShardSampler", "ResumableSampler", "build_train_loader", "build_eval_loader",
           "sample_seed"]


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed derived from ``(seed, epoch, index)`` (numpy ``SeedSequence`` mixing)."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), int(index)]).generate_state(2, np.uint64)[0]
               >> np.uint64(1))


class PerSampleSeed(Dataset):
    """Wraps a dataset so that sample ``i`` of epoch ``e`` is drawn with torch seeded by ``(seed, e, i)``."""

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed, self.epoch = dataset, int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        gen = torch.default_generator
        saved = gen.get_state()
        gen.manual_seed(sample_seed(self.seed, self.epoch, index))
        try:
            return self.dataset[index]
        finally:
            gen.set_state(saved)

    def __getattr__(self, name):  # num_classes, class_names, bad_videos, frames ... of the wrapped dataset
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)


class ResumableSampler(DistributedSampler):
    """A ``DistributedSampler`` that can start an epoch part-way: ``skip(n)`` leaves out the first
    ``n`` indices of this rank's order for the next pass only (a mid-epoch resume: the remaining
    batches are exactly those an uninterrupted epoch would have drawn). ``set_epoch`` clears it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.start = 0

    def skip(self, n: int) -> None:
        if not 0 <= n <= self.num_samples:
            raise ValueError(f"ResumableSampler.skip({n}): expected 0..{self.num_samples}")
        self.start = int(n)

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.start = 0

    def __iter__(self):
        it = super().__iter__()
        for _ in range(self.start):
            next(it)
        return it

    def __len__(self) -> int:
        return self.num_samples - self.start


class ShardSampler(Sampler):
    """Indices ``rank, rank + world, ...`` in order; no padding, no shuffling (evaluation)."""

    def __init__(self, n: int, rank: int = 0, world_size: int = 1):
        self.indices = list(range(rank, n, world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def _loader_kwargs(num_workers: int, device: torch.device) -> dict:
    kw = {"num_workers": num_workers, "pin_memory": device.type == "cuda"}
    if num_workers > 0:
        kw.update(persistent_workers=False, prefetch_factor=2, timeout=600)
    return kw


def build_train_loader(dataset: Dataset, cfg, dist: DistInfo, device: torch.device) -> tuple[DataLoader, PerSampleSeed]:
    """Shuffled, ``drop_last`` loader of ``cfg.batch_size / world`` clips per rank per step.

    ``cfg.batch_size`` is the *global* batch (as in the paper's recipes: "total batch 32 on 2
    GPUs"); it must divide by the world size. Call ``loader.sampler.set_epoch(e)`` and
    ``wrapped.set_epoch(e)`` (see :func:`set_epoch`) before each epoch.
    """
    if cfg.batch_size % dist.world_size:
        raise ValueError(f"batch_size={cfg.batch_size}: the global batch must divide by the number of "
                         f"processes ({dist.world_size})")
    per_rank = cfg.batch_size // dist.world_size
    if len(dataset) < cfg.batch_size:
        raise ValueError(f"training list {cfg.train_list_path} has {len(dataset)} videos, fewer than one batch "
                         f"(batch_size={cfg.batch_size}): lower batch_size or use more data")
    wrapped = PerSampleSeed(dataset, cfg.seed)
    sampler = ResumableSampler(wrapped, num_replicas=dist.world_size, rank=dist.rank, shuffle=True,
                               seed=cfg.seed, drop_last=True)
    gen = torch.Generator().manual_seed(cfg.seed)
    loader = DataLoader(wrapped, batch_size=per_rank, sampler=sampler, drop_last=True, generator=gen,
                        **_loader_kwargs(cfg.num_workers, device))
    return loader, wrapped


def set_epoch(loader: DataLoader, epoch: int, seed: int) -> None:
    """Re-seed everything that depends on the epoch: sampler order, per-sample seeds, worker base seed."""
    loader.sampler.set_epoch(epoch)
    loader.dataset.set_epoch(epoch)
    loader.generator.manual_seed(sample_seed(seed, epoch, 2**32))  # indices are < 2**32: no clash


def build_eval_loader(dataset: Dataset, batch_size: int, num_workers: int, dist: DistInfo,
                      device: torch.device) -> DataLoader:
    sampler = ShardSampler(len(dataset), dist.rank, dist.world_size)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, shuffle=False, drop_last=False,
                      generator=torch.Generator().manual_seed(0), **_loader_kwargs(num_workers, device))
