"""Training and evaluation engine: ``fit(config)``, ``evaluate(...)``, checkpoints, DDP.

* :func:`fit` - train ST / FFN / the Table 1 baselines and write a run directory (``train.py``);
* :func:`evaluate`, :func:`cross_evaluate`, :func:`predict` - any frame counts, multi-view, per-class,
  cross-evaluation matrix, per-sample probabilities (``evaluate.py``);
* :func:`load_checkpoint` - ``(model, cfg)`` from ``best.pt`` / ``last.pt`` (``checkpoint.py``).

Command line: ``python -m ffn_core train|eval ...`` (``cli.py``).
"""
from .checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from .evaluate import cross_evaluate, evaluate, predict
from .train import fit

__all__ = ["fit", "evaluate", "cross_evaluate", "predict", "load_checkpoint", "read_checkpoint",
           "save_checkpoint", "CheckpointError"]
