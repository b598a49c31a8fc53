"""The embedded synthetic temporal benchmark: rendering, tiers, file generation and the ``synth`` CLI.

Something-Something-like clips whose classes are defined by temporal structure (direction, order
of two events, number of back-and-forth cycles, rotation sense and speed, approach vs recede; see
:mod:`ffn_core.data.synthetic_classes` and ``docs/synthetic_benchmark.md``), rendered with random
two-tone shapes, textured drifting backgrounds, camera jitter, a static distractor and pixel noise,
so that one frame - and for the ``fine`` classes a coarse sampling - is ambiguous. This is the
dataset on which Temporal Frequency Deviation (FFN paper, Sec. 3 / Fig. 1) shows up on a CPU.

The output is real files, so the real readers and list parsing are exercised::

    out_dir/videos/{train,val,calib}/000001.mp4  H.264 (libx264 veryfast, C code paths, yuv444p, CRF 12, no B-frames)
    out_dir/frames/{train,val,calib}/000001/00001.jpg  optional JPEG folders (1-indexed), from the decoded mp4
    out_dir/train.txt, val.txt                 TSN lists: ``videos/train/000001.mp4 48 3``
    out_dir/calib.txt                          held-out clips (tiers with ``num_calib``): never trained
                                               on, never reported; 06 picks the cascade's chain on them
    out_dir/train_frames.txt, val_frames.txt   the same for the JPEG folders (only with write_frames)
    out_dir/classes.txt                        one class name per line, line index = label
    out_dir/synthetic.json                     tier, seed, counts, version, seconds - written LAST

Sample ``i`` of a split draws everything from ``numpy.random.default_rng([seed, split_code, i])``,
so the output is deterministic (byte-identical mp4s) and can be produced by any number of worker
processes. Every file is written to a temporary name and renamed, so an interrupted run can simply
be rerun: finished files are kept.

Deliberate differences from the prototype (``shared/reference/synthetic_prototype.md``): files
instead of in-memory clips, 18 classes including aliasing pairs (fast vs slow rotation) and brief
flash events, and all parameters in fractions of the frame / clip so every tier has the same task.
"""
from __future__ import annotations

import argparse
import colorsys
import json
import multiprocessing
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ffn_core.atomic import atomic_path, atomic_write_text
from ffn_core.data.synthetic_classes import CLASSES, ClassDef, Scene, class_names, make_scene

__all__ = ["CLASSES", "ClassDef", "class_names", "TierSpec", "TIERS", "VERSION", "render_video",
           "render_scene", "generate", "ensure_synthetic", "main"]

VERSION = 2            # bump when the generator's output changes: ensure_synthetic then regenerates
# 2: pixels rendered in float64 and x264 run on its C code paths (version 1 was not byte-identical
#    between regenerations: 9-16 of 4,000 cpu-tier clips; the encoder was the culprit, see write_mp4)
JITTER = 0.02          # camera shake, +- fraction of the frame per frame (prototype: +-0.6 px at 32 px)
NOISE_SIGMA = 6 / 255  # per-pixel Gaussian noise
SPLITS = {"train": 0, "val": 1, "calib": 2}  # codes seed the per-sample RNG: never renumber
META = "synthetic.json"
PARTIAL = ".synthetic_partial.json"


@dataclass(frozen=True)
class TierSpec:
    """Size of one benchmark tier. Counts are clips per split; ``size`` is the (square, even) side."""

    name: str
    num_train: int
    num_val: int
    num_frames: int
    size: int
    fps: int = 12
    crf: int = 12
    pix_fmt: str = "yuv444p"
    num_calib: int = 0  # held-out clips for calibration (cascade chain and threshold), apart from val


TIERS: dict = {
    "smoke": TierSpec("smoke", 6 * len(CLASSES), 3 * len(CLASSES), 32, 32, num_calib=2 * len(CLASSES)),  # tests: seconds
    "cpu": TierSpec("cpu", 3000, 1000, 48, 32, num_calib=1000),             # CPU demo: ~1 min on 2 cores
    "full": TierSpec("full", 20000, 4000, 64, 64, num_calib=4000),          # GPU runs
}


# --------------------------------------------------------------------------------------------------
# rendering
def _sdf(shape: str, u: np.ndarray, v: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Signed distance (px, < 0 inside) to a shape of 'radius' ``r`` in object coordinates."""
    if shape == "circle":
        return np.sqrt(u * u + v * v) - r
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) - 0.85 * r
    if shape == "rectangle":
        return np.maximum(np.abs(u) - r, np.abs(v) - 0.65 * r)
    if shape == "triangle":
        return np.maximum.reduce([u * np.cos(a) + v * np.sin(a) for a in (-np.pi / 2, np.pi / 6, 5 * np.pi / 6)]) - 0.55 * r
    if shape == "diamond":
        return (np.abs(u) + np.abs(v) / 0.7 - r) * (0.7 / np.hypot(1.0, 0.7))
    raise ValueError(f"unknown shape {shape!r}")


def _background(rng: np.random.Generator, T: int, size: int, ox: np.ndarray, oy: np.ndarray) -> np.ndarray:
    """Three random sinusoidal gratings between two muted colours, translating with ``(ox, oy)``."""
    h = rng.random()
    c1 = np.array(colorsys.hsv_to_rgb(h, rng.uniform(0, 0.5), rng.uniform(0.3, 0.7)), np.float64)
    c2 = np.array(colorsys.hsv_to_rgb((h + rng.uniform(0.1, 0.5)) % 1, rng.uniform(0, 0.5), rng.uniform(0.3, 0.7)), np.float64)
    px = np.arange(size, dtype=np.float64) + 0.5
    xs, ys = px[None, :] - ox[:, None], px[None, :] - oy[:, None]  # (T, W), (T, H)
    tex, total = np.zeros((T, size, size), np.float64), 0.0
    for _ in range(3):  # sin(a + b) = sin a cos b + cos a sin b: separable, no (T, H, W) sine
        freq, theta, amp, phase = rng.uniform(1.5, 5), rng.uniform(0, np.pi), rng.uniform(0.5, 1), rng.uniform(0, 2 * np.pi)
        k = 2 * np.pi * freq / size
        a = k * np.cos(theta) * xs + phase
        b = k * np.sin(theta) * ys
        tex += amp * (np.sin(a)[:, None, :] * np.cos(b)[:, :, None] + np.cos(a)[:, None, :] * np.sin(b)[:, :, None])
        total += amp
    m = (0.5 + 0.5 * tex / total)[..., None]
    return c1 * (1 - m) + c2 * m


def _draw(img: np.ndarray, obj, size: int, jx: np.ndarray, jy: np.ndarray) -> None:
    """Composite one anti-aliased two-tone object onto ``img`` (T, H, W, 3) in place."""
    px = np.arange(size, dtype=np.float64) + 0.5
    u = px[None, None, :] - (obj.x * size + jx).astype(np.float64)[:, None, None]
    v = px[None, :, None] - (obj.y * size + jy).astype(np.float64)[:, None, None]
    c = np.cos(obj.angle).astype(np.float64)[:, None, None]
    s = np.sin(obj.angle).astype(np.float64)[:, None, None]
    ur, vr = c * u + s * v, c * v - s * u          # rotate into the object's frame (clockwise on screen)
    r = (obj.radius * (1 + 0.25 * obj.flash) * size).astype(np.float64)[:, None, None]
    alpha = np.clip(0.5 - _sdf(obj.shape, ur, vr, r), 0, 1)[..., None]
    w = np.clip(0.5 + ur, 0, 1)[..., None]         # 1-px soft split between the two tones
    colour = obj.tone_b + w * (obj.tone_a - obj.tone_b)
    f = obj.flash.astype(np.float64)[:, None, None, None]
    if f.any():
        colour += f * (1 - colour)                  # flash: towards white
    colour -= img
    colour *= alpha
    img += colour                                   # img = img * (1 - alpha) + colour * alpha


def render_scene(scene: Scene, rng: np.random.Generator, size: int, clean: bool = False) -> np.ndarray:
    """Pixels of ``scene``: uint8 ``(T, size, size, 3)``.

    ``clean=True`` (for tests and figures) draws the class objects only, on black, without jitter,
    background, distractor or noise; it consumes ``rng`` differently from the normal render."""
    T = scene.num_frames
    if clean:
        jx = jy = np.zeros(T)
        img = np.zeros((T, size, size, 3), np.float64)
    else:
        jx, jy = rng.uniform(-JITTER, JITTER, (2, T)) * size
        speed, direction = rng.uniform(0, 0.25) * size, rng.uniform(0, 2 * np.pi)
        tau = np.linspace(0, 1, T)
        img = _background(rng, T, size, speed * np.cos(direction) * tau + jx, speed * np.sin(direction) * tau + jy)
    for obj in scene.objects:
        if not (clean and obj.distractor):
            _draw(img, obj, size, jx, jy)
    if not clean:
        img += NOISE_SIGMA * rng.standard_normal(img.shape)
    return np.floor(np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def render_video(class_idx: int, rng: np.random.Generator, num_frames: int, size: int) -> np.ndarray:
    """One clip of class ``class_idx``: uint8 ``(num_frames, size, size, 3)``, a pure function of ``rng``."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 8 or size % 2:
        raise ValueError(f"size={size!r}: expected an even int >= 8 (H.264 needs even sides)")
    return render_scene(make_scene(class_idx, rng, num_frames), rng, int(size))


# --------------------------------------------------------------------------------------------------
# atomic file I/O (ffn_core.atomic for files; a folder is written under a temp name, then renamed)
def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_mp4(path: Path, frames: np.ndarray, fps: int, crf: int, pix_fmt: str) -> int:
    """H.264 mp4 via PyAV; returns the number of frames (packets) written. No B-frames, one encoder
    thread and x264's plain C code paths (``asm=0``), so the output bytes are reproducible and every
    packet decodes to one frame. With x264's assembly, 1-2 of 18 clips came out with other bytes in
    about half of the runs in spawned worker processes (measured here); the C code is the reference
    the assembly is meant to match, on every CPU, and costs ~27 % more encoding time (10.3 vs 8.1 ms
    per 48-frame 32 px clip)."""
    import av

    packets = 0
    with atomic_path(path) as tmp:
        with av.open(str(tmp), "w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
            stream.options = {"crf": str(crf), "preset": "veryfast", "bf": "0", "x264-params": "asm=0"}
            stream.thread_count = 1
            for frame in [*frames, None]:  # None flushes the encoder
                out = stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                                    if frame is not None else None)
                packets += sum(1 for p in out if p.size)
                container.mux(out)
    return packets


def count_frames(path: Path) -> int:
    """Frames in ``path``, counted from its video packets without decoding (exact for our
    B-frame-free H.264; the tests check it against full PyAV and decord decodes); 0 if unreadable."""
    import av

    try:
        with av.open(str(path)) as container:
            return sum(1 for p in container.demux(video=0) if p.size)
    except (av.error.FFmpegError, OSError, ValueError):
        return 0


def read_frames(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def write_jpegs(folder: Path, frames: np.ndarray, quality: int = 95) -> None:
    """``folder/00001.jpg ...`` (1-indexed), written into a temp folder that is renamed at the end."""
    from PIL import Image

    tmp = _tmp(folder)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for i, frame in enumerate(frames, 1):
        Image.fromarray(frame).save(tmp / f"{i:05d}.jpg", quality=quality)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


# --------------------------------------------------------------------------------------------------
# generation
def _split_sizes(spec: TierSpec) -> dict:
    """``{split: clips}`` of a tier; calib only when the tier has one."""
    sizes = {"train": spec.num_train, "val": spec.num_val}
    return {**sizes, "calib": spec.num_calib} if spec.num_calib else sizes


def _sample_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), SPLITS[split], int(index)])


def _labels(seed: int, split: str, n: int) -> np.ndarray:
    """Balanced labels (``n // C`` or one more per class) in a seeded random order."""
    rng = np.random.default_rng([int(seed), 100 + SPLITS[split]])
    return rng.permutation(np.arange(n) % len(CLASSES))


def _make_sample(job: tuple) -> tuple:
    """Create (or keep) one clip's mp4 and JPEG folder. Returns ``(split, index, label, frames, made)``."""
    out, tier, seed, split, index, label, write_frames = job
    video = Path(out, "videos", split, f"{index + 1:06d}.mp4")
    try:
        return _make_sample_unguarded(video, tier, seed, split, index, label, write_frames)
    except Exception as e:  # name the clip: worker tracebacks are otherwise hard to place
        raise RuntimeError(f"{video} (class {CLASSES[label].name}): generation failed: {e!r}") from e


def _make_sample_unguarded(video: Path, tier: TierSpec, seed: int, split: str, index: int, label: int,
                           write_frames: bool) -> tuple:
    n = count_frames(video) if video.is_file() else 0  # 0 for missing or unreadable files
    made = n != tier.num_frames  # missing, unreadable or left over from another tier
    if made:
        frames = render_video(int(label), _sample_rng(seed, split, index), tier.num_frames, tier.size)
        n = write_mp4(video, frames, tier.fps, tier.crf, tier.pix_fmt)
        if n != len(frames):
            raise RuntimeError(f"{video}: wrote {n} of {len(frames)} frames")
    if write_frames:
        folder = video.parents[2] / "frames" / split / video.stem
        if made or len(list(folder.glob("*.jpg"))) != n:
            write_jpegs(folder, read_frames(video))
    return split, index, int(label), n, made


class _Inline:
    """A stand-in for the process pool when ``workers == 1`` (no processes, same code path)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @staticmethod
    def map(fn, items, chunksize=1):
        return map(fn, items)


def _read_meta(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _identity(tier: TierSpec, seed: int) -> dict:
    return {"tier": tier.name, "seed": int(seed), "version": VERSION, "spec": asdict(tier)}


def _resolve_tier(tier) -> TierSpec:
    if isinstance(tier, TierSpec):
        return tier
    if tier not in TIERS:
        raise ValueError(f"tier={tier!r}: expected one of {', '.join(TIERS)}")
    return TIERS[tier]


def generate(out_dir, tier="smoke", seed: int = 0, write_frames: bool = False, workers: int = 1,
             overwrite: bool = False, verbose: bool = False) -> dict:
    """Write one tier of the benchmark under ``out_dir`` and return its metadata (also ``synthetic.json``).

    ``tier`` is a name from :data:`TIERS` (or a :class:`TierSpec`). Files that already exist are
    kept, so an interrupted run resumes; ``overwrite=True`` - or an ``out_dir`` last generated with
    another tier, seed or generator version - deletes ``videos/`` and ``frames/`` first.
    """
    spec, out = _resolve_tier(tier), Path(out_dir)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers={workers!r}: expected an int >= 1")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r}: expected an int >= 0")
    t0 = time.time()
    want = _identity(spec, seed)
    prior = _read_meta(out / META) or _read_meta(out / PARTIAL)
    stale = prior is not None and any(prior.get(k) != v for k, v in want.items())
    if overwrite or stale:
        if verbose and stale:
            print(f"synthetic: {out} holds tier={prior.get('tier')} seed={prior.get('seed')} "
                  f"version={prior.get('version')}; regenerating")
        for sub in ("videos", "frames"):
            shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / META).unlink(missing_ok=True)
    atomic_write_text(out / PARTIAL, json.dumps(want))
    jobs = [(str(out), spec, int(seed), split, i, int(lab), bool(write_frames))
            for split, n in _split_sizes(spec).items()
            for i, lab in enumerate(_labels(seed, split, n))]
    if verbose:
        print(f"synthetic: tier={spec.name} seed={seed}: {len(jobs)} clips of {spec.num_frames}x{spec.size}x"
              f"{spec.size} -> {out} ({workers} worker{'s' * (workers > 1)})", flush=True)
    results = []
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) if workers > 1 else _Inline() as pool:
        # spawn, not fork: safe even when the caller has torch / OpenMP threads running
        for r in pool.map(_make_sample, jobs, chunksize=max(1, min(64, len(jobs) // (workers * 8)))):
            results.append(r)
            if verbose and len(jobs) >= 1000 and len(results) % (len(jobs) // 10) == 0:
                print(f"synthetic: {len(results)}/{len(jobs)} clips, {time.time() - t0:.0f} s", flush=True)
    rows = {split: [] for split in _split_sizes(spec)}
    for split, index, label, n, _ in results:
        rows[split].append((index, label, n))
    lists = {}
    for split, items in rows.items():
        items.sort()
        lists[split] = f"{split}.txt"
        atomic_write_text(out / f"{split}.txt", "".join(f"videos/{split}/{i + 1:06d}.mp4 {n} {lab}\n" for i, lab, n in items))
        if write_frames:
            atomic_write_text(out / f"{split}_frames.txt", "".join(f"frames/{split}/{i + 1:06d} {n} {lab}\n" for i, lab, n in items))
    atomic_write_text(out / "classes.txt", "".join(f"{name}\n" for name in class_names()))
    meta = {**want, "num_classes": len(CLASSES), "num_train": spec.num_train, "num_val": spec.num_val,
            "num_calib": spec.num_calib, "num_frames": spec.num_frames, "size": spec.size,
            "write_frames": bool(write_frames),
            "generated": sum(r[4] for r in results), "kept": sum(not r[4] for r in results),
            "seconds": round(time.time() - t0, 2), "workers": workers, "lists": lists}
    atomic_write_text(out / META, json.dumps(meta, indent=1))  # the completion marker, last
    (out / PARTIAL).unlink(missing_ok=True)
    if verbose:
        print(f"synthetic: {meta['generated']} clips generated, {meta['kept']} kept, {meta['seconds']:.1f} s; "
              f"lists {out / 'train.txt'} / {out / 'val.txt'}, classes {out / 'classes.txt'}", flush=True)
    return meta


def ensure_synthetic(data_root, tier="smoke", seed: int = 0, workers: int = 1, verbose: bool = True) -> Path:
    """Return ``data_root``, generating the tier first unless ``synthetic.json`` already records this
    tier, seed and generator version (and the lists exist)."""
    root, spec = Path(data_root), _resolve_tier(tier)
    meta = _read_meta(root / META)
    done = meta is not None and all(meta.get(k) == v for k, v in _identity(spec, seed).items())
    lists = [f"{split}.txt" for split in _split_sizes(spec)] + ["classes.txt"]
    if not (done and all((root / f).is_file() for f in lists)):
        generate(root, spec, seed=seed, workers=workers, verbose=verbose)
    return root


def main(argv=None) -> int:
    """``python -m ffn_core synth --tier {smoke,cpu,full} --out DIR --seed S [--frames-jpeg] [--workers N] [--overwrite]``."""
    p = argparse.ArgumentParser(prog="python -m ffn_core synth",
                                description="Generate the synthetic temporal benchmark (mp4 + TSN lists).")
    p.add_argument("--tier", choices=list(TIERS), default="smoke")
    p.add_argument("--out", default=None, help="output folder (default: data/synthetic_<tier>)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--frames-jpeg", action="store_true", help="also write JPEG frame folders + *_frames.txt lists")
    p.add_argument("--workers", type=int, default=max(1, min(os.cpu_count() or 1, 8)))
    p.add_argument("--overwrite", action="store_true", help="delete and regenerate every clip")
    a = p.parse_args(argv)
    if a.workers < 1:
        p.error(f"--workers {a.workers}: expected >= 1")
    generate(a.out or f"data/synthetic_{a.tier}", a.tier, seed=a.seed, write_frames=a.frames_jpeg,
             workers=a.workers, overwrite=a.overwrite, verbose=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
