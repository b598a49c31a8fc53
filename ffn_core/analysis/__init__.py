"""Analysis for the notebook chain: experiments, cached runs, tables, figures, cascade, report.

=================  ==========================================================================
``notebook``       parameter checking (``setup``), repo-root paths, headless detection
``experiments``    the notebooks' experiments as code (configs, training, result rows)
``inference``      BN statistics, cascade tables, what the explorer widget needs
``runs``           ``train_or_load`` (skip retraining a finished run) and cached predictions
``tables``         long result rows, cross-eval / TFD matrices, BN statistics, markdown
``plots``          seaborn figures (TFD heat map, accuracy vs GMACs, BN stats, cascade, ...)
``cascade``        confidence-cascaded inference over frame counts (ours)
``paper_numbers``  the paper's tables as data;  ``claims``: the paper's claims checked
``report``         report.md: our tables beside the paper's, and the claims
``widgets``        the ipywidgets frame-count explorer;  ``nbstrip``: notebook output stripper
=================  ==========================================================================

Submodules are imported on use (``from ffn_core.analysis import tables``), so importing the
package stays cheap.
"""
