"""Training recipes: one YAML file per task × recipe, holding the seeds' values.

``training/recipes/<task>/<recipe>.yaml`` gives every field of :class:`Recipe` that differs from
its default, with the seed section it comes from in a comment, and a ``quick:`` block of overrides
that makes the same recipe train in minutes on a 2-core CPU (those give the service its default
models). ``load_recipe(task, name, quick=..., **overrides)`` reads one; unknown keys are refused.

Recipes (``Recipe.recipe``):

* ``regular`` — supervised on the labelled source domain;
* ``mmd`` — plus λ·MMD² between source and unlabelled target latents (002 eq. 3, λ = 0.05);
* ``adversarial`` — 003 Algorithm 1: a fraction f_a of every batch replaced by FGSM or PGD
  examples made against the current weights;
* ``mmd+adversarial`` — both;
* ``finetune`` — 004 §5: the whole model of an existing bundle retrained on a small labelled
  target set with a small learning rate.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import yaml

RECIPES = ("regular", "mmd", "adversarial", "mmd+adversarial", "finetune")
RECIPE_DIR = Path(__file__).parent


@dataclass(frozen=True)
class Recipe:
    """Everything that defines a training run (recorded in the bundle and the checkpoint)."""

    task: str
    recipe: Literal["regular", "mmd", "adversarial", "mmd+adversarial", "finetune"]
    architecture: str
    seed: int = 0
    # optimiser
    optimizer: Literal["adam", "adamw", "adadelta"] = "adam"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8  # 003 §2 sets 0.1–1 for Inception
    rho: float = 0.95  # Adadelta (Keras default, 004)
    weight_decay: float = 0.0
    plateau_factor: float | None = None  # 003 §2: lr × 0.8 when val loss stalls ...
    plateau_patience: int = 5  # ... for 5 epochs
    # schedule
    batch_size: int = 64
    eval_batch_size: int = 256
    epochs: int = 100
    patience: int = 10  # early stopping on the validation loss
    augment: bool = False  # random 90° turns and flips
    n_max: int | None = None  # objects of the dataset used (None: all)
    # domain adaptation (002 §3.2)
    mmd_weight: float = 0.0  # λ
    mmd_bandwidth: Literal["multi", "median"] = "multi"
    # adversarial training (003 Algorithm 1)
    adv_fraction: float = 0.0  # f_a
    adv_attack: Literal["fgsm", "pgd"] = "fgsm"
    adv_eps: float = 0.01  # ε in model-input units
    adv_alpha: float | None = None  # PGD step; None: ε/10 (003 §3.2)
    adv_iter: int = 10
    adv_norm: Literal["linf", "l2"] = "linf"
    # fine-tuning (004 §5)
    finetune_from: str | None = None  # bundle directory or model-store tag
    finetune_n: int = 320
    # bundle contents
    n_reference: int = 1000  # reference latents for drift
    n_canaries: int = 64
    n_parity: int = 32
    n_boot: int = 1000  # bootstrap resamples for the lsbg confidence intervals (004 §6.1)
    model_kwargs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise ValueError(f"recipe must be one of {RECIPES}, got {self.recipe!r}")
        uses_mmd = "mmd" in self.recipe
        if uses_mmd != (self.mmd_weight > 0):
            raise ValueError(
                f"recipe {self.recipe!r} with mmd_weight={self.mmd_weight}: "
                "the mmd recipes need λ > 0, the others λ = 0"
            )
        uses_adv = "adversarial" in self.recipe
        if uses_adv != (self.adv_fraction > 0) or not 0 <= self.adv_fraction <= 1:
            raise ValueError(
                f"recipe {self.recipe!r} with adv_fraction={self.adv_fraction}: the adversarial "
                "recipes need 0 < f_a <= 1, the others f_a = 0"
            )
        if self.recipe == "finetune" and not self.finetune_from:
            raise ValueError("the finetune recipe needs finetune_from (a bundle or store tag)")
        if self.lr <= 0 or self.batch_size < 2 or self.epochs < 1:
            raise ValueError(
                f"need lr > 0, batch_size >= 2, epochs >= 1; got {self.lr}, "
                f"{self.batch_size}, {self.epochs}"
            )

    @property
    def pgd_alpha(self) -> float:
        return self.adv_alpha if self.adv_alpha is not None else self.adv_eps / 10

    def with_params(self, **kw) -> Recipe:
        """A copy with some fields changed; unknown names raise ``TypeError``."""
        return dataclasses.replace(self, **kw)

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, d: dict) -> Recipe:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown recipe fields {sorted(unknown)}")
        d = dict(d)
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return cls(**d)


def recipe_path(task: str, name: str) -> Path:
    return RECIPE_DIR / task / f"{name}.yaml"


def available() -> dict[str, list[str]]:
    """{task: [recipe names]} of the configuration files shipped."""
    return {
        d.name: sorted(p.stem for p in d.glob("*.yaml"))
        for d in sorted(RECIPE_DIR.iterdir())
        if d.is_dir() and not d.name.startswith("_")
    }


def load_recipe(task: str, name: str, quick: bool = False, **overrides) -> Recipe:
    """The recipe ``name`` of ``task`` from its YAML file (the ``quick`` block applied if asked),
    then ``overrides`` (``None`` values ignored)."""
    path = recipe_path(task, name)
    if not path.is_file():
        raise FileNotFoundError(
            f"no recipe {name!r} for {task!r} ({path}); available: {available().get(task, [])}"
        )
    cfg = yaml.safe_load(path.read_text())
    quick_block = cfg.pop("quick", {}) or {}
    if quick:
        cfg.update(quick_block)
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Recipe.from_dict(cfg)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: {e}") from None
