"""``python -m ffn_core suite --params params/cpu.yaml [--name NAME] [--only 03,07]``.

Executes the notebook chain 01..07 with the papermill API into ``runs/<name>/`` (executed
notebooks beside the chain's ``models/``, ``results/``, ``figures/`` and ``report.md``; the name
defaults to the params file's stem). Every notebook gets ``params_file`` and ``out_dir`` (absolute
paths) plus any ``-p key=value``; the kernel runs with cwd = the repository root and
``FFN_HEADLESS=1`` (widgets print a note instead of rendering). The chain stops at the first
failing notebook and names it, the cell and the error (papermill's PapermillExecutionError).
Per-notebook wall times go to ``runs/<name>/suite.json``. While a notebook runs, its milestone lines
(one per training epoch, evaluation and run started or reused) are printed as ``  NN_name | ...`` and
kept in ``runs/<name>/progress.log``.

Rerunning resumes: a notebook that finished ``ok`` last time with the same fingerprint (its
source, its parameters and the contents of the params files) is kept, not executed again - until
one notebook of the chain does run, after which every later one runs too (they read its results).
An interrupted notebook runs again, and its training runs continue from their ``last.pt``
(``analysis.runs.train_or_load`` resumes a run with the same config). ``--force`` reruns all.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sys
import threading
import time
from pathlib import Path

from ffn_core.config import ConfigError, atomic_write_text, read_params_chain

PROGRESS_ENV = "FFN_PROGRESS_FILE"  # = ffn_core.engine.progress.PROGRESS_ENV (not imported: no torch here)

__all__ = ["NOTEBOOKS", "select_notebooks", "run_suite", "fingerprint", "main"]

NOTEBOOKS = ("01_data_prep", "02_baseline_tfd", "03_train_ffn", "04_ablations", "05_baselines",
             "06_any_frame", "07_report")


def select_notebooks(only: str | None, available=NOTEBOOKS) -> list[str]:
    """``"03,07"`` / ``"3,7"`` / ``"03_train_ffn"`` -> notebook names in chain order."""
    if not only:
        return list(available)
    chosen = set()
    for item in (s.strip() for s in only.split(",") if s.strip()):
        match = [n for n in available if n == item or n.split("_")[0] == item.zfill(2) or n.startswith(item + "_")]
        if not match:
            raise ConfigError(f"--only {only!r}: {item!r} is not a notebook; expected numbers or names from "
                              f"{', '.join(available)}")
        chosen.update(match)
    return [n for n in available if n in chosen]


def _parse_value(text: str):
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def run_suite(params: str | os.PathLike, name: str | None = None, only: str | None = None,
              runs_dir: str | os.PathLike = "runs", notebooks_dir: str | os.PathLike | None = None,
              extra: dict | None = None, log_output: bool = False, cwd: str | os.PathLike | None = None,
              force: bool = False) -> int:
    """Run the chain; returns 0 on success, 1 at the first failing notebook (after printing where).
    Notebooks that finished with the same fingerprint are kept unless ``force`` (module docstring)."""
    from ffn_core.analysis.notebook import load_params, repo_root

    root = repo_root(cwd) if cwd else repo_root()
    p = Path(params)
    p = p if p.is_absolute() or p.is_file() else root / p
    if not p.is_file():
        raise ConfigError(f"--params {params}: file not found (looked in {Path.cwd()} and {root})")
    load_params(p.resolve())  # fail before starting any kernel if the params file is invalid
    name = name or p.stem
    out = Path(runs_dir) if Path(runs_dir).is_absolute() else root / runs_dir
    out = (out / name).resolve()
    out.mkdir(parents=True, exist_ok=True)
    nb_dir = Path(notebooks_dir) if notebooks_dir else root / "notebooks"
    selected = select_notebooks(only)
    parameters = {"params_file": str(p.resolve()), "out_dir": str(out), **(extra or {})}
    previous = os.environ.get("FFN_HEADLESS")
    os.environ["FFN_HEADLESS"] = "1"  # inherited by the kernels: widgets print a note instead
    try:
        return _run_chain(selected, nb_dir, out, parameters, root, log_output, str(p.resolve()), force)
    finally:
        if previous is None:
            os.environ.pop("FFN_HEADLESS", None)
        else:
            os.environ["FFN_HEADLESS"] = previous


def _code_digest() -> bytes:
    """sha256 of the ffn_core package's sources (a code change makes every notebook run again)."""
    pkg = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for f in sorted(pkg.rglob("*.py")):
        h.update(str(f.relative_to(pkg)).encode() + b"\0" + f.read_bytes())
    return h.digest()


def fingerprint(notebook: Path, parameters: dict, params_file: str | os.PathLike) -> str:
    """sha256 of a notebook's source, its parameters, every params file of the inherit chain and the
    package's code."""
    h = hashlib.sha256(Path(notebook).read_bytes())
    h.update(_code_digest())
    h.update(json.dumps(parameters, sort_keys=True, default=str).encode())
    for path, _ in read_params_chain(params_file):
        h.update(str(path.resolve()).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _previous(out: Path) -> dict:
    try:
        return json.loads((out / "suite.json").read_text()).get("notebooks", {})
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def _echo_progress(path: Path, nb: str, enabled: bool = True, every: float = 2.0):
    """While a notebook runs, print the milestone lines (epochs, evaluations, runs) that its kernel
    appends to ``path`` (``FFN_PROGRESS_FILE``, see :mod:`ffn_core.engine.progress`)."""
    os.environ[PROGRESS_ENV] = str(path.resolve())
    if not enabled:
        yield
        return
    start = path.stat().st_size if path.is_file() else 0
    done = threading.Event()

    def pump(final: bool = False):
        nonlocal start
        try:
            with open(path, "rb") as f:
                f.seek(start)
                data = f.read()
        except OSError:
            return
        cut = len(data) if final else data.rfind(b"\n") + 1  # whole lines only while it is being written
        for line in data[:cut].decode("utf-8", "replace").splitlines():
            print(f"  {nb} | {line}", flush=True)
        start += cut

    def loop():
        while not done.wait(every):
            pump()

    t = threading.Thread(target=loop, name="suite-progress", daemon=True)
    t.start()
    try:
        yield
    finally:
        done.set()
        t.join()
        pump(final=True)


def _run_chain(selected, nb_dir, out, parameters, root, log_output, params, force: bool = False) -> int:
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    before = {} if force else _previous(out)
    log = {"params": params, "out_dir": str(out), "notebooks": {}}
    print(f"suite: {len(selected)} notebook(s) -> {out}", flush=True)
    ran = False
    for nb in selected:
        src, dst = nb_dir / f"{nb}.ipynb", out / f"{nb}.ipynb"
        if not src.is_file():
            print(f"suite: {src} not found (generate with `python tools/make_notebooks.py`)", file=sys.stderr)
            return 1
        fp = fingerprint(src, parameters, params)
        prev = before.get(nb, {})
        if not ran and prev.get("status") == "ok" and prev.get("fingerprint") == fp and dst.is_file():
            log["notebooks"][nb] = prev
            atomic_write_text(out / "suite.json", json.dumps(log, indent=1))
            print(f"suite: {nb} finished earlier with the same inputs: kept ({dst}; --force reruns it)", flush=True)
            continue
        ran = True
        t0 = time.perf_counter()
        print(f"suite: running {nb} ...", flush=True)
        try:
            with _echo_progress(out / "progress.log", nb, enabled=not log_output):
                pm.execute_notebook(str(src), str(dst), parameters=parameters, cwd=str(root), kernel_name="python3",
                                    progress_bar=False, log_output=log_output, request_save_on_cell_execute=True)
        except PapermillExecutionError as e:
            secs = time.perf_counter() - t0
            log["notebooks"][nb] = {"status": "failed", "seconds": round(secs, 1), "cell": e.cell_index,
                                    "error": f"{e.ename}: {e.evalue}", "fingerprint": fp}
            atomic_write_text(out / "suite.json", json.dumps(log, indent=1))
            first = (e.source or "").strip().splitlines()[:6]
            print(f"suite: FAILED in notebook {nb}.ipynb at cell {e.cell_index} (execution count {e.exec_count}; "
                  f"the index counts papermill's injected-parameters cell): {e.ename}: {e.evalue}\n"
                  f"  executed notebook with the traceback: {dst}\n  cell source:\n"
                  + "\n".join("    " + line for line in first), file=sys.stderr, flush=True)
            return 1
        secs = time.perf_counter() - t0
        log["notebooks"][nb] = {"status": "ok", "seconds": round(secs, 1), "fingerprint": fp}
        atomic_write_text(out / "suite.json", json.dumps(log, indent=1))
        print(f"suite: {nb} ok in {secs:.0f} s -> {dst}", flush=True)
    report = out / "report.md"
    if report.is_file():
        print(f"suite: report: {report}")
    else:
        print(f"suite: done; no report yet ({report} is written by 07_report)")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ffn_core suite", description="Run the notebook chain 01..07 with papermill.")
    ap.add_argument("--params", default="params/cpu.yaml", help="params file (default params/cpu.yaml)")
    ap.add_argument("--name", default=None, help="runs/<name>/ (default: the params file's stem)")
    ap.add_argument("--only", default=None, help="comma-separated notebooks, e.g. 03,07")
    ap.add_argument("--runs-dir", default="runs", help="parent of the run folder (default runs/, relative to the repo root)")
    ap.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                    help="extra notebook parameter for every notebook (YAML value), e.g. -p epochs=3")
    ap.add_argument("--log-output", action="store_true", help="stream the notebooks' output to this terminal")
    ap.add_argument("--force", action="store_true", help="rerun every notebook, even those that finished earlier")
    a = ap.parse_args(argv)
    extra = {}
    for item in a.param:
        if "=" not in item:
            print(f"suite: -p {item!r}: expected KEY=VALUE", file=sys.stderr)
            return 2
        k, v = item.split("=", 1)
        extra[k.strip()] = _parse_value(v)
    try:
        return run_suite(a.params, a.name, a.only, a.runs_dir, extra=extra, log_output=a.log_output, force=a.force)
    except ConfigError as e:
        print(f"suite: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
