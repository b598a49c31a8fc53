"""predict: one user video at a frame count, a GMACs budget or a cascade, with evaluation's decode
and transforms (issue 15.1)."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from ffn_core.config import Config, ConfigError
from ffn_core.data import read_list_file
from ffn_core.engine import evaluate, fit
from ffn_core.engine.predict import Predictor

FRAMES = (2, 4)


@pytest.fixture(scope="module")
def ckpt(data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("predict_run")
    cfg = Config.from_dict(dict(dataset="synthetic", data_root=str(data_root), frames=FRAMES, crop_size=16,
                                model="tsm_tiny", strategy="ffn", epochs=1, batch_size=4, optimizer="adamw",
                                lr=2e-3, num_workers=0, device="cpu", log_every=100, out_dir=str(out), dropout=0.0))
    fit(cfg)
    return out / "best.pt", cfg


def _first_val_video(data_root):
    return data_root / read_list_file(data_root / "val.txt")[0].path


@pytest.mark.parametrize("T", [2, 3, 4])
def test_probabilities_equal_evaluations(ckpt, data_root, tmp_path, T):
    """The clip predict scores is the clip eval scores: same probabilities for the first val video."""
    path, _ = ckpt
    evaluate(path, frames=(T,), out_dir=tmp_path, save_logits=True)
    want = np.load(tmp_path / f"logits_T{T}.npz")["probs"][0]
    got = Predictor(path).probabilities(_first_val_video(data_root), T).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_budget_and_cascade(ckpt, data_root):
    path, _ = ckpt
    pr = Predictor(path)
    video = _first_val_video(data_root)
    g2, g4 = pr.gmacs(2), pr.gmacs(4)
    assert 0 < g2 < g4
    assert pr.predict(video, budget=g4)["frames_run"] == [4]
    assert pr.predict(video, budget=(g2 + g4) / 2)["frames_run"] == [2]
    with pytest.raises(ConfigError, match="cheapest, 2 frames"):
        pr.predict(video, budget=g2 / 2)
    first = pr.predict(video, cascade=0.0)
    assert first["frames_run"] == [2] and first["gmacs"] == pytest.approx(g2, rel=1e-4)
    full = pr.predict(video, cascade=1.0)
    assert full["frames_run"] == [2, 4] and full["gmacs"] == pytest.approx(g2 + g4, rel=1e-4)
    top = full["top5"]
    assert len(top) == 5 and all(a["prob"] >= b["prob"] for a, b in zip(top, top[1:]))
    assert top[0]["prob"] == pytest.approx(float(pr.probabilities(video, 4).max()), abs=1e-6)
    assert pr.predict(video, frames=6)["streams"] == [4]  # untrained count: nearest trained stream
    with pytest.raises(ConfigError, match="exactly one"):
        pr.predict(video, frames=2, cascade=0.5)


def test_frame_folder_gives_the_videos_prediction(ckpt, data_root, tmp_path):
    from PIL import Image

    from ffn_core.data import open_reader

    path, _ = ckpt
    video = _first_val_video(data_root)
    with open_reader(str(video), "video") as r:
        frames = r.read(np.arange(r.num_frames()))
    folder = tmp_path / "clip_frames"
    folder.mkdir()
    for i, f in enumerate(frames, start=1):
        Image.fromarray(f).save(folder / f"{i:05d}.png")
    pr = Predictor(path, template="{:05d}.png")
    torch.testing.assert_close(pr.probabilities(folder, 4), pr.probabilities(video, 4), atol=1e-5, rtol=0)


def test_cli_text_json_and_errors(ckpt, data_root, tmp_path):
    path, _ = ckpt
    video = _first_val_video(data_root)
    run = lambda *a: subprocess.run([sys.executable, "-m", "ffn_core", "predict", "--checkpoint", str(path), *a],  # noqa: E731
                                    capture_output=True, text=True)
    r = run(str(video), "--frames", "4")
    assert r.returncode == 0 and "4 frames (stream 4)" in r.stdout and r.stdout.count("%") == 5
    r = run(str(video), str(video), "--cascade", "0.7", "--json")
    out = json.loads(r.stdout)
    assert r.returncode == 0 and len(out) == 2 and out[0] == out[1] and out[0]["mode"] == "cascade=0.7"
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video" * 100)
    for args, name in [((str(tmp_path / "missing.mp4"), "--frames", "4"), "missing.mp4"),
                       ((str(bad), "--frames", "4"), "broken.mp4")]:
        r = run(*args)
        ours = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]  # (decoders print their own notes)
        assert r.returncode == 2 and len(ours) == 1 and name in ours[0] and "Traceback" not in r.stderr
