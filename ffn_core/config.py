"""One flat, typed configuration for data, model and training (nanoGPT-style).

Every key is a field of :class:`Config`. The same flat keys are used in ``params/*.yaml``, on the
command line (``key=value``) and in notebook ``parameters`` cells, and the resolved config is
written next to every output (``config.yaml``) and into every checkpoint.

``frames`` accepts a list/tuple of ints or the strings ``"[4,8,16]"`` / ``"4,8,16"`` (papermill's
``-p frames "[4,8,16]"`` injects a string); it must be non-empty, distinct, positive integers and
is stored sorted as a tuple.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from ffn_core.atomic import atomic_write_text

__all__ = [
    "Config", "ConfigError", "load_config", "parse_frames", "parse_cli_overrides", "save_config",
    "atomic_write_text",
]


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong form (the message names the key)."""


STRATEGIES = ("st", "ffn", "mixed", "proportional", "finetune")
LOSSES = ("mfal", "ce_all", "ce_kl")  # MFALoss modes (ffn_core/losses/mfal_loss.py)


@dataclass
class Config:
    # ---- run ---------------------------------------------------------------------------------
    name: str = "run"                  # run name (used by the suite for runs/<name>/)
    out_dir: str = "runs/run"          # run directory: config.yaml, metrics.csv, last.pt, best.pt
    resume: bool = False               # continue from out_dir/last.pt
    seed: int = 0
    device: str = "auto"               # auto | cpu | cuda | cuda:N
    deterministic: bool = False        # torch.use_deterministic_algorithms + fixed cudnn
    log_every: int = 20                # steps between headless log lines
    threads: int = 0                   # torch CPU intra-op threads for train/eval (0: torch's default)
    # ---- data --------------------------------------------------------------------------------
    dataset: str = "synthetic"         # a name from ffn_core.data.list_datasets()
    data_root: str = "data/synthetic_smoke"  # folder holding the list files and videos/frames
    tier: str = ""                     # synthetic tier to GENERATE when data_root has no lists ("": never; an error)
    train_list: str = ""               # default: <data_root>/train.txt
    val_list: str = ""                 # default: <data_root>/val.txt
    frames: tuple = (4, 8, 16)         # sorted frame counts trained (one for strategy=st)
    crop_size: int = 32                # training / test crop (px)
    resize: int = 0                    # test: short side before centre crop (0: crop_size*8/7)
    train_scales: tuple = (1.0, 0.875, 0.75, 0.66)  # multi-scale crop sides (TSN); (1.0,): no crop jitter
    test_crops: int = 1                # 1 (centre) or 3 (three-crop)
    num_clips: int = 1                 # evaluation views along time
    num_workers: int = 0
    video_backend: str = "decord"      # decord | pyav
    cache_videos: bool = False         # decode each video once into RAM (small datasets; data/datasets.py)
    persist_video_cache: bool = True   # with cache_videos: also write it to <data_root>/.decoded/ for later processes
    on_bad_sample: str = "skip"        # an unreadable video: skip (train: next sample; eval: left out, counted) | raise
    # ---- model -------------------------------------------------------------------------------
    model: str = "tsm_tiny"            # a name from ffn_core.models.list_models()
    model_kwargs: dict = field(default_factory=dict)  # backbone-specific settings, e.g. {drop_path: 0.2} (models.model_kwargs)
    pretrained: str = ""               # "" | "imagenet" | path to a .pth state dict
    dropout: float = 0.5
    private_norm: bool = True          # False: "w/o SN" ablation (shared norms)
    weight_alteration: bool = True     # False: "w/o WA" ablation
    weight_sharing: bool = True        # False: "w/o WS" ablation (private convolutions)
    # ---- training ----------------------------------------------------------------------------
    strategy: str = "ffn"              # st | ffn | mixed | proportional | finetune
    loss: str = "mfal"                 # mfal (CE on highest T + KL) | ce_all ("w/o TD") | ce_kl (CE on all + KL; ours)
    lambda_kl: float = 1.0             # λ of Eq. 5
    label_smoothing: float = 0.0       # on the cross-entropy term(s) (Uniformer recipe: 0.1)
    rho: float = 0.5                   # mixed / proportional probability
    finetune_from: str = ""            # checkpoint for strategy=finetune
    init_from: str = ""                # start from a single-T checkpoint (convert_st_to_ffn; not with finetune),
                                       # or official:PATH, a TSM-FFN file released with the original code
    epochs: int = 2
    batch_size: int = 8
    lr: float = 2.0e-3
    optimizer: str = "adamw"           # sgd | adamw
    momentum: float = 0.9
    nesterov: bool = False             # SGD with Nesterov momentum (SlowFast recipe)
    weight_decay: float = 0.05
    schedule: str = "cosine"           # cosine | step | constant
    lr_steps: tuple = ()               # epochs at which step schedule multiplies lr by 0.1
    warmup_epochs: float = 0.0
    clip_grad: float = 0.0             # max grad L2 norm (0: off); unscaled first under AMP
    amp: str = "none"                  # none | bf16 (CUDA, or CPU autocast) | fp16 (CUDA only) | auto (bf16 where native, else none)
    channels_last: bool = False        # NHWC activations (faster convolutions on CUDA and on CPU oneDNN)
    stream_backward: bool = False      # back-propagate stream by stream (lower peak memory)
    fc_lr_mult: bool = True            # classifier weight lr x5, bias lr x10 (TSM recipe); false for AdamW recipes
    on_nonfinite: str = "raise"        # a NaN/inf loss or gradient: raise (one error line) | skip_step (no update, counted)
    freeze_bn: bool = False            # keep BatchNorms in eval mode while training (frozen statistics)
    eval_every: int = 1                # epochs between evaluations
    eval_frames: tuple = ()            # frame counts evaluated each epoch (default: frames)
    extra: dict = field(default_factory=dict)  # free-form notes, copied to outputs

    # ------------------------------------------------------------------------------------------
    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> "Config":
        hints = typing.get_type_hints(Config)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            setattr(self, f.name, _coerce(f.name, value, hints[f.name]))
        self.frames = parse_frames(self.frames, key="frames")
        if self.eval_frames:
            self.eval_frames = parse_frames(self.eval_frames, key="eval_frames")
        self.train_scales = _float_list(self.train_scales, "train_scales")
        if self.lr_steps:
            self.lr_steps = tuple(sorted(_int_list(self.lr_steps, "lr_steps")))
        _check_choice("strategy", self.strategy, STRATEGIES)
        _check_choice("loss", self.loss, LOSSES)
        _check_choice("optimizer", self.optimizer, ("sgd", "adamw"))
        _check_choice("schedule", self.schedule, ("cosine", "step", "constant"))
        _check_choice("amp", self.amp, ("none", "bf16", "fp16", "auto"))
        _check_choice("video_backend", self.video_backend, ("decord", "pyav"))
        _check_choice("on_bad_sample", self.on_bad_sample, ("skip", "raise"))
        _check_choice("on_nonfinite", self.on_nonfinite, ("raise", "skip_step"))
        _check_choice("tier", self.tier, ("", "smoke", "cpu", "full"))
        _check_choice("test_crops", self.test_crops, (1, 3))
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", self.device):
            raise ConfigError(f"device={self.device!r}: expected auto, cpu, cuda or cuda:N")
        for key in ("epochs", "batch_size", "crop_size", "num_clips", "log_every", "eval_every"):
            _check_positive(key, getattr(self, key))
        for key in ("num_workers", "resize", "weight_decay", "clip_grad", "warmup_epochs", "lambda_kl", "threads"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key}={getattr(self, key)!r}: expected a number >= 0")
        if not self.lr > 0:
            raise ConfigError(f"lr={self.lr!r}: expected a number > 0")
        if not 0.0 <= self.rho <= 1.0:
            raise ConfigError(f"rho={self.rho!r}: expected a probability in [0, 1]")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout={self.dropout!r}: expected a number in [0, 1)")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing={self.label_smoothing!r}: expected a number in [0, 1)")
        if self.nesterov and self.optimizer != "sgd":
            raise ConfigError(f"nesterov=true with optimizer={self.optimizer}: Nesterov momentum is an SGD option")
        if self.strategy == "st" and len(self.frames) != 1:
            raise ConfigError(
                f"frames={list(self.frames)} with strategy=st: the single-frame-count baseline "
                "trains exactly one frame count, e.g. frames=16"
            )
        if self.strategy in ("mixed", "proportional") and len(self.frames) != 2:
            raise ConfigError(
                f"frames={list(self.frames)} with strategy={self.strategy}: expected two frame "
                "counts (low, high), e.g. frames=4,16 (paper Table 1)"
            )
        if self.strategy == "finetune" and len(self.frames) != 1:
            raise ConfigError(
                f"frames={list(self.frames)} with strategy=finetune: expected the one target frame "
                "count to fine-tune at, e.g. frames=4 (the checkpoint in finetune_from holds the other)"
            )
        if self.init_from and self.strategy == "finetune":
            raise ConfigError(f"init_from={self.init_from!r} and strategy=finetune: fine-tuning starts from "
                              "finetune_from; use one of them")
        if self.strategy == "finetune" and not self.finetune_from:
            raise ConfigError("strategy=finetune needs finetune_from=<checkpoint trained at another frame count>")
        return self

    # ------------------------------------------------------------------------------------------
    @property
    def train_list_path(self) -> Path:
        return Path(self.train_list) if self.train_list else Path(self.data_root) / "train.txt"

    @property
    def val_list_path(self) -> Path:
        return Path(self.val_list) if self.val_list else Path(self.data_root) / "val.txt"

    @property
    def test_resize(self) -> int:
        return self.resize or int(round(self.crop_size * 8 / 7))

    @property
    def eval_frame_counts(self) -> tuple:
        return self.eval_frames or self.frames

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    def replace(self, **overrides: Any) -> "Config":
        return Config.from_dict({**self.to_dict(), **overrides})

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "config") -> "Config":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(
                f"{source}: unknown key(s) {unknown}; known keys: {', '.join(sorted(names))}"
            )
        return cls(**dict(values))


# ---------------------------------------------------------------------------------------------
def parse_frames(value: Any, key: str = "frames") -> tuple:
    """Parse ``[4,8,16]``, ``(4, 8, 16)``, ``"[4,8,16]"``, ``"4,8,16"``, ``"4 8 16"`` or ``16``.

    Returns a sorted tuple of distinct positive ints, or raises :class:`ConfigError` naming ``key``.
    """
    expected = f'{key}: expected a non-empty list of distinct positive integers, e.g. [4, 8, 16] or "4,8,16"'
    items = _int_list(value, key, expected)
    if not items:
        raise ConfigError(f"{expected}; got {value!r}")
    if any(i <= 0 for i in items):
        raise ConfigError(f"{expected}; got {value!r} (non-positive entry)")
    if len(set(items)) != len(items):
        raise ConfigError(f"{expected}; got {value!r} (duplicate entry)")
    return tuple(sorted(items))


def _float_list(value: Any, key: str) -> tuple:
    """A non-empty list of numbers in (0, 1]: ``[1, 0.875]``, ``"1,0.875"``, ``"[1.0]"`` or ``0.9``."""
    expected = f"{key}: expected a non-empty list of numbers in (0, 1], e.g. [1.0, 0.875, 0.75, 0.66]"
    if isinstance(value, bool):
        raise ConfigError(f"{expected}; got {value!r}")
    items = [value] if isinstance(value, (int, float)) else value
    if isinstance(items, str):
        text = items.strip()
        if text.startswith(("[", "(")) and text.endswith(("]", ")")):
            text = text[1:-1]
        items = [p for p in re.split(r"[,\s]+", text) if p]
    if not isinstance(items, (list, tuple)) or not items:
        raise ConfigError(f"{expected}; got {value!r}")
    out = []
    for v in items:
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise ConfigError(f"{expected}; got {value!r} (entry {v!r})") from None
        if isinstance(v, bool) or not 0.0 < f <= 1.0:
            raise ConfigError(f"{expected}; got {value!r} (entry {v!r})")
        out.append(f)
    return tuple(out)


def _int_list(value: Any, key: str, expected: str | None = None) -> list:
    expected = expected or f"{key}: expected a list of integers"
    if isinstance(value, bool):
        raise ConfigError(f"{expected}; got {value!r}")
    if isinstance(value, int):
        return [value]
    if isinstance(value, str):
        text = value.strip()
        if text.startswith(("[", "(")) and text.endswith(("]", ")")):
            text = text[1:-1]
        parts = [p for p in re.split(r"[,\s]+", text) if p]
        try:
            return [int(p) for p in parts]
        except ValueError:
            raise ConfigError(f"{expected}; got {value!r}") from None
    if isinstance(value, (list, tuple)):
        out = []
        for v in value:
            if isinstance(v, bool) or not (isinstance(v, int) or (isinstance(v, float) and v.is_integer())):
                if isinstance(v, str) and v.strip().lstrip("-").isdigit():
                    out.append(int(v))
                    continue
                raise ConfigError(f"{expected}; got {value!r} (entry {v!r})")
            out.append(int(v))
        return out
    raise ConfigError(f"{expected}; got {value!r}")


def _check_choice(key: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(f"{key}={value!r}: expected one of {', '.join(map(str, choices))}")


def _check_positive(key: str, value: Any) -> None:
    if not value > 0:
        raise ConfigError(f"{key}={value!r}: expected an integer > 0")


_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n", ""}


def _coerce(key: str, value: Any, typ: Any) -> Any:
    """Convert CLI/YAML/papermill values to the field type, or raise naming the key."""
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"{key}={value!r}: expected true or false")
    if typ is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}={value!r}: expected an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ConfigError(f"{key}={value!r}: expected an integer")
    if typ is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}={value!r}: expected a number")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())  # also accepts "1e-3", which YAML 1.1 reads as a string
            except ValueError:
                pass
        raise ConfigError(f"{key}={value!r}: expected a number")
    if typ is str:
        if value is None:
            return ""
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}={value!r}: expected a string")
    if typ is tuple:
        if value is None or value == "" or value == []:
            return ()
        if isinstance(value, (list, tuple)):
            return tuple(value)
        if isinstance(value, (str, int)):
            return value  # parsed by parse_frames/_int_list in validate()
        raise ConfigError(f"{key}={value!r}: expected a list")
    if typ is dict:
        if value is None:
            return {}
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise ConfigError(f"{key}={value!r}: expected a mapping (JSON)") from None
        if not isinstance(value, dict):
            raise ConfigError(f"{key}={value!r}: expected a mapping")
        return dict(value)
    return value


# ---------------------------------------------------------------------------------------------
def parse_cli_overrides(items: list[str]) -> dict:
    """``["frames=4,8,16", "epochs=3"]`` -> ``{"frames": "4,8,16", "epochs": "3"}``."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value, e.g. frames=4,8,16")
        k, v = item.split("=", 1)
        out[k.strip()] = v
    return out


def _read_yaml(path: str | os.PathLike) -> dict:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"params file {p}: not found")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"params file {p}: not valid YAML ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"params file {p}: expected a mapping of key: value at top level")
    return data


def read_params_chain(params: str | os.PathLike) -> list[tuple[Path, dict]]:
    """The params file and the files it ``inherit``s from, base first, as ``(path, mapping)``
    (``inherit`` removed; every other key, ``suite:`` included, left as written)."""
    chain, seen = [], set()
    p = Path(params)
    while True:
        data = _read_yaml(p)
        chain.append((p, data))
        seen.add(p.resolve())
        parent = data.pop("inherit", None)
        if not parent:
            return chain[::-1]
        p = Path(parent) if Path(parent).is_absolute() else p.parent / parent
        if p.resolve() in seen:
            raise ConfigError(f"params file {p}: 'inherit' loops")


def load_config(params: str | os.PathLike | None = None, **overrides: Any) -> Config:
    """Load ``params`` (a YAML file of flat keys; ``inherit: other.yaml`` chains files), then apply
    keyword overrides. ``None``-valued overrides are ignored (notebook parameters left unset)."""
    values: dict = {}
    source = "overrides"
    if params:
        for path, data in read_params_chain(params):
            data.pop("suite", None)  # notebook-suite options (ffn_core.analysis.notebook.load_params)
            try:
                Config.from_dict({**values, **data}, source=f"params file {path}")
            except ConfigError as e:
                if "unknown key" in str(e):
                    raise
            values.update(data)
        source = f"params file {params} + overrides"
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Config.from_dict(values, source=source)


def save_config(cfg: Config, path: str | os.PathLike) -> Path:
    """Write ``cfg`` as YAML atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    atomic_write_text(path, text)
    return path


