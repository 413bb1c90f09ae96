"""A training run from recipe to stored bundle: what ``skyguard train`` and ``skyguard export`` do.

``train(task, recipe_name, ...)`` loads (or, if absent, simulates) the task's paired datasets,
trains with ``trainer.fit``, writes the bundle with ``export.write_bundle`` and stores it in the
BentoML model store. Run directories are ``<out>/<task>-<architecture>-<recipe>[-quick]/``:
``checkpoint.pt`` (resumed when the same command is run again), ``history.json``,
``training_curve.png``, ``bundle/``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from .data import load_task
from .recipes import Recipe, load_recipe

#: Objects simulated when a run finds no datasets (quick recipes use at most n_max of them).
DEFAULT_N = 2000


@dataclass
class RunResult:
    run_dir: Path
    bundle: Path
    tag: str | None
    metrics: dict
    training: dict


def run_dir_name(recipe: Recipe, quick: bool) -> str:
    return f"{recipe.task}-{recipe.architecture}-{recipe.recipe}" + ("-quick" if quick else "")


def ensure_datasets(root: Path, task: str, n: int, seed: int = 0, progress: bool = True) -> None:
    """Simulate ``task``'s paired domains under ``root`` unless they are there."""
    if any((root / task).glob("*.h5")):
        return
    from .simulate import simulator
    from .simulate.runner import generate

    if progress:
        print(f"no {task} datasets under {root}: simulating {n} objects (seed {seed})")
    generate(simulator(task), n, root, seed=seed, progress=progress)


def load_weights(model: torch.nn.Module, source: str) -> torch.nn.Module:
    """Load a bundle's ``weights.pt`` (bundle directory or store tag) into ``model``."""
    from core.store import load

    bundle = load(source)
    state = torch.load(bundle.path / "weights.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model


def train(
    task: str,
    recipe_name: str,
    quick: bool = False,
    data_root: str | Path = "data/train",
    out_root: str | Path = "out/runs",
    store: bool = True,
    progress: bool = True,
    resume: bool = True,
    **overrides,
) -> RunResult:
    """Train ``task`` under recipe ``recipe_name`` and return the bundle (stored if ``store``)."""
    from . import models
    from .trainer import fit

    recipe = load_recipe(task, recipe_name, quick=quick, **overrides)
    data_root = Path(data_root)
    ensure_datasets(data_root, task, recipe.n_max or DEFAULT_N, progress=progress)
    data = load_task(data_root, task, n_max=recipe.n_max)
    init = None
    if recipe.recipe == "finetune":
        init = load_weights(
            models.build(recipe.architecture, **recipe.model_kwargs), recipe.finetune_from
        )
    run_dir = Path(out_root) / run_dir_name(recipe, quick)
    res = fit(recipe, data, run_dir, model=init, progress=progress, resume=resume)
    training = {
        "epochs_run": len(res.history),
        "best_epoch": res.best_epoch,
        "stopped_early": res.stopped_early,
        "seconds": round(res.seconds, 1),
        "device": res.device,
        "quick": quick,
        "images_per_s": round(
            sum(h["images_per_s"] for h in res.history) / max(len(res.history), 1), 1
        ),
    }
    return _bundle_and_store(res.model, recipe, data, run_dir, training, store)


def export_checkpoint(
    run_dir: str | Path, data_root: str | Path = "data/train", store: bool = True
) -> RunResult:
    """Make a bundle from a run directory's ``checkpoint.pt`` (its best-validation weights)."""
    from . import models
    from .trainer import CHECKPOINT

    run_dir = Path(run_dir)
    path = run_dir / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"no {CHECKPOINT} in {run_dir}")
    ck = torch.load(path, map_location="cpu", weights_only=True)
    recipe = Recipe.from_dict(ck["recipe"])
    model = models.build(recipe.architecture, **recipe.model_kwargs)
    model.load_state_dict(ck["best_state"] or ck["model"])
    data = load_task(data_root, recipe.task, n_max=recipe.n_max)
    training = {
        "epochs_run": len(ck["history"]),
        "best_epoch": ck["best_epoch"],
        "seconds": round(sum(h["seconds"] for h in ck["history"]), 1),
        "exported_from": str(path),
    }
    return _bundle_and_store(model.eval(), recipe, data, run_dir, training, store)


def _bundle_and_store(model, recipe: Recipe, data, run_dir: Path, training: dict, store: bool):
    """Write ``run_dir/bundle`` (checked), store it if asked; the run's result."""
    from .export import write_bundle

    bundle = write_bundle(model, recipe, data, run_dir / "bundle", training)
    tag = None
    if store:
        from core.store import save_bundle

        tag = save_bundle(bundle)
    metrics = json.loads((bundle / "bundle.json").read_text())["metrics"]
    return RunResult(run_dir, bundle, tag, metrics, training)
