"""split-calib: a class-stratified, deterministic held-out calibration list (issue 15.4)."""
import subprocess
import sys

import pytest

from ffn_core.data import read_list_file
from ffn_core.data.calib import split_calibration


def _list(tmp_path, sizes):
    lines = [f"vid_{c}_{i} {10 + i} {c}" for c, n in enumerate(sizes) for i in range(n)]
    path = tmp_path / "train.txt"
    path.write_text("\n".join(lines[::-1]) + "\n")  # not sorted by class
    return path, lines


@pytest.mark.parametrize("fraction", [0.05, 0.2, 0.5])
def test_split_is_stratified_complete_and_deterministic(tmp_path, fraction):
    sizes = [40, 20, 7, 2, 1]
    path, lines = _list(tmp_path, sizes)
    calib, rest, counts = split_calibration(path, fraction, seed=3)
    held, kept = calib.read_text().splitlines(), rest.read_text().splitlines()
    assert sorted(held + kept) == sorted(lines) and not set(held) & set(kept)  # a partition, lines verbatim
    order = path.read_text().splitlines()
    assert held == [ln for ln in order if ln in set(held)]  # original order kept
    for c, n in enumerate(sizes):
        k = sum(1 for r in read_list_file(calib) if r.label == c)
        want = min(max(round(fraction * n), 1 if n >= 2 else 0), n - 1)
        assert k == want == counts[c][0] and counts[c][1] == n - k  # never all of a class
    again = split_calibration(path, fraction, seed=3, out_dir=tmp_path / "again")
    assert again[0].read_text() == calib.read_text()
    other = split_calibration(path, fraction, seed=4, out_dir=tmp_path / "other")
    assert other[0].read_text() != calib.read_text()  # the seed matters


def test_cli_and_errors(tmp_path):
    path, _ = _list(tmp_path, [10, 10])
    r = subprocess.run([sys.executable, "-m", "ffn_core", "split-calib", str(path), "--fraction", "0.1"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "2 videos of 2 classes" in r.stdout
    assert (tmp_path / "calib.txt").is_file() and (tmp_path / "train_wo_calib.txt").is_file()
    for args, msg in [([str(path), "--fraction", "1.5"], "expected a number in (0, 1)"),
                      ([str(tmp_path / "nope.txt")], "nope.txt not found")]:
        r = subprocess.run([sys.executable, "-m", "ffn_core", "split-calib", *args], capture_output=True, text=True)
        assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "bad.txt"
    bad.write_text("a 3 0\nb three 1\n")
    r = subprocess.run([sys.executable, "-m", "ffn_core", "split-calib", str(bad)], capture_output=True, text=True)
    assert r.returncode == 2 and "bad.txt:2" in r.stderr
