"""Figures of datasets and models: matplotlib ``Figure`` objects rendered with Agg (no display,
no pyplot state)."""

from __future__ import annotations

from .examples import plot_examples, plot_gm20

__all__ = ["plot_examples", "plot_gm20"]
