"""Batch scoring at survey scale: a directory of FITS cutouts or an HDF5 dataset through a model
bundle, on Apache Spark or in one process, into a Parquet catalogue whose rows are the service's
answers, with the drift of the whole batch against the bundle's reference latents.

Sits above ``service`` (it reuses the FITS reader, ``TaskSpec``/``TaskModel`` and so the very
preprocessing, model and answer code of the gateway and predictor): ``training ← monitors ←
service ← scoring``; nothing below imports it (``skyguard score`` imports it lazily).

* ``engines`` — ``ScoreJob`` (the settings) and ``score`` (run one: Spark or local);
* ``scorer`` — the partition function both engines run, one ONNX Runtime session per process;
* ``inputs`` — what a job reads: FITS files as Spark's binaryFile source finds them, HDF5 ranges;
* ``catalogue`` — the Parquet columns and the summary's tally;
* ``drift`` — the whole-batch drift test, merged across partitions;
* ``cli`` — ``skyguard score`` / ``python -m scoring``.
"""

from .engines import ScoreJob, score

__all__ = ["ScoreJob", "score"]
