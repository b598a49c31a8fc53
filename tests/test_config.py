"""The flat typed config: frames string forms, overrides, clear errors, round-trip."""
from pathlib import Path

import pytest
import yaml

from ffn_core.config import Config, ConfigError, load_config, parse_cli_overrides, parse_frames, save_config


@pytest.mark.parametrize(
    "value, expected",
    [
        ([4, 8, 16], (4, 8, 16)),
        ((16, 4, 8), (4, 8, 16)),
        ("[4,8,16]", (4, 8, 16)),
        ("[4, 8, 16]", (4, 8, 16)),
        ("4,8,16", (4, 8, 16)),
        ("16,4", (4, 16)),
        ("4 8 12 16", (4, 8, 12, 16)),
        ("(4,16)", (4, 16)),
        (16, (16,)),
        ("16", (16,)),
        (["4", "8"], (4, 8)),
    ],
)
def test_parse_frames_forms(value, expected):
    assert parse_frames(value) == expected
    assert load_config(frames=value).frames == expected


@pytest.mark.parametrize("bad", ["", "[]", [], "[4,4]", "4,-8", "0", "a,b", [4.5], True, None, "[4;8]"])
def test_parse_frames_rejects(bad):
    with pytest.raises(ConfigError, match="frames"):
        parse_frames(bad)


def test_unknown_key_named():
    with pytest.raises(ConfigError, match="unknown key.*'epoch'"):
        load_config(epoch=3)


@pytest.mark.parametrize(
    "key, value, fragment",
    [
        ("epochs", "three", "epochs='three': expected an integer"),
        ("batch_size", -2, "batch_size=-2: expected an integer > 0"),
        ("crop_size", 0, "crop_size=0"),
        ("lr", "fast", "lr='fast': expected a number"),
        ("lr", 0, "lr=0"),
        ("resume", "maybe", "resume='maybe': expected true or false"),
        ("strategy", "magic", "strategy='magic': expected one of"),
        ("device", "gpu", "device='gpu'"),
        ("num_workers", -1, "num_workers=-1"),
        ("rho", 1.5, "rho=1.5"),
        ("train_scales", "[1.0, 1.5]", "train_scales: expected a non-empty list of numbers in (0, 1]"),
        ("train_scales", "big", "entry 'big'"),
        ("cache_videos", "sometimes", "cache_videos='sometimes': expected true or false"),
    ],
)
def test_bad_values_name_key(key, value, fragment):
    with pytest.raises(ConfigError) as err:
        load_config(**{key: value})
    assert fragment in str(err.value)


def test_string_overrides_are_coerced():
    cfg = load_config(**parse_cli_overrides(["epochs=3", "lr=1e-3", "resume=true", "frames=4,16", "seed=7"]))
    assert (cfg.epochs, cfg.lr, cfg.resume, cfg.frames, cfg.seed) == (3, 1e-3, True, (4, 16), 7)


@pytest.mark.parametrize("value, expected", [("1.0", (1.0,)), ("[1, 0.875]", (1.0, 0.875)), ([0.75, 0.66], (0.75, 0.66)),
                                             (1, (1.0,))])
def test_train_scales_forms(value, expected):
    assert load_config(train_scales=value).train_scales == expected


def test_cli_override_needs_equals():
    with pytest.raises(ConfigError, match="key=value"):
        parse_cli_overrides(["epochs"])


def test_strategy_frame_count_rules():
    with pytest.raises(ConfigError, match="strategy=st"):
        load_config(strategy="st", frames=[4, 16])
    assert load_config(strategy="st", frames=16).frames == (16,)
    with pytest.raises(ConfigError, match="two frame counts"):
        load_config(strategy="mixed", frames=[4, 8, 16])
    with pytest.raises(ConfigError, match="finetune_from"):
        load_config(strategy="finetune", frames=4)


def test_yaml_roundtrip_and_inherit(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("epochs: 5\nframes: [4, 8, 16]\nlr: 1e-3\n")  # YAML 1.1 reads 1e-3 as a string
    child = tmp_path / "child.yaml"
    child.write_text("inherit: base.yaml\nepochs: 7\n")
    cfg = load_config(child, batch_size=4, seed=None)
    assert (cfg.epochs, cfg.frames, cfg.lr, cfg.batch_size, cfg.seed) == (7, (4, 8, 16), 1e-3, 4, 0)
    out = save_config(cfg, tmp_path / "run" / "config.yaml")
    again = load_config(out)
    assert again == cfg
    assert yaml.safe_load(out.read_text())["frames"] == [4, 8, 16]


def test_params_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 2\nepoch: 3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*unknown key.*'epoch'"):
        load_config(bad)
    notmap = tmp_path / "list.yaml"
    notmap.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(notmap)


def test_replace_revalidates():
    cfg = Config()
    assert cfg.replace(frames="8").frames == (8,)
    with pytest.raises(ConfigError):
        cfg.replace(batch_size=0)


PARAMS = sorted((Path(__file__).resolve().parents[1] / "params").glob("*.yaml"))


@pytest.mark.parametrize("path", PARAMS, ids=[p.stem for p in PARAMS])
def test_every_params_file_is_a_buildable_recipe(path):
    """Every recipe in params/ loads, names a registered model and builds it (meta device) with its
    model_kwargs and frames, so a GPU recipe never fails at its first line on the server."""
    import torch

    from ffn_core.analysis.notebook import load_params
    from ffn_core.engine.checkpoint import build_model

    cfg, _ = load_params(path)
    with torch.device("meta"):
        model = build_model(cfg, num_classes=7, frames=cfg.frames, pretrained="")
    assert model.frames == cfg.frames and model.model_name == cfg.model


def test_model_kwargs_label_smoothing_and_nesterov_keys():
    from ffn_core.engine.checkpoint import build_model

    cfg = Config(model="tsm_tiny", model_kwargs='{"width": 0.5}', label_smoothing="0.1")
    assert cfg.model_kwargs == {"width": 0.5} and cfg.label_smoothing == 0.1
    assert build_model(cfg, 5, (4, 8)).num_features == 64
    with pytest.raises(ConfigError, match=r"model_kwargs=.*tsm_tiny.*unknown argument\(s\) \['depth'\]"):
        build_model(Config(model_kwargs={"depth": 3}), 5, (4,))
    with pytest.raises(ConfigError, match="model='tsm_r9'.*registered models"):
        build_model(Config(model="tsm_r9"), 5, (4,))
    with pytest.raises(ConfigError, match="label_smoothing"):
        Config(label_smoothing=1.0)
    with pytest.raises(ConfigError, match="nesterov"):
        Config(nesterov=True, optimizer="adamw")
    assert Config(nesterov=True, optimizer="sgd").nesterov
