"""Every shipped recipe file loads, in full and quick form, and holds the seeds' values."""

from __future__ import annotations

import pytest

from training import models
from training.recipes import RECIPES, Recipe, available, load_recipe

TASKS = ("morphology", "photoz", "lsbg")
CASES = [(t, r, q) for t in TASKS for r in RECIPES for q in (False, True)]


def test_one_file_per_task_and_recipe():
    assert available() == {t: sorted(RECIPES) for t in sorted(TASKS)}


@pytest.mark.parametrize(("task", "name", "quick"), CASES)
def test_recipe_loads(task, name, quick):
    r = load_recipe(task, name, quick=quick)
    assert r.task == task and r.recipe == name
    assert r.architecture in models.ARCHITECTURES
    net = models.build(r.architecture)
    assert net.takes_ebv == (task == "photoz")
    assert ("mmd" in name) == (r.mmd_weight > 0)
    assert ("adversarial" in name) == (r.adv_fraction > 0)
    assert Recipe.from_dict(r.to_dict()) == r


# (task, recipe, field, the seed's value) — full recipes only
SEED_VALUES = [
    ("morphology", "regular", "lr", 1e-5),  # 002 §3.3
    ("morphology", "regular", "betas", (0.7, 0.8)),
    ("morphology", "regular", "weight_decay", 1e-3),
    ("morphology", "mmd", "weight_decay", 1e-4),
    ("morphology", "mmd", "mmd_weight", 0.05),
    ("morphology", "regular", "batch_size", 128),
    ("photoz", "regular", "adam_eps", 0.1),  # 003 §2
    ("photoz", "regular", "plateau_factor", 0.8),
    ("photoz", "adversarial", "adv_eps", 1.0),  # 003 §3.1: 0.01 nmgy in units of 0.01 nmgy
    ("photoz", "adversarial", "adv_iter", 10),  # 003 §3.2
    ("lsbg", "regular", "optimizer", "adadelta"),  # 004 §4.2
    ("lsbg", "regular", "lr", 0.1),
    ("lsbg", "finetune", "lr", 0.005),  # 004 §5
    ("lsbg", "finetune", "finetune_n", 320),
    ("lsbg", "finetune", "batch_size", 16),
]


@pytest.mark.parametrize(("task", "name", "key", "value"), SEED_VALUES)
def test_seed_values(task, name, key, value):
    assert getattr(load_recipe(task, name), key) == value


def test_pgd_step_defaults_to_tenth_of_eps():
    assert load_recipe("photoz", "adversarial").pgd_alpha == pytest.approx(0.1)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown recipe fields \\['learning_rate'\\]"):
        Recipe.from_dict({"task": "lsbg", "recipe": "regular", "architecture": "deepshadows",
                          "learning_rate": 1.0})  # fmt: skip
    with pytest.raises(ValueError, match="mmd recipes need λ > 0"):
        load_recipe("morphology", "mmd", mmd_weight=0.0)
    with pytest.raises(ValueError, match="adversarial recipes need 0 < f_a"):
        load_recipe("morphology", "adversarial", adv_fraction=0.0)
    with pytest.raises(FileNotFoundError, match="no recipe 'fancy' for 'lsbg'"):
        load_recipe("lsbg", "fancy")
    with pytest.raises(TypeError):
        load_recipe("lsbg", "regular").with_params(colour="blue")
