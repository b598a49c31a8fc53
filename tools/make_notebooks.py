"""Generate notebooks/01..07 (*.ipynb) from the cell texts below, with nbformat.

The notebooks are thin: markdown that explains, code cells that call ``ffn_core``. Keeping their
source here makes them reviewable as plain Python and regenerable: ``python tools/make_notebooks.py``
(``--check`` exits 1 if a committed notebook differs from what this script writes). Output is
stripped, with ``kernelspec`` + ``language_info`` metadata (papermill needs both) and a first code
cell tagged ``parameters``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]

COMMON_PARAMS = '''\
# Parameters (papermill -p / the suite override these). Relative paths are relative to the repo root.
params_file = "params/smoke.yaml"  # flat Config keys, optionally a `suite:` section of notebook options
out_dir = "runs/smoke"             # the chain's shared results folder (models/, results/, figures/)
frames = None                      # e.g. [4, 8, 16] or the string "[4,8,16]"; None: the params file's
seed = None                        # None: the params file's
device = None                      # auto | cpu | cuda | cuda:N; None: the params file's
epochs = None                      # main training runs; None: the params file's
model = None                       # a name from ffn_core.models.list_models(), e.g. uniformer_xs; None: the params file's
dataset = None                     # e.g. ssv2, with data_root set to the output folder of python -m ffn_core prepare
data_root = None
checkpoint = "best"                # evaluate best.pt (best epoch at the highest count, as the paper) or last.pt
'''

SETUP = '''\
%matplotlib inline
import pandas as pd
from IPython.display import Markdown, display
from ffn_core.analysis import architectures as arc, cascade, experiments as ex, inference, notebook as nb, plots, report, tables, paper_numbers

ctx = nb.setup(params_file, out_dir, frames=frames, seed=seed, device=device, epochs=epochs,
               dataset=dataset, data_root=data_root, model=model)
which = ctx.choice_option("checkpoint", checkpoint, ("best", "last"))
{extra}print(f"results in {{ctx.out_dir}}; frames {{ctx.cfg.frames}}, {{ctx.cfg.epochs}} epochs, model {{ctx.cfg.model}}")'''

DATA = '''\
ex.ensure_data(ctx.cfg, data_seed=ctx.option("data_seed", default=0))  # generates the synthetic tier if missing'''


def params_cell(extra: str = "") -> nbformat.NotebookNode:
    cell = new_code_cell(COMMON_PARAMS + extra)
    cell.metadata["tags"] = ["parameters"]
    return cell


def setup_cell(extra: str = "") -> nbformat.NotebookNode:
    return new_code_cell(SETUP.format(extra=extra))


def md(text: str) -> nbformat.NotebookNode:
    return new_markdown_cell(text.strip())


def code(text: str) -> nbformat.NotebookNode:
    return new_code_cell(text.strip())


PARAM_NOTE = md("""
The first code cell holds the **parameters** (tagged `parameters` for papermill). `nb.setup` checks
them with `ffn_core.config` and turns a bad value into a `ConfigError` that names the parameter
(e.g. `frames="[4,4]"`). Notebook options such as `ablation_epochs` can also come from a `suite:`
section of the params file; a value given here wins.
""")


def nb01() -> list:
    return [
        md("""
# 01 — Data: the benchmark and how frames are sampled

FFN (paper §3.1) samples every video at several frame counts *L < M < H* with TSN segment sampling:
the video is cut into *T* equal segments and one frame is taken from each (a random one in
training, the centre at test time). The three sequences are drawn independently, so a 4-frame clip
is a coarser view of the same whole video, not its first 4 frames.

This notebook generates the synthetic temporal benchmark when it is missing (or checks a prepared
real dataset, `dataset=` + `data_root=`), writes `results/01_data.json`, plots the sampled indices
of one video for every frame count and shows a few clips.
"""),
        params_cell('n_clips = 3                        # clips shown\n'),
        PARAM_NOTE,
        setup_cell(),
        code(DATA),
        md("## The data\nCounts, classes and video lengths (`results/01_data.json`), and the resolved base config (`results/config.yaml`)."),
        code('''
info = ex.data_summary(ctx.cfg)
ex.save_json(info, ctx.results("01_data.json"))
ex.save_base_config(ctx)
{k: v for k, v in info.items() if k != "class_names"}
'''),
        code('print(", ".join(info["class_names"]))'),
        md("## Sampled indices\nOne row per frame count and mode: `train` draws one random frame per segment, `val` takes segment centres."),
        code('''
samp = ex.sampling_table(info["video_frames_max"], ctx.cfg.frames, seed=ctx.cfg.seed)
ex.save_table(samp, ctx.results("01_sampling.csv"))
plots.plot_sampling(samp, info["video_frames_max"], ctx.figure("01_sampling.png"))
'''),
        md("## A few validation clips at the highest frame count"),
        code('''
clips, titles = ex.example_clips(ctx.cfg, n=n_clips)
plots.plot_clips(clips, titles, ctx.figure("01_clips.png"))
'''),
    ]


def nb02() -> list:
    return [
        md("""
# 02 — Temporal Frequency Deviation (Fig. 1–3, Table 6 rows 1–2)

Train one single-frame-count model (**ST**) at each count in `frames`, then evaluate every model at
every count in `tfd_frames`. A model trained at 16 frames loses much of its accuracy at 4 frames
(paper: 48.55% → 20.60%, while ST-4 reaches 39.71%): the **TFD**. The loss shrinks as the
inference count approaches the trained one (*nearby alleviation*, Fig. 2). The paper attributes it
to shifted normalization statistics (Eq. 1, Fig. 3), which we plot for the 4- and 16-frame models.

Writes `results/02_cross_eval.csv` (long rows), `02_cross_eval_matrix.csv`, `02_tfd_matrix.csv`,
`02_costs.csv`, `02_bn_stats.csv` and the figures `02_*.png`.
"""),
        params_cell('tfd_frames = None                  # inference counts; None: trained + every even count between\n'),
        PARAM_NOTE,
        setup_cell(),
        code(DATA),
        md("## Train (or reuse) one ST model per frame count\nA run dir that already holds `metrics.json` for the same config is reused, not retrained."),
        code('''
st = ex.st_exps(ctx, ctx.cfg.frames)
ex.train(st);
'''),
        md("## Cross-evaluation"),
        code('''
eval_frames = ctx.frames_option("tfd_frames", tfd_frames, default=ex.default_tfd_frames(ctx.cfg.frames))
cross = ex.accuracy_rows(ctx, st, eval_frames, which)
ex.save_table(cross, ctx.results("02_cross_eval.csv"))
matrix = tables.cross_eval_matrix(cross)
tfd = tables.tfd_matrix(matrix)
matrix.to_csv(ctx.results("02_cross_eval_matrix.csv")); tfd.to_csv(ctx.results("02_tfd_matrix.csv"))
matrix.round(2)
'''),
        code('plots.plot_heatmap(matrix, ctx.figure("02_cross_eval_heatmap.png"), "top-1: rows trained at, columns evaluated at")'),
        md("TFD = accuracy minus the ST model trained at the evaluated count (0 on the diagonal; negative = deviation)."),
        code('plots.plot_heatmap(tfd, ctx.figure("02_tfd_heatmap.png"), "TFD: top-1 minus ST at that count", center=0, cmap="RdBu", label="Δ top-1 (points)")'),
        md("## Accuracy vs computation (Fig. 1)\nEach line is one model evaluated at several counts; the dashed line joins the ST models at their own counts."),
        code('''
ex.save_table(ex.costs_table(st), ctx.results("02_costs.csv"))
plots.plot_acc_vs_gmacs(cross, ctx.figure("02_acc_vs_gmacs.png"))
'''),
        md("## Normalization shifting (Fig. 3)\nChannel-averaged BN running mean and variance of the last ResNet stage, for the lowest- and highest-count ST models."),
        code('''
bn = inference.bn_stats_table([st[0], st[-1]], which)
ex.save_table(bn, ctx.results("02_bn_stats.csv"))
plots.plot_bn_stats(bn, ctx.figure("02_bn_stats.png"))
'''),
        md("## Our table beside the paper's"),
        code('report.side_by_side(report.with_st_spec(cross), paper_numbers.paper_table("fig2")).round(2)'),
    ]


def nb03() -> list:
    return [
        md("""
# 03 — Train FFN (Table 1 / Table 8 style)

One Frame Flexible Network trained on all of `frames` at once: shared weights, private
normalization and weight alteration per frame count (MFAD), cross-entropy on the highest count and
KL distillation of the others towards it (MFAL, Eq. 3–5; `loss: mfal`, the GPU recipes) or, with
`loss: ce_all`, cross-entropy on every stream (the `cpu` tier: better for this small network, see
docs/synthetic_benchmark.md). It is evaluated at the trained counts and
at untrained ones (nearest trained sub-network, ties to the higher count), and compared with the ST
results of `02_baseline_tfd` when they are in `out_dir`. Parameters and GMACs are reported beside.

Writes `results/03_ffn.csv`, `03_costs.csv`, `03_comparison.csv`, `03_table8.csv` (this model and every
other architecture of `architectures`) and `figures/03_ffn_vs_st.png`.
"""),
        params_cell('eval_frames = None                 # inference counts; None: trained + every even count between\n'
                    'init_epochs = None                 # >0: also FFN started from ST-H (02) for this many epochs; None: suite option, else 0\n'
                    'ffn_scratch = None                 # False: no FFN from scratch, the ST-H-started run is the FFN; None: suite option, else True\n'
                    'architectures = None               # Table 8: recipes of other backbones, e.g. ["params/cpu_uniformer_xs.yaml"]; None: suite option, else none\n'),
        PARAM_NOTE,
        setup_cell(extra='init_ep = ctx.count_option("init_epochs", init_epochs, default=0)\n'
                         'scratch = ctx.bool_option("ffn_scratch", ffn_scratch, default=True)\n'
                         'models = ex.main_ffn_exps(ctx, ctx.cfg.frames, scratch, init_ep)  # checks the two options together\n'
                         'arch_files = ctx.path_list_option("architectures", architectures)\n'),
        code(DATA),
        md("""
## Train (or reuse) FFN

From scratch for `epochs` (`ffn_scratch`, default on). Optionally (`init_epochs > 0`, ours), an FFN
that starts from the ST model trained at the highest count (02's checkpoint, trained here if
missing) instead: every private norm gets ST-H's statistics, weight alteration starts at identity.
It stands in for the paper's ImageNet-pretrained start; its training cost is ST-H's plus
`init_epochs` FFN epochs. With both, the table has the rows `FFN` and `FFN (init ST-H)`; with
`ffn_scratch: false` (the `cpu` tier) the ST-H-started run is the `FFN` row, and the report says
where it started.
"""),
        code('''
ex.train([*(ex.init_sources(ctx, [ctx.cfg.frames]) if init_ep else []), *models]);  # ST-H first: the init run's start
'''),
        md("## Trained and untrained frame counts from one checkpoint"),
        code('''
counts = ctx.frames_option("eval_frames", eval_frames, default=ex.default_tfd_frames(ctx.cfg.frames))
rows = ex.accuracy_rows(ctx, models, counts, which)
ex.save_table(rows, ctx.results("03_ffn.csv"))
ex.save_table(ex.costs_table(models), ctx.results("03_costs.csv"))
tables.pivot(rows).round(2)
'''),
        md("GMACs per clip at each count (an untrained count runs the nearest trained sub-network on all its frames):"),
        code('tables.pivot(rows, values="gmacs").round(4)'),
        md("## Beside ST and the H-trained model (from 02, if present)"),
        code('''
comp = ex.comparison_rows(rows, ctx.results("02_cross_eval.csv"))
ex.save_table(comp, ctx.results("03_comparison.csv"))
plots.plot_grouped_bars(comp, ctx.figure("03_ffn_vs_st.png"), "FFN vs ST vs the H-trained model")
'''),
        code('''
paper = paper_numbers.paper_table("table1")
report.side_by_side(comp, paper[paper["method"].isin(["H-trained", "ST", "FFN"])]).round(2)
'''),
        md("""
## Other architectures (Table 8)

Each recipe in `architectures` (a params file naming another backbone, e.g.
`params/cpu_uniformer_xs.yaml`) trains on this chain's data and frame counts: one ST model per count
and the FFN rows of this notebook (its own `ffn_scratch` / `init_epochs`), under `models/<model>/`.
`results/03_table8.csv` holds H-trained / ST / FFN for this notebook's model and every other one;
the report puts each beside the paper's Table 8 group of its family.
"""),
        code('''
t8 = [arc.main_rows(comp, ctx.cfg.model)]
for pf in arch_files:
    actx = arc.architecture_context(ctx, pf)
    st_a, ffn_a = arc.architecture_exps(actx, ctx.cfg.frames)
    ex.train([*st_a, *ffn_a])  # ST first: an init_from FFN starts from its ST-H
    t8.append(arc.architecture_rows(actx, st_a, ffn_a, which))
t8 = pd.concat(t8, ignore_index=True)
ex.save_table(t8, ctx.results("03_table8.csv"))
tables.pivot(t8, index=("model", "method", "spec")).round(2)
'''),
    ]


def nb04() -> list:
    return [
        md("""
# 04 — Design ablation (Table 4)

Each component of FFN removed in turn, all trained with the same recipe (`ablation_epochs`):
- **w/o SN**: one normalization shared by all frame counts (no specialized norms);
- **w/o WA**: no weight alteration;
- **w/o TD**: no temporal distillation — cross-entropy on every stream instead of KL to the highest;
- **w/o WS**: no weight sharing — private convolutions per stream (K x parameters);
- **λ** (ours: the paper fixes λ = 1 and reports no sweep): other weights of the KL term.

Table 4 ablates the paper's FFN, so the reference row and every variant but w/o TD train with
`loss=mfal` (CE on the highest count + KL), whatever the params file's `loss` (the `cpu` tier's
main FFN uses `ce_all`; see 03).

With `ablation_init=True` every variant starts from the ST model trained at the highest count in
`02_baseline_tfd` (as the paper's all start from the same ImageNet weights; see 03's `init_epochs`).

The ST row comes from `02_baseline_tfd` when present. Writes `results/04_ablations.csv` and `figures/04_ablations.png`.
"""),
        params_cell('ablation_epochs = None             # None: suite option `ablation_epochs`, else epochs\n'
                    'lambdas = None                     # e.g. [0.5, 2.0]; None: suite option `lambdas`, else [0.5, 2.0]\n'
                    'ablation_init = None               # True: every variant starts from ST-H of 02; None: suite option, else False\n'),
        PARAM_NOTE,
        setup_cell(extra='abl_epochs = ctx.int_option("ablation_epochs", ablation_epochs, default=ctx.cfg.epochs)\n'
                   'lams = ctx.float_list_option("lambdas", lambdas, default=[0.5, 2.0])\n'
                   'abl_init = ctx.bool_option("ablation_init", ablation_init, default=False)\n'
                   'frames3 = ex.check_frames_for("04_ablations", ctx.cfg.frames, 2)\n'),
        code(DATA),
        md("## Train (or reuse) every variant"),
        code('''
exps = ex.ablation_exps(ctx, frames3, abl_epochs, lams, init=abl_init)
ex.train([*(ex.init_sources(ctx, [frames3]) if abl_init else []), *exps]);  # ST-H first: the common start
'''),
        md("## Results"),
        code('''
rows = ex.accuracy_rows(ctx, exps, frames3, which)
abl = pd.concat([ex.st_rows_from(ctx.results("02_cross_eval.csv"), frames3), rows], ignore_index=True)
ex.save_table(abl, ctx.results("04_ablations.csv"))
plots.plot_grouped_bars(abl, ctx.figure("04_ablations.png"), "design ablation")
'''),
        code('report.side_by_side(abl, paper_numbers.paper_table("table4")).round(2)'),
    ]


def nb05() -> list:
    return [
        md("""
# 05 — Baselines (Table 1)

Ways to make one model work at several frame counts without FFN, between the lowest (L) and the
highest (H) count:
- **Mixed sampling** (ρ): with probability ρ, an L-frame clip is mixed into 4 consecutive frames of the H-frame clip;
- **Proportional sampling** (ϱ): each iteration trains on the H clip with probability ϱ, else on the L clip;
- **Fine-tuning**: the H-trained ST model fine-tuned at L;
- **Ensemble**: the softmax of all ST models averaged (K x parameters and GMACs);
- **BN recalibration** (ours): the H-trained model with its BN statistics re-estimated at each inference count.

ST and FFN rows reuse the runs of 02/03 (same configs). With `baseline_init=True` Mixed and
Proportional start from ST-H (02's), as FFN does with 03's `init_epochs`. Writes
`results/05_baselines.csv` and `figures/05_baselines.png`.
"""),
        params_cell('baseline_epochs = None             # Mixed / Proportional; None: suite option, else epochs\n'
                    'finetune_epochs = None             # None: suite option, else baseline_epochs\n'
                    'mixed_rhos = None                  # None: suite option `mixed_rhos`, else [0.5, 0.75]\n'
                    'proportional_rhos = None           # None: suite option `proportional_rhos`, else [0.5, 0.75]\n'
                    'recal_batches = None               # training batches for BN recalibration; None: 20\n'
                    'baseline_init = None               # True: Mixed / Proportional start from ST-H of 02; None: suite option, else False\n'),
        PARAM_NOTE,
        setup_cell(extra='b_epochs = ctx.int_option("baseline_epochs", baseline_epochs, default=ctx.cfg.epochs)\n'
                   'ft_epochs = ctx.int_option("finetune_epochs", finetune_epochs, default=b_epochs)\n'
                   'rhos_m = ctx.float_list_option("mixed_rhos", mixed_rhos, default=[0.5, 0.75])\n'
                   'rhos_p = ctx.float_list_option("proportional_rhos", proportional_rhos, default=[0.5, 0.75])\n'
                   'n_recal = ctx.int_option("recal_batches", recal_batches, default=20)\n'
                   'b_init = ctx.bool_option("baseline_init", baseline_init, default=False)\n'
                   'init_ep = ctx.count_option("init_epochs", None, default=0)  # 03\'s FFN rows: from ST-H, if any ...\n'
                   'scratch = ctx.bool_option("ffn_scratch", None, default=True)  # ... and from scratch\n'
                   'frames3 = ex.check_frames_for("05_baselines", ctx.cfg.frames, 2)\n'),
        code(DATA),
        md("## Train (or reuse): ST models, FFN, then the baselines (fine-tuning starts from ST-H)"),
        code('''
st = ex.st_exps(ctx, frames3)
ffns = ex.main_ffn_exps(ctx, frames3, scratch, init_ep)
base = ex.baseline_exps(ctx, frames3, b_epochs, rhos_m, rhos_p, ft_epochs, init=b_init)
ex.train([*st, *ffns, *base]);
'''),
        md("## Table 1"),
        code('''
rows = pd.concat([
    ex.accuracy_rows(ctx, [st[-1]], frames3, which).assign(method="H-trained"),
    ex.accuracy_rows(ctx, base, frames3, which),
    ex.ensemble_rows(ctx, st, frames3, which),
    ex.st_rows(ctx, st, which),
    ex.accuracy_rows(ctx, ffns, frames3, which),
    ex.recalibration_rows(ctx, st[-1], frames3, n_recal, which),
], ignore_index=True)
ex.save_table(rows, ctx.results("05_baselines.csv"))
plots.plot_grouped_bars(rows, ctx.figure("05_baselines.png"), "Table 1 baselines")
'''),
        code('report.side_by_side(rows, paper_numbers.paper_table("table1")).round(2)'),
    ]


def nb06() -> list:
    return [
        md("""
# 06 — Any frame count (Tables 2, 3, 6, 7, Fig. 8) and confidence-cascaded inference

1. **Number and choice of sequences**: FFN(2) on L/H, FFN(3) on L/M/H, FFN(4) adding (M+H)/2 — for
   4/8/16: 4/16, 4/8/16, 4/8/12/16. With `sequence_init=True` each starts from the ST model at its
   highest count (02's), like 03's `init_epochs` row (the same run when the epochs agree).
2. **Any-frame inference** at every count in `any_frames` (default 2…20, i.e. also outside the
   trained range): an untrained count runs the nearest trained sub-network (ties to the higher).
3. **Explorer** (JupyterLab only): a slider over the frame count shows, for one validation video,
   its frames, the class probabilities and the GMACs of ST and FFN side by side.
4. **Confidence cascade** (ours; none of the original code does it): run the fewest frames first
   and the next count only while the top probability is below τ. One FFN model makes this
   possible; the curve over τ is compared with the single-count points. The chain (which counts)
   and τ are picked on held-out clips (`cascade_calib`, the synthetic tiers' `calib.txt`), not on val.

Writes `results/06_any_frame.csv`, `06_cascade.csv`, `06_cascade_points.csv`, `06_cascade_selection.csv`
and `figures/06_*.png`.
"""),
        params_cell('any_frames = None                  # inference counts; None: min(frames)//2 .. max(frames)+4\n'
                    'sequence_sets = None               # e.g. [[4,16],[4,8,16],[4,8,12,16]]; None: derived from frames\n'
                    'sequence_epochs = None             # None: suite option, else epochs\n'
                    'sequence_init = None               # True: each FFN(k) starts from ST at its highest count; None: suite option, else False\n'
                    'cascade_taus = None                # number of thresholds in [0, 1], at least 2; None: suite option, else 21\n'
                    'cascade_calib = None               # held-out list that picks the cascade chain and τ: "auto" (<data_root>/calib.txt if present), "none" or a path; None: suite option, else "auto"\n'
                    'explorer_video = 0                 # validation video shown first in the explorer\n'),
        PARAM_NOTE,
        setup_cell(extra='frames3 = ex.check_frames_for("06_any_frame", ctx.cfg.frames, 2)\n'
                   'sets = ctx.frame_sets_option("sequence_sets", sequence_sets, default=ex.default_sequence_sets(frames3))\n'
                   'sets = sets if frames3 in sets else [*sets, frames3]\n'
                   'counts = ctx.frames_option("any_frames", any_frames, default=ex.default_any_frames([t for s in sets for t in s]))\n'
                   's_epochs = ctx.int_option("sequence_epochs", sequence_epochs, default=ctx.cfg.epochs)\n'
                   's_init = ctx.bool_option("sequence_init", sequence_init, default=False)\n'
                   'n_taus = ctx.int_option("cascade_taus", cascade_taus, default=21, minimum=2)\n'
                   'calib = ctx.calib_list_option("cascade_calib", cascade_calib)\n'),
        code(DATA),
        md("## Train (or reuse): ST models and FFN(k) for every sequence set"),
        code('''
st = ex.st_exps(ctx, frames3)
seqs = ex.sequence_exps(ctx, sets, s_epochs, init=s_init)
ffn = next(e for e in seqs if e.cfg.frames == frames3)
ex.train([*st, *(ex.init_sources(ctx, sets) if s_init else []), *seqs]);
'''),
        md("## Any-frame inference"),
        code('''
anyf = pd.concat([
    ex.st_rows(ctx, st, which),
    ex.accuracy_rows(ctx, [st[-1]], counts, which).assign(method="H-trained"),
    ex.accuracy_rows(ctx, seqs, counts, which),
], ignore_index=True)
ex.save_table(anyf, ctx.results("06_any_frame.csv"))
plots.plot_accuracy_lines(anyf, ctx.figure("06_any_frame.png"), "any-frame inference", trained_range=(min(frames3), max(frames3)))
'''),
        code('tables.pivot(anyf).round(2)'),
        md("### Tables 2 / 7 beside the paper (counts inside the trained range)"),
        code('''
inside = anyf[anyf["frames"].between(min(frames3), max(frames3))]
display(plots.plot_grouped_bars(inside[inside["method"].str.startswith("FFN") | (inside["method"] == "ST")],
                                ctx.figure("06_sequences.png"), "number of sequences"))
report.side_by_side(inside, paper_numbers.paper_table("table7")).round(2)
'''),
        md("## Explorer: one video, any frame count, ST and FFN side by side"),
        code('''
from ffn_core.analysis import widgets
explore = {f"ST-{max(frames3)}": st[-1], f"FFN({len(frames3)})": ffn}
models = inference.load_models(explore, which)
names = ex.data_summary(ctx.cfg)["class_names"]
widgets.show_explorer(models, inference.val_dataset_factory(ctx.cfg), names,
                      gmacs_for=inference.gmacs_lookup(models, ctx.cfg.crop_size),
                      frames_range=(min(counts), max(counts)), start_frames=min(frames3))
'''),
        md("""## Confidence-cascaded inference
τ = 0 always stops at the fewest frames, τ = 1 always runs every trained count; a sample pays for every count it ran.
Which counts to chain (e.g. 4→8→16, 8→16, 4→16) and τ are picked on the held-out `cascade_calib`
clips — the best held-out accuracy among points cheaper than the highest count alone — and never on
the validation set; the curves below are on val, for the full chain and the picked one."""),
        code('''
taus = cascade.default_taus(n_taus)  # 0 .. 1, denser near 1 where confident exits change most
systems = {"FFN": {t: ffn for t in frames3}, "ST": {e.cfg.frames[0]: e for e in st}}
curves, points, picks = inference.cascade_tables(ctx, systems, taus, which, calib_list=calib)
ex.save_table(curves, ctx.results("06_cascade.csv"))
ex.save_table(points, ctx.results("06_cascade_points.csv"))
ex.save_table(picks, ctx.results("06_cascade_selection.csv"))
plots.plot_cascade_results(curves, points, ctx.figure("06_cascade.png"))
picks.round(4)
'''),
        code('curves[(curves["model"] == "FFN") & curves["picked"]].round(3)'),
    ]


def nb07() -> list:
    return [
        md("""
# 07 — Report

Gathers every results file of 01–06 from `out_dir/results/` into `out_dir/report.md`: for each
paper table, our numbers beside the paper's (section 4 of the method reference, as data in
`ffn_core.analysis.paper_numbers`), the figures, and a **Claims** section that says, computed from
the numbers, which of the paper's claims hold on this run and by how much the others miss.
Missing results (a notebook not run) show as "not measured".
"""),
        params_cell(),
        PARAM_NOTE,
        setup_cell(),
        code('''
path = report.build_report(ctx.out_dir)
print(f"report: {path}")
'''),
        code('display(Markdown(path.read_text()))'),
    ]


NOTEBOOKS = {
    "01_data_prep": nb01, "02_baseline_tfd": nb02, "03_train_ffn": nb03, "04_ablations": nb04,
    "05_baselines": nb05, "06_any_frame": nb06, "07_report": nb07,
}


def build(name: str) -> nbformat.NotebookNode:
    nb = new_notebook(cells=NOTEBOOKS[name]())
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python", "file_extension": ".py", "mimetype": "text/x-python",
                                    "pygments_lexer": "ipython3", "nbconvert_exporter": "python"}
    for i, cell in enumerate(nb.cells):  # stable ids: the files only change when the text does
        cell["id"] = f"{name[:2]}-{i:02d}"
    nbformat.validate(nb)
    return nb


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "notebooks"), help="folder for the .ipynb files")
    ap.add_argument("--check", action="store_true", help="exit 1 if a notebook differs from its generated text")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stale = []
    for name in NOTEBOOKS:
        text = nbformat.writes(build(name)) + "\n"
        path = out / f"{name}.ipynb"
        if a.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(str(path))
        elif not path.is_file() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("out of date (run python tools/make_notebooks.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
