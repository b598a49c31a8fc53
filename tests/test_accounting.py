"""Parameter / GMAC accounting against paper Table 1 (meta device: no arithmetic)."""
import pytest
import torch

from ffn_core.models import (
    accounting_table,
    count_parameters,
    create_model,
    gmacs_per_clip,
    list_models,
    separate_models_parameters,
)

# ResNet-50: 26,560 BN channels -> 2 extra copies x (weight, bias); WA: sum of bottleneck inplanes
R50_FFN3_EXTRA = 2 * 2 * 26_560 + 3 * 13_120  # = 145,600 (~0.146 M)


def _meta(name, **kw):
    with torch.device("meta"):
        return create_model(name, **kw)


@pytest.fixture(scope="module")
def r50():
    return {
        "st": _meta("tsm_r50", num_classes=174, frames=(16,)),
        "ffn": _meta("tsm_r50", num_classes=174, frames=(4, 8, 16)),
    }


@pytest.mark.parametrize("T,target", [(4, 16.4), (8, 32.9), (16, 65.8)])
def test_tsm_r50_gmacs_per_clip(r50, T, target):
    g = gmacs_per_clip(r50["st"], T, size=224)
    assert abs(g - target) / target < 0.02, g


@pytest.mark.parametrize("T", [4, 8, 16])
def test_ffn_adds_under_one_percent_flops(r50, T):
    st, ffn = gmacs_per_clip(r50["st"], T), gmacs_per_clip(r50["ffn"], T)
    assert st <= ffn < 1.01 * st  # WA is folded into the next convolution: no extra MACs


def test_ffn_parameter_overhead_r50(r50):
    extra = count_parameters(r50["ffn"]) - count_parameters(r50["st"])
    assert extra == R50_FFN3_EXTRA
    four = _meta("tsm_r50", num_classes=174, frames=(4, 8, 12, 16))
    assert count_parameters(four) - count_parameters(r50["st"]) == 3 * 2 * 26_560 + 4 * 13_120


def test_paper_parameter_counts():
    """Table 1: TSM 25.6M, FFN 25.7M - the ImageNet ResNet-50 count (1000-way classifier)."""
    st = count_parameters(_meta("tsm_r50", num_classes=1000, frames=(16,)))
    ffn = count_parameters(_meta("tsm_r50", num_classes=1000, frames=(4, 8, 16)))
    assert abs(st / 1e6 - 25.6) / 25.6 < 0.02 and abs(ffn / 1e6 - 25.7) / 25.7 < 0.02
    assert st == 25_557_032  # torchvision resnet50


def test_create_model_r50_accounting_table():
    model = _meta("tsm_r50", num_classes=174, frames=(4, 8, 16))
    rows = accounting_table(model, (4, 8, 16), size=224)
    assert [r["frames"] for r in rows] == [4, 8, 16] and [r["stream"] for r in rows] == [4, 8, 16]
    st_params = count_parameters(_meta("tsm_r50", num_classes=174, frames=(16,)))
    for row, target in zip(rows, (16.4, 32.8, 65.5)):  # Table 1, TSM-FFN row
        assert abs(row["gmacs"] - target) / target < 0.02
        assert row["gflops"] == pytest.approx(2 * row["gmacs"])
        assert abs(row["params"] - (st_params + R50_FFN3_EXTRA)) / row["params"] < 0.02
        assert row["params_M"] == pytest.approx(row["params"] / 1e6)


def test_separate_models_and_wo_ws_have_k_times_parameters(r50):
    st = count_parameters(r50["st"])
    assert separate_models_parameters("tsm_r50", 174, (4, 8, 16)) == 3 * st
    wo_ws = _meta("tsm_r50", num_classes=174, frames=(4, 8, 16), weight_sharing=False)
    assert count_parameters(wo_ws) == 3 * st


def test_r101_gmacs():
    g = gmacs_per_clip(_meta("tsm_r101", num_classes=174, frames=(8,)), 8)
    assert abs(g / 8 - 7.8) / 7.8 < 0.02  # torchvision resnet101: 7.8 GMACs per 224 px image


def test_gmacs_meta_equals_real_and_leaves_model_untouched():
    torch.manual_seed(0)
    model = create_model("tsm_tiny", num_classes=5, frames=(4, 8), width=0.5).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    meta = gmacs_per_clip(model, 4, size=32)
    real = gmacs_per_clip(model, 4, size=32, on_meta=False)
    assert meta == pytest.approx(real) and meta > 0
    assert model.training and all(m.training for m in model.modules())
    for k, v in model.state_dict().items():
        assert v.device.type == "cpu" and torch.equal(v, before[k]), k
    # linear in T (per-frame backbone + shared head)
    assert gmacs_per_clip(model, 8, size=32) == pytest.approx(2 * meta, rel=1e-3)


def test_count_parameters_trainable_only():
    model = create_model("tsm_tiny", num_classes=5, frames=(4, 8), width=0.5)
    n = count_parameters(model)
    model.get_classifier().weight.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == n - model.get_classifier().weight.numel()


def test_bad_arguments():
    model = _meta("tsm_tiny", num_classes=5, frames=(4,))
    with pytest.raises(ValueError, match="positive ints"):
        gmacs_per_clip(model, 0)


def test_models_command_prints_every_matching_model(capsys):
    from ffn_core.__main__ import main
    from ffn_core.models.accounting import model_table

    assert main(["models", "tiny", "--size", "16", "--classes", "5"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("| model | family |") and len(out) == 2 + len(list_models("tiny"))
    rows = {r["model"]: r for r in model_table(["slowfast_tiny", "tsm_tiny"], num_classes=5, size=16)}
    assert rows["slowfast_tiny"]["frames"] == [16, 32, 64] and rows["tsm_tiny"]["frames"] == [4, 8, 16]
    for r in rows.values():  # ST at the highest count; the FFN adds < 1 % GMACs and a few parameters
        assert r["params_st"] < r["params_ffn"] and 0 <= r["ffn_overhead_pct"] < 1
        assert r["gmacs_st"][r["frames"][-1]] == pytest.approx(4 * r["gmacs_st"][r["frames"][0]], rel=0.02)
    assert main(["models", "no_such_model"]) == 2
