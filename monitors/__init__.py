"""Runtime robustness monitors (drift detectors, canary runner, Prometheus metrics).

Imports from ``training`` only; see ../shared/DESIGN.md for the direction of imports.
"""
