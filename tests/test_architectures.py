"""Table 8 across architectures: typed rows, per-architecture claims, the report section, contexts."""
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ffn_core.analysis import architectures as arc
from ffn_core.analysis import notebook as nb
from ffn_core.analysis import paper_numbers
from ffn_core.analysis.report import _table8_section
from ffn_core.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _rows(model, family, main, h, st, ffn, frames=(4, 8, 16)):
    out = []
    for role, spec, accs in (("H-trained", f"{frames[-1]}F", h), ("ST", "", st), ("FFN", "/".join(map(str, frames)), ffn)):
        for t, a in zip(frames, accs):
            out.append(dict(method=role, spec=spec, params="", frames=t, top1=a, gmacs=0.01 * t, trained=True,
                            run="", epochs=2, model=model, family=family, role=role, main=main))
    return out


@pytest.fixture
def table8():
    return pd.DataFrame(_rows("tsm_tiny_s2", "TSM", True, (10, 40, 80), (60, 70, 80), (62, 75, 85))
                        + _rows("uniformer_xs", "Uniformer", False, (12, 50, 70), (55, 65, 70), (57, 64.5, 74)),
                        columns=arc.COLUMNS)


def test_claims_cover_every_other_architecture_with_typed_verdicts(table8):
    claims = {c.id: c for c in arc.table8_claims({"table8": table8})}
    assert set(claims) == {"table8_uniformer_xs_tfd", "table8_uniformer_xs_near_st", "table8_uniformer_xs_beats_st"}
    assert claims["table8_uniformer_xs_tfd"].holds is True           # 12 vs 55 at 4 frames
    assert claims["table8_uniformer_xs_near_st"].holds is True       # worst -0.5 >= -1
    assert claims["table8_uniformer_xs_beats_st"].holds is False     # 64.5 < 65 at 8 frames
    assert "+7.08/+5.15/+2.17" in claims["table8_uniformer_xs_near_st"].paper
    worse = table8.assign(top1=table8["top1"].where(~((table8.model == "uniformer_xs") & (table8.role == "FFN")
                                                       & (table8.frames == 8)), 60.0))
    assert {c.id: c.holds for c in arc.table8_claims({"table8": worse})}["table8_uniformer_xs_near_st"] is False
    assert arc.table8_claims({"table8": pd.DataFrame()}) == []


def test_report_section_puts_each_architecture_beside_its_paper_group(table8):
    text = _table8_section(table8)
    assert "### TSM: `tsm_tiny_s2` (the chain's model)" in text and "### Uniformer: `uniformer_xs`" in text
    uni = text.split("### Uniformer")[1]
    assert "44.33" in uni and "58.88" in uni and "39.71" not in uni  # Uniformer's paper numbers, not TSM's
    assert "FFN > ST at every trained count" in text and "not run" not in text
    assert "not run" in _table8_section(pd.DataFrame())


def test_paper_table8_has_four_families_with_their_frame_counts():
    assert set(paper_numbers.TABLE8) == {"TSM", "TEA", "SlowFast", "Uniformer"}
    sf = paper_numbers.paper_table("table8_slowfast")
    assert sorted(sf.frames.unique()) == [16, 32, 64]
    uni = paper_numbers.paper_table("table8_uniformer").set_index(["method", "frames"])["top1"]
    assert uni[("FFN", 4)] - uni[("ST", 4)] == pytest.approx(7.08)
    with pytest.raises(KeyError, match="Table 8 has no architecture"):
        paper_numbers.table8_name("ResNeXt")


def test_architecture_context_shares_data_and_counts_and_separates_runs(tmp_path):
    ctx = nb.setup("params/smoke.yaml", tmp_path / "chain", frames="[4,16]", seed=3)
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"inherit": str(ROOT / "params" / "smoke.yaml"), "model": "tsm_tiny_s2",
                                     "lr": 0.01, "frames": [8], "suite": {"init_epochs": 2}}))
    actx = arc.architecture_context(ctx, str(other))
    assert actx.cfg.model == "tsm_tiny_s2" and actx.cfg.lr == 0.01               # its own recipe ...
    assert actx.cfg.frames == (4, 16) and actx.cfg.seed == 3                      # ... on the chain's counts
    assert actx.cfg.data_root == ctx.cfg.data_root and actx.options["init_epochs"] == 2
    assert actx.model_dir("st_4_e1") == tmp_path / "chain" / "models" / "tsm_tiny_s2" / "st_4_e1"
    st, ffn = arc.architecture_exps(actx, (4, 16))
    assert [e.cfg.frames for e in st] == [(4,), (16,)] and all(e.cfg.model == "tsm_tiny_s2" for e in st + ffn)
    assert [e.method for e in ffn] == ["FFN", "FFN (init ST-16)"]
    assert ffn[1].cfg.init_from == str(st[-1].run_dir / "best.pt")
    with pytest.raises(ConfigError, match="not found"):
        arc.architecture_context(ctx, "params/none.yaml")
    with pytest.raises(ConfigError, match="the chain's own model"):
        arc.architecture_context(ctx, "params/smoke.yaml")
    with pytest.raises(ConfigError, match="not found"):
        ctx.path_list_option("architectures", "[params/none.yaml]")
    assert ctx.path_list_option("architectures", "[params/smoke.yaml]") == ["params/smoke.yaml"]
    assert ctx.path_list_option("architectures", None) == []
