"""Class definitions of the synthetic temporal benchmark: what moves, when, and why frames matter.

Each class is a *scene maker*: from a numpy ``Generator`` and the normalised time grid
``tau = linspace(0, 1, T)`` it draws one or two object tracks (position, size, angle, flash per
frame). Everything is in units of the frame (positions in ``[0, 1]``, radius as a fraction of the
side) and of the clip (times in ``[0, 1]``), so a class has the same distribution at every
resolution and clip length; only the sampling changes. Rendering (background, jitter, noise,
pixels) lives in :mod:`ffn_core.data.synthetic`.

Classes come in three temporal grades (see ``docs/synthetic_benchmark.md``):

* ``coarse``  - direction / size / order over the whole clip; 4 frames suffice, 1 frame does not.
* ``medium``  - brief events (flashes of 8-14 % of the clip) that 4 evenly spaced frames often miss.
* ``fine``    - periodic motion whose rate aliases at 4 (and partly 8) frames: fast rotation looks
  like slow rotation the *other* way at 4 frames; 3 and 5 back-and-forth cycles are
  indistinguishable below ~2 samples per cycle.

Pairs marked ``reverse_of`` are exact time reversals: the maker of the partner is run with the same
random draws and every track is flipped in time, so the only difference between the two classes
is the arrow of time (as in Something-Something's "pushing left to right" / "right to left").

Screen convention: x to the right, y *down*; an increasing angle turns clockwise on screen.
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

__all__ = ["ClassDef", "ObjectTrack", "Scene", "CLASSES", "SHAPES", "class_names", "make_scene"]

SHAPES = ("circle", "square", "rectangle", "triangle", "diamond")
DISTRACTOR_P = 0.5  # probability of one static distractor object (prototype: 0.5)


@dataclass(frozen=True)
class ClassDef:
    """One class: ``name`` (also the line in ``classes.txt``), ``grade`` (coarse | medium | fine),
    ``description`` (what happens), ``why`` (why one frame / few frames are not enough) and
    ``reverse_of`` (name of the class whose time reversal this class is, or ``None``)."""

    name: str
    grade: str
    description: str
    why: str
    reverse_of: str | None = None


@dataclass
class ObjectTrack:
    """One object over ``T`` frames. Arrays have shape ``(T,)``; units are fractions of the frame.

    ``angle`` is in radians (increasing = clockwise on screen), ``flash`` in ``[0, 1]`` (1 = the
    object is drawn white and 25 % larger). The two tones split the object across its own x axis (left / right halves),
    so rotation is visible even for a circle."""

    shape: str
    tone_a: np.ndarray  # (3,) float RGB in [0, 1], bright half
    tone_b: np.ndarray  # (3,) float RGB in [0, 1], dark half
    x: np.ndarray
    y: np.ndarray
    radius: np.ndarray
    angle: np.ndarray
    flash: np.ndarray
    distractor: bool = False

    def reversed(self) -> "ObjectTrack":
        """The same object with every per-frame array flipped in time."""
        return replace(self, **{k: getattr(self, k)[::-1].copy() for k in ("x", "y", "radius", "angle", "flash")})


@dataclass
class Scene:
    """The objects of one clip, drawn back to front (distractor first)."""

    label: int
    objects: list = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return len(self.objects[0].x)


# --------------------------------------------------------------------------------------------------
# helpers
def _ramp(tau: np.ndarray, t0: float, t1: float) -> np.ndarray:
    """0 before ``t0``, linear to 1 at ``t1``, 1 after."""
    return np.clip((tau - t0) / max(t1 - t0, 1e-6), 0.0, 1.0)


def _tones(rng: np.random.Generator) -> tuple:
    """A bright and a dark tone of different hues, so the split is visible in luma and chroma."""
    h = rng.random()
    a = colorsys.hsv_to_rgb(h, rng.uniform(0.5, 1.0), rng.uniform(0.8, 1.0))
    b = colorsys.hsv_to_rgb((h + rng.uniform(0.25, 0.75)) % 1.0, rng.uniform(0.5, 1.0), rng.uniform(0.25, 0.45))
    return np.array(a, dtype=np.float64), np.array(b, dtype=np.float64)


def _object(rng: np.random.Generator, tau: np.ndarray, r_lo: float = 0.08, r_hi: float = 0.13) -> ObjectTrack:
    """A static object with random shape, tones, size and orientation at a placeholder position."""
    n = len(tau)
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    a, b = _tones(rng)
    return ObjectTrack(shape, a, b, x=np.full(n, 0.5), y=np.full(n, 0.5),
                       radius=np.full(n, rng.uniform(r_lo, r_hi)), angle=np.full(n, rng.uniform(0, 2 * np.pi)),
                       flash=np.zeros(n))


def _centre(rng: np.random.Generator, margin: float, ext_x: float = 0.0, ext_y: float = 0.0) -> tuple:
    """A point whose box ``+- (ext_x, ext_y)`` stays ``margin`` inside the frame."""
    lo_x, lo_y = margin + ext_x, margin + ext_y
    return rng.uniform(lo_x, max(lo_x, 1 - lo_x)), rng.uniform(lo_y, max(lo_y, 1 - lo_y))


def _translate(rng, tau, angle: float, dist: float, t0: float, t1: float, obj=None) -> list:
    """Constant-speed translation by ``dist`` along ``angle`` between times ``t0`` and ``t1``."""
    obj = obj or _object(rng, tau)
    dx, dy = np.cos(angle), np.sin(angle)
    cx, cy = _centre(rng, obj.radius[0] + 0.03, abs(dx) * dist / 2, abs(dy) * dist / 2)
    s = _ramp(tau, t0, t1) - 0.5
    obj.x, obj.y = cx + dx * dist * s, cy + dy * dist * s
    return [obj]


def _drift(rng, tau, obj: ObjectTrack, max_dist: float = 0.05) -> None:
    """Small linear drift over the clip (so 'static' parts are not pixel-identical)."""
    a, d = rng.uniform(0, 2 * np.pi), rng.uniform(0, max_dist)
    obj.x = obj.x + d * np.cos(a) * (tau - 0.5)
    obj.y = obj.y + d * np.sin(a) * (tau - 0.5)


# --------------------------------------------------------------------------------------------------
# scene makers (one per non-reversed class)
def _move(base_angle: float) -> Callable:
    def make(rng, tau):
        angle = base_angle + np.deg2rad(rng.uniform(-20, 20))
        return _translate(rng, tau, angle, rng.uniform(0.35, 0.6), rng.uniform(0, 0.15), rng.uniform(0.85, 1.0))
    return make


def _approach(rng, tau):
    obj = _object(rng, tau)
    r0, k = rng.uniform(0.06, 0.08), rng.uniform(1.7, 2.2)
    s = _ramp(tau, rng.uniform(0, 0.15), rng.uniform(0.85, 1.0))
    obj.radius = r0 * k ** s
    cx, cy = _centre(rng, r0 * k + 0.05)
    obj.x, obj.y = np.full(len(tau), cx), np.full(len(tau), cy)
    _drift(rng, tau, obj)
    return [obj]


def _move_then_stop(rng, tau):
    return _translate(rng, tau, rng.uniform(0, 2 * np.pi), rng.uniform(0.3, 0.5),
                      rng.uniform(0, 0.1), rng.uniform(0.35, 0.5))


def _rotate(turns_lo: float, turns_hi: float) -> Callable:
    def make(rng, tau):
        obj = _object(rng, tau, 0.1, 0.14)
        cx, cy = _centre(rng, obj.radius[0] + 0.05)
        obj.x, obj.y = np.full(len(tau), cx), np.full(len(tau), cy)
        _drift(rng, tau, obj)
        obj.angle = obj.angle[0] + 2 * np.pi * rng.uniform(turns_lo, turns_hi) * tau
        return [obj]
    return make


def _oscillate(cycles: int) -> Callable:
    def make(rng, tau):
        obj = _object(rng, tau)
        axis, amp = rng.uniform(0, np.pi), rng.uniform(0.12, 0.2)
        dur = rng.uniform(0.8, 1.0)
        t0 = rng.uniform(0, 1 - dur)
        phase = rng.uniform(0, 2 * np.pi)
        dx, dy = np.cos(axis), np.sin(axis)
        cx, cy = _centre(rng, obj.radius[0] + 0.03, abs(dx) * amp, abs(dy) * amp)
        disp = amp * np.sin(2 * np.pi * cycles * _ramp(tau, t0, t0 + dur) + phase)
        obj.x, obj.y = cx + dx * disp, cy + dy * disp
        return [obj]
    return make


def _flash_order(rng, tau):
    """Two static objects, left and right; the left one flashes first, the right one later."""
    objs = []
    for x_lo, x_hi, c_lo, c_hi in ((0.15, 0.38, 0.1, 0.4), (0.62, 0.85, 0.6, 0.9)):
        obj = _object(rng, tau, 0.08, 0.12)
        obj.x = np.full(len(tau), rng.uniform(x_lo, x_hi))
        obj.y = np.full(len(tau), rng.uniform(0.2, 0.8))
        centre, dur = rng.uniform(c_lo, c_hi), rng.uniform(0.08, 0.14)
        obj.flash = (np.abs(tau - centre) <= dur / 2).astype(np.float64)
        objs.append(obj)
    return objs


def _distractor(rng, tau) -> ObjectTrack:
    obj = _object(rng, tau, 0.07, 0.11)
    cx, cy = _centre(rng, obj.radius[0])
    obj.x, obj.y = np.full(len(tau), cx), np.full(len(tau), cy)
    obj.distractor = True
    return obj


_TEMPORAL = "a single frame shows only an object somewhere"
_MAKERS: dict = {
    "move_right": _move(0.0),
    "move_down": _move(np.pi / 2),
    "approach": _approach,
    "move_then_stop": _move_then_stop,
    "rotate_cw_slow": _rotate(0.35, 0.9),
    "rotate_cw_fast": _rotate(2.6, 3.5),
    "oscillate_1": _oscillate(1),
    "oscillate_2": _oscillate(2),
    "oscillate_3": _oscillate(3),
    "oscillate_5": _oscillate(5),
    "flash_left_then_right": _flash_order,
}

CLASSES: list = [
    ClassDef("move_right", "coarse", "one object translates 35-60 % of the frame to the right (+-20 deg) over 70-100 % of the clip",
             f"{_TEMPORAL}; two frames give the direction"),
    ClassDef("move_left", "coarse", "time reversal of move_right", f"{_TEMPORAL}; two frames give the direction",
             reverse_of="move_right"),
    ClassDef("move_down", "coarse", "as move_right, downwards", f"{_TEMPORAL}; two frames give the direction"),
    ClassDef("move_up", "coarse", "time reversal of move_down", f"{_TEMPORAL}; two frames give the direction",
             reverse_of="move_down"),
    ClassDef("approach", "coarse", "one object grows 1.7-2.2x (comes closer) over 70-100 % of the clip",
             "a single frame shows one size; the size change needs two frames and its sign their order"),
    ClassDef("recede", "coarse", "time reversal of approach (the object shrinks)",
             "a single frame shows one size; the size change needs two frames and its sign their order",
             reverse_of="approach"),
    ClassDef("move_then_stop", "coarse", "moves 30-50 % of the frame in a random direction during the first 35-50 % of the clip, then rests",
             "needs frames in both halves of the clip; a coarse sampling must still place the motion before the rest"),
    ClassDef("stop_then_move", "coarse", "time reversal of move_then_stop (rests, then moves)",
             "needs frames in both halves of the clip; only the order of rest and motion separates it from move_then_stop",
             reverse_of="move_then_stop"),
    ClassDef("rotate_cw_slow", "fine", "a two-tone object turns clockwise by 0.35-0.9 turns over the clip",
             "rotation sense needs >= 2 frames less than half a turn apart; 4 frames can confuse it with rotate_ccw_fast (aliasing)"),
    ClassDef("rotate_ccw_slow", "fine", "time reversal of rotate_cw_slow (counter-clockwise)",
             "rotation sense needs >= 2 frames less than half a turn apart; 4 frames can confuse it with rotate_cw_fast (aliasing)",
             reverse_of="rotate_cw_slow"),
    ClassDef("rotate_cw_fast", "fine", "a two-tone object turns clockwise by 2.6-3.5 turns over the clip",
             "at 4 evenly spaced frames each step is 0.65-0.9 turns, which looks like 0.1-0.35 turns counter-clockwise "
             "(wagon-wheel aliasing); 8 frames give 0.33-0.45 turns per step (just under Nyquist), 16 frames 0.16-0.22"),
    ClassDef("rotate_ccw_fast", "fine", "time reversal of rotate_cw_fast (counter-clockwise)",
             "aliases to a slow clockwise rotation at 4 frames (see rotate_cw_fast)", reverse_of="rotate_cw_fast"),
    ClassDef("oscillate_1", "fine", "moves back and forth once (one sine cycle, amplitude 12-20 % of the frame, random axis and phase) over 80-100 % of the clip",
             "a single frame is a static object; counting cycles needs >= 2 samples per cycle, so 1 vs 2 needs ~4-8 frames"),
    ClassDef("oscillate_2", "fine", "as oscillate_1 with 2 cycles", "needs >= 4-5 samples over the clip to count 2 cycles; 4 frames alias"),
    ClassDef("oscillate_3", "fine", "as oscillate_1 with 3 cycles", "needs >= 6-7 samples (8 frames is borderline); 4 frames alias"),
    ClassDef("oscillate_5", "fine", "as oscillate_1 with 5 cycles",
             "needs >= 10-12 samples over the clip: only 16 frames (2.5-3 samples per cycle) resolve it; 8 frames alias it to fewer cycles"),
    ClassDef("flash_left_then_right", "medium",
             "two static objects; the left one flashes (turns white, 25 % larger) for 8-14 % of the clip, later the right one",
             "each flash lasts 8-14 % of the clip: 4 frames (one per 25 %) often miss one or both; 16 frames (one per 6 %) catch both and their order"),
    ClassDef("flash_right_then_left", "medium", "time reversal of flash_left_then_right (right flashes first)",
             "as flash_left_then_right: the order of two brief events needs frames dense enough to catch both",
             reverse_of="flash_left_then_right"),
]

_INDEX = {c.name: i for i, c in enumerate(CLASSES)}
assert all(c.name in _MAKERS or c.reverse_of in _MAKERS for c in CLASSES), "every class needs a maker"


def class_names() -> list:
    """Class names in label order (the lines of ``classes.txt``)."""
    return [c.name for c in CLASSES]


def make_scene(class_idx: int, rng: np.random.Generator, num_frames: int) -> Scene:
    """The object tracks of one clip of class ``class_idx`` with ``num_frames`` frames.

    A pure function of ``rng``'s state: the class's maker (or, for a ``reverse_of`` class, its
    partner's maker followed by a time flip) and then, with probability 0.5, a static distractor.
    """
    if isinstance(class_idx, bool) or not isinstance(class_idx, (int, np.integer)) or not 0 <= class_idx < len(CLASSES):
        raise ValueError(f"class_idx={class_idx!r}: expected an int in [0, {len(CLASSES)})")
    if int(num_frames) < 2:
        raise ValueError(f"num_frames={num_frames!r}: expected an int >= 2")
    tau = np.linspace(0.0, 1.0, int(num_frames))
    cdef = CLASSES[int(class_idx)]
    if cdef.reverse_of:
        objects = [o.reversed() for o in _MAKERS[cdef.reverse_of](rng, tau)]
    else:
        objects = _MAKERS[cdef.name](rng, tau)
    if rng.random() < DISTRACTOR_P:
        objects.insert(0, _distractor(rng, tau))
    return Scene(int(class_idx), objects)
