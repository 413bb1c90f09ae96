"""The Parquet catalogue a scoring job writes: one row per input cutout, the service's answer
flattened into columns, and what the job summary adds up over those rows.

=====================  ================  =========================================================
column                 type              content
=====================  ================  =========================================================
``id``                 string            the answer's id (FITS ``OBJECT``, else the file name
                                         without suffixes; HDF5: ``<task>-<domain>-<index>``, the
                                         id ``skyguard cutouts`` gives the same object); null when
                                         the file could not be decoded
``source``             string            the input file (a path, or the URI Spark reads it by)
``dataset_index``      int64             the object's row in an HDF5 dataset; null for FITS
``label``              string            classification: the most probable class
``probabilities``      list<double>      classification: one per class, in the bundle's
                                         ``classes`` order (the summary lists them)
``z_mean`` …           double            photo-z: ``z_mean``, ``z_median``, ``z_mode``,
                                         ``z_sigma``, ``odds`` (``service.runtime.photoz_summary``)
``pdf``                list<double>      photo-z with ``--pdf``: p(z) in the bundle's 180 bins
``ood_score``          double            OOD percentile 0–100 (``monitors.ood``)
``repaired_pixels``    int64             non-finite pixels repaired (``--repair``), else 0
``model_name`` …       string            ``model_name``, ``model_version``,
                                         ``model_architecture``, ``model_recipe``
``error_reason``       string            null, or why the cutout was refused (``InputError``
                                         reasons: bad_fits, wrong_bands, non_finite, ...)
``error_message``      string            null, or the refusal's message (what and where)
``drift_features``     list<float>       the latent's 2J random Fourier features
                                         (``scoring.drift``), for re-testing any subset
=====================  ================  =========================================================

Values are the service's own (``TaskSpec.answer``: probabilities rounded to 6 decimals, OOD to 2),
so a row equals the HTTP answer for the same cutout. Numbers are nulls where they do not apply.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from service.fits_input import InputError

from .drift import DriftSums

PHOTOZ_SUMMARY = ("z_mean", "z_median", "z_mode", "z_sigma", "odds")
MODEL_FACTS = ("name", "version", "architecture", "recipe")
#: OOD percentiles above which the summary counts cutouts
OOD_LEVELS = (95, 99)


def schema(task: str, with_pdf: bool = False) -> pa.Schema:
    """The catalogue's Arrow schema for ``task`` (module docstring)."""
    head = [("id", pa.string()), ("source", pa.string()), ("dataset_index", pa.int64())]
    if task == "photoz":
        outputs = [(k, pa.float64()) for k in PHOTOZ_SUMMARY]
        if with_pdf:
            outputs.append(("pdf", pa.list_(pa.float64())))
    else:
        outputs = [("label", pa.string()), ("probabilities", pa.list_(pa.float64()))]
    tail = [
        ("ood_score", pa.float64()),
        ("repaired_pixels", pa.int64()),
        *[(f"model_{k}", pa.string()) for k in MODEL_FACTS],
        ("error_reason", pa.string()),
        ("error_message", pa.string()),
        ("drift_features", pa.list_(pa.float32())),
    ]
    return pa.schema(head + outputs + tail)


def answer_row(answer: dict, source: str, index: int | None, features: np.ndarray | None) -> dict:
    """A catalogue row from one of the service's answers (``TaskSpec.answer``); ``features``:
    the cutout's drift features [2J] (``scoring.drift``), or None."""
    row = {"id": answer["id"], "source": source, "dataset_index": index}
    if "label" in answer:
        row["label"] = answer["label"]
        row["probabilities"] = np.fromiter(answer["probabilities"].values(), float)
    else:
        row.update({k: answer[k] for k in PHOTOZ_SUMMARY})
        if "pdf" in answer:
            row["pdf"] = np.asarray(answer["pdf"], float)
    row["ood_score"] = answer["ood_score"]
    row["repaired_pixels"] = answer.get("repaired_pixels", 0)
    row.update({f"model_{k}": answer["model"][k] for k in MODEL_FACTS})
    row["drift_features"] = features
    return row


def error_row(
    error: InputError, model: dict, source: str, index: int | None, id: str | None = None
) -> dict:
    """A catalogue row for a cutout that was refused: ``id`` if it was decoded far enough to have
    one, the refusal's reason and message, and the model that would have scored it."""
    row = {"id": id, "source": source, "dataset_index": index}
    row.update({f"model_{k}": model[k] for k in MODEL_FACTS})
    row["error_reason"] = error.reason
    row["error_message"] = error.message
    return row


def frame(rows: list[dict], columns: pa.Schema) -> pd.DataFrame:
    """Rows as a pandas frame with exactly the catalogue's columns (missing values null), in a
    form both pyarrow and Spark's ``mapInPandas`` convert to ``columns``."""
    out = pd.DataFrame({name: [r.get(name) for r in rows] for name in columns.names})
    for f in columns:
        if pa.types.is_integer(f.type):
            out[f.name] = out[f.name].astype("Int64")
        elif pa.types.is_floating(f.type):
            out[f.name] = out[f.name].astype("float64")
    return out


def to_arrow(df: pd.DataFrame, columns: pa.Schema) -> pa.Table:
    """Catalogue rows as an Arrow table of ``columns``, without pandas' metadata (Spark writes
    none either, so both engines' files read back alike)."""
    return pa.Table.from_pandas(df, schema=columns, preserve_index=False).replace_schema_metadata()


@dataclass
class Tally:
    """What the job summary adds up over catalogue rows; tallies of partitions add (``+``).

    rows : catalogue rows; refused : {reason: count}; labels : {label: count} (classification);
    ood_sum, ood_n : sum and count of OOD scores; ood_above : {level: count above it};
    drift : the drift test's sums of the scored rows' features.
    """

    rows: int = 0
    refused: Counter = field(default_factory=Counter)
    labels: Counter = field(default_factory=Counter)
    ood_sum: float = 0.0
    ood_n: int = 0
    ood_above: Counter = field(default_factory=Counter)
    drift: DriftSums | None = None

    @classmethod
    def of(cls, df: pd.DataFrame) -> Tally:
        """The tally of catalogue rows ``df`` (needs error_reason, ood_score, drift_features and,
        for classification, label)."""
        ood = df["ood_score"].dropna().to_numpy(float)
        feats = [f for f in df["drift_features"] if f is not None]
        return cls(
            rows=len(df),
            refused=Counter(df["error_reason"].dropna()),
            labels=Counter(df["label"].dropna()) if "label" in df else Counter(),
            ood_sum=float(ood.sum()),
            ood_n=len(ood),
            ood_above=Counter({lev: int((ood > lev).sum()) for lev in OOD_LEVELS}),
            drift=DriftSums.of(np.stack(feats)) if feats else None,
        )

    def __add__(self, other: Tally) -> Tally:
        both = self.drift is not None and other.drift is not None
        drift = self.drift + other.drift if both else (self.drift or other.drift)
        return Tally(
            self.rows + other.rows,
            self.refused + other.refused,
            self.labels + other.labels,
            self.ood_sum + other.ood_sum,
            self.ood_n + other.ood_n,
            self.ood_above + other.ood_above,
            drift,
        )

    def to_json(self) -> str:
        d = {k: getattr(self, k) for k in ("rows", "refused", "labels", "ood_sum", "ood_n")}
        d["ood_above"] = {str(k): v for k, v in self.ood_above.items()}
        d["drift"] = self.drift.to_dict() if self.drift else None
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str) -> Tally:
        d = json.loads(text)
        return cls(
            d["rows"],
            Counter(d["refused"]),
            Counter(d["labels"]),
            d["ood_sum"],
            d["ood_n"],
            Counter({int(k): v for k, v in d["ood_above"].items()}),
            DriftSums.from_dict(d["drift"]) if d["drift"] else None,
        )

    def counts(self) -> dict:
        """The summary's counts: rows, scored, refused by reason, labels, OOD."""
        return {
            "rows": self.rows,
            "scored": self.rows - sum(self.refused.values()),
            "refused": dict(sorted(self.refused.items())),
            "labels": dict(sorted(self.labels.items())),
            "ood_mean": self.ood_sum / self.ood_n if self.ood_n else None,
            **{f"ood_above_{lev}": self.ood_above[lev] for lev in OOD_LEVELS},
        }


#: columns a tally reads back from a written catalogue
TALLY_COLUMNS = ("error_reason", "ood_score", "drift_features")


def tally_partition(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """Spark ``mapInPandas`` function: one row (``tally`` JSON) per partition of catalogue rows."""
    total = Tally()
    for df in frames:
        total = total + Tally.of(df)
    yield pd.DataFrame({"tally": [total.to_json()]})
