"""Figures of datasets and models: matplotlib ``Figure`` objects rendered with Agg (no display,
no pyplot state).

* ``examples`` — survey cutouts and the Gini–M20 plane (numpy only);
* ``robustness`` — church windows, isomaps, latent-distance histograms (002 §4–§5);
* ``diagnostics`` — ROC with bootstrap bands, confusion matrices, photo-z scatter and δz,
  Grad-CAM overlays (003 §3.1, 004 §6.1 and App. B).

Only ``examples`` is imported here: the other two need torch and scikit-learn, which
``import training.plots`` should not pull in.
"""

from __future__ import annotations

from .examples import plot_examples, plot_gm20, save_figure

__all__ = ["plot_examples", "plot_gm20", "save_figure"]
