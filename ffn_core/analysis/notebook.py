"""Helpers every notebook calls first: repo-root paths, parameter checking, headless detection.

A notebook's ``parameters`` cell holds plain defaults (``params_file``, ``out_dir``, ``frames``,
``seed``, ``device``, ...) that papermill may override, e.g. ``-p frames "[4,8,16]"`` (a *string*).
:func:`setup` turns them into a validated :class:`~ffn_core.config.Config` (bad values raise
:class:`~ffn_core.config.ConfigError` naming the parameter) plus the chain's output folder.

Relative paths are resolved against the repository root (the folder holding ``pyproject.toml``),
not the kernel's cwd, so a notebook behaves the same under ``python -m ffn_core suite`` (cwd =
repo root) and when opened in JupyterLab from ``notebooks/``.

Params files may carry a ``suite:`` section of notebook-only options (e.g. ``ablation_epochs``);
it is stripped before the Config is built and exposed as :attr:`NotebookContext.options`.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ffn_core.config import Config, ConfigError, _coerce, parse_frames, read_params_chain

__all__ = ["repo_root", "resolve", "load_params", "setup", "NotebookContext", "is_headless",
           "PATH_KEYS"]

#: Config keys holding file-system paths, made absolute against the repo root.
PATH_KEYS = ("data_root", "train_list", "val_list", "out_dir", "finetune_from", "pretrained")


def repo_root(start: str | os.PathLike | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd, then this file) with pyproject.toml."""
    candidates = [Path(start)] if start else [Path.cwd(), Path(__file__)]
    for c in candidates:
        c = c.resolve()
        for d in [c, *c.parents]:
            if (d / "pyproject.toml").is_file() and (d / "ffn_core").is_dir():
                return d
    raise FileNotFoundError(f"no repository root (pyproject.toml + ffn_core/) above {candidates[0]}")


def resolve(path: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """``path`` if absolute, else ``root / path`` (root: :func:`repo_root`)."""
    p = Path(os.path.expanduser(str(path)))
    return p if p.is_absolute() else (Path(root) if root else repo_root()) / p


def load_params(params_file: str | os.PathLike, **overrides: Any) -> tuple[Config, dict]:
    """Like :func:`ffn_core.config.load_config`, but strips and returns the ``suite:`` sections.

    Returns ``(config, suite_options)``; later files in an ``inherit`` chain override earlier
    ones, key by key, in both parts. ``None`` overrides are ignored.
    """
    names = {f.name for f in dataclasses.fields(Config)}
    values: dict = {}
    suite: dict = {}
    for path, data in read_params_chain(params_file):
        section = data.pop("suite", None) or {}
        if not isinstance(section, dict):
            raise ConfigError(f"params file {path}: 'suite' must be a mapping of option: value")
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"params file {path}: unknown key(s) {unknown}; put notebook-only "
                              f"options under 'suite:'; known keys: {', '.join(sorted(names))}")
        values.update(data)
        suite.update(section)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Config.from_dict(values, source=f"params file {params_file} + notebook parameters"), suite


@dataclass
class NotebookContext:
    """What a notebook works with: the base config, the chain's output folder and options."""

    cfg: Config
    out_dir: Path
    params_file: Path
    root: Path
    options: dict = field(default_factory=dict)
    models_subdir: str = ""  # another architecture's runs live in models/<model>/ (architectures.py)

    # -- options: notebook parameter (not None) > params file 'suite:' section > default -------
    def option(self, key: str, value: Any = None, default: Any = None) -> Any:
        if value is not None:
            return value
        return self.options.get(key, default)

    def _int(self, key: str, value: Any, default: Any, minimum: int, expected: str) -> int:
        v = self.option(key, value, default)
        try:
            if isinstance(v, bool) or float(v) != int(float(v)) or int(float(v)) < minimum:
                raise ValueError
            return int(float(v))
        except (TypeError, ValueError):
            raise ConfigError(f"{key}={v!r}: expected {expected}") from None

    def int_option(self, key: str, value: Any = None, default: int | None = None, minimum: int = 1) -> int:
        return self._int(key, value, default, minimum, f"an integer >= {minimum}" if minimum != 1 else "an integer > 0")

    def count_option(self, key: str, value: Any = None, default: int = 0) -> int:
        """Like :meth:`int_option` but 0 is allowed (0 = off)."""
        return self._int(key, value, default, 0, "an integer >= 0 (0: off)")

    def bool_option(self, key: str, value: Any = None, default: bool = False) -> bool:
        """true/false, yes/no, 1/0 (as the config's boolean keys)."""
        return _coerce(key, self.option(key, value, default), bool)

    def float_option(self, key: str, value: Any = None, default: float | None = None) -> float:
        v = self.option(key, value, default)
        try:
            if isinstance(v, bool):
                raise ValueError
            return float(v)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}={v!r}: expected a number") from None

    def choice_option(self, key: str, value: Any, choices: tuple) -> Any:
        v = self.option(key, value, choices[0])
        if v not in choices:
            raise ConfigError(f"{key}={v!r}: expected one of {', '.join(map(str, choices))}")
        return v

    def frames_option(self, key: str, value: Any = None, default: Any = None) -> tuple:
        return parse_frames(self.option(key, value, default), key=key)

    def float_list_option(self, key: str, value: Any = None, default: Any = None) -> list[float]:
        v = self.option(key, value, default)
        if isinstance(v, str):
            v = yaml.safe_load(v if v.strip().startswith("[") else f"[{v}]")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            v = [v]
        try:
            return [float(x) for x in v]
        except (TypeError, ValueError):
            raise ConfigError(f"{key}={v!r}: expected a list of numbers, e.g. [0.5, 2.0]") from None

    def path_list_option(self, key: str, value: Any = None, default: Any = ()) -> list[str]:
        """A list of file paths: ``["params/a.yaml"]``, the papermill string ``"[params/a.yaml]"`` or
        ``"a.yaml,b.yaml"``; ``[]``/``""``/``"none"``: none. Each must exist (relative to the repo root)."""
        v = self.option(key, value, default)
        if isinstance(v, str):
            text = v.strip()
            v = [] if text.lower() in ("", "none", "[]") else (yaml.safe_load(text) if text.startswith("[")
                                                                 else [p.strip() for p in text.split(",") if p.strip()])
        if v is None:
            v = []
        if not isinstance(v, (list, tuple)) or not all(isinstance(p, (str, os.PathLike)) for p in v):
            raise ConfigError(f"{key}={v!r}: expected a list of file paths, e.g. [params/cpu_uniformer_xs.yaml]")
        for p in v:
            if not resolve(p, self.root).is_file():
                raise ConfigError(f"{key}: file {resolve(p, self.root)} not found")
        return [str(p) for p in v]

    def frame_sets_option(self, key: str, value: Any = None, default: Any = None) -> list[tuple]:
        v = self.option(key, value, default)
        if isinstance(v, str):
            v = yaml.safe_load(v)
        if not isinstance(v, (list, tuple)) or not v:
            raise ConfigError(f"{key}={v!r}: expected a list of frame-count lists, e.g. [[4,16],[4,8,16]]")
        return [parse_frames(s, key=f"{key}[{i}]") for i, s in enumerate(v)]

    def calib_list_option(self, key: str, value: Any = None) -> Path | None:
        """A held-out list file (same format as val.txt) or None.

        ``"auto"`` (the default) is ``<data_root>/calib.txt`` when it exists (the synthetic tiers
        write one), else None; ``""``/``"none"``/``false`` is None; anything else is a path (relative
        to the repo root) that must exist.
        """
        v = self.option(key, value, "auto")
        if v is None or v is False or (isinstance(v, str) and v.strip().lower() in ("", "none", "false", "off")):
            return None
        if not isinstance(v, (str, os.PathLike)):
            raise ConfigError(f"{key}={v!r}: expected 'auto', 'none' or the path of a list file like val.txt")
        if str(v).strip().lower() == "auto":
            auto = Path(self.cfg.data_root) / "calib.txt"
            return auto if auto.is_file() else None
        p = resolve(v, self.root)
        if not p.is_file():
            raise ConfigError(f"{key}={v!r}: list file {p} not found (expected a list like val.txt, or 'auto'/'none')")
        return p

    # -- paths ---------------------------------------------------------------------------------
    def results(self, name: str) -> Path:
        """``<out_dir>/results/<name>`` (folder created): JSON/CSV the next notebooks read."""
        (self.out_dir / "results").mkdir(parents=True, exist_ok=True)
        return self.out_dir / "results" / name

    def figure(self, name: str) -> Path:
        """``<out_dir>/figures/<name>`` (folder created)."""
        (self.out_dir / "figures").mkdir(parents=True, exist_ok=True)
        return self.out_dir / "figures" / name

    def model_dir(self, label: str) -> Path:
        """``<out_dir>/models/[<models_subdir>/]<label>``: one training run (config.yaml, metrics.json, best.pt)."""
        return self.out_dir / "models" / self.models_subdir / label if self.models_subdir else \
            self.out_dir / "models" / label


def _absolutize(cfg: Config, root: Path) -> Config:
    changes = {}
    for key in PATH_KEYS:
        value = getattr(cfg, key)
        if not value or (key == "pretrained" and value == "imagenet"):
            continue
        p = resolve(value, root)
        if str(p) != value:
            changes[key] = str(p)
    return cfg.replace(**changes) if changes else cfg


def setup(params_file: str | os.PathLike = "params/smoke.yaml", out_dir: str | os.PathLike = "runs/smoke",
          **overrides: Any) -> NotebookContext:
    """Validate a notebook's parameters and return its :class:`NotebookContext`.

    ``overrides`` are Config keys (``frames``, ``seed``, ``device``, ``epochs``, ``dataset``,
    ``data_root`` ...; ``None`` = keep the params file's value), except ``options``: a dict of
    notebook-only options layered over the params file's ``suite:`` section. The base config's
    ``strategy`` is ``ffn``; notebooks derive every experiment from it with ``cfg.replace``.

    Raises:
        ConfigError: naming the parameter and what was expected (e.g. frames="[4,4]").
    """
    root = repo_root()
    if not params_file or not isinstance(params_file, (str, os.PathLike)):
        raise ConfigError(f"params_file={params_file!r}: expected the path of a params/*.yaml file")
    if not out_dir or not isinstance(out_dir, (str, os.PathLike)):
        raise ConfigError(f"out_dir={out_dir!r}: expected a folder path for the results")
    options = overrides.pop("options", None) or {}
    overrides.setdefault("strategy", "ffn")
    pfile = resolve(params_file, root)
    cfg, suite = load_params(pfile, **overrides)
    out = resolve(out_dir, root)
    cfg = _absolutize(cfg.replace(out_dir=str(out / "models" / "base"), name=out.name), root)
    merged = {**suite, **{k: v for k, v in options.items() if v is not None}}
    out.mkdir(parents=True, exist_ok=True)
    return NotebookContext(cfg=cfg, out_dir=out, params_file=pfile, root=root, options=merged)


# ---------------------------------------------------------------------------------------------
_HEADLESS_HOSTS = ("papermill", "nbclient", "nbconvert", "pytest", "nbmake")


def is_headless() -> bool:
    """True when no notebook frontend can render widgets (papermill, nbconvert, plain Python).

    Order: ``FFN_HEADLESS=1/0`` decides if set (the suite sets 1); not an IPython kernel ->
    headless; a Jupyter server session (``JPY_SESSION_NAME``) or VS Code -> interactive; a kernel
    whose parent process is papermill/nbclient/nbconvert/pytest -> headless; otherwise interactive.
    """
    flag = os.environ.get("FFN_HEADLESS", "").strip().lower()
    if flag in ("1", "true", "yes"):
        return True
    if flag in ("0", "false", "no"):
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return True
    shell = get_ipython()
    if shell is None or type(shell).__name__ != "ZMQInteractiveShell":
        return True
    if os.environ.get("JPY_SESSION_NAME") or os.environ.get("VSCODE_PID"):
        return False
    try:
        cmdline = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return any(h in cmdline for h in _HEADLESS_HOSTS)
