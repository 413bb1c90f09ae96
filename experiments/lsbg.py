"""004 (DeepShadows) re-run on our mocks: ``skyguard experiment lsbg``.

On the DES-like (source) and HSC-like (target) LSBG-vs-artifact mocks, label 1 = LSBG positive:

1. the DeepShadows CNN against an RBF SVM and a random forest on SourceExtractor-style features
   (``training.baselines``), scored on the DES-like test split: accuracy, completeness (recall),
   purity (precision), F1 and ROC AUC with bootstrap 95% intervals (004 Tables 2, 3; Fig. 4);
2. transfer (004 §5, Table 4, Fig. 7): the CNN on the HSC-like test split as it is, then after
   fine-tuning the whole network on ``finetune_n`` labelled HSC-like training objects (the
   ``finetune`` recipe), scored on HSC-like and again on DES-like (what it keeps);
3. label noise (004 §6.3, Table 6): the CNN retrained with a fraction p of its training labels
   flipped at random, each scored on the clean DES-like test split (p = 0 is the compared CNN
   itself when the noise recipe and dataset are the ones it was trained with: ``trained_by``);
4. Grad-CAM (004 §4.3, App. B, Fig. 6) of CNN examples from the four confusion cells.

The CNN is the bundle given, else the newest stored ``skyguard-lsbg`` deepshadows/regular bundle
trained on this dataset (``morphology_inputs.trained_on``), else one trained now with the quick
recipe and stored (as ``skyguard experiment morphology`` does). Fine-tuned and noisy models are
trained in ``runs_root`` and never stored: a fine-tuned bundle in the store would become the
service's newest lsbg model. With ``quick`` (the default) those trainings use the quick recipes
(Adam, a few epochs, the first 2000 objects' worth of each split) so the run fits 30 minutes on a
2-core CPU; 004 trains 100 epochs with Adadelta and fine-tunes 30.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from core.bundle import Bundle
from experiments import report as rp
from experiments.morphology_inputs import ModelChoice, trained_on
from training.data import Split, TaskData
from training.metrics import binary_scores, bootstrap_intervals

TASK = "lsbg"
ARCHITECTURE = "deepshadows"
#: 004 §6.3: no noise, then 1, 5, 10 and 33 % of the training labels flipped
NOISE_LEVELS = (0.0, 0.01, 0.05, 0.10, 0.33)
#: 004 §5: HSC objects used to fine-tune
FINETUNE_N = 320
#: 004 §6.1: bootstrap resamples of the test set
N_BOOT = 1000
#: Grad-CAM examples per confusion cell; 004 Fig. 6 shows confident ones (P > 0.8 or < 0.2)
N_GRADCAM, CONFIDENT = 2, 0.8
#: Recipe fields that leave the trained weights alone (what a bundle carries, evaluation batch)
NOT_TRAINING = frozenset({"eval_batch_size", "n_reference", "n_canaries", "n_parity", "n_boot"})
#: 004's order of the confusion cells: rows true, columns predicted (artifact, LSBG)
CELL_ORDER = ("TN", "FP", "FN", "TP")


def f1_of(s: dict) -> float:
    """F1 from a ``binary_scores`` dict: the harmonic mean of purity and completeness."""
    p, r = s["purity"], s["completeness"]
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def score_binary(y: np.ndarray, p_pos: np.ndarray, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """004 §4.1 scores of P(LSBG) ``p_pos`` [N] against labels ``y`` [N], with F1 and bootstrap
    95% intervals of each (``ci95``: name → (low, high)) and the confusion matrix."""
    y, p_pos = np.asarray(y), np.asarray(p_pos)

    def scores(idx: np.ndarray) -> dict:
        """``binary_scores`` and F1 of the objects ``idx`` [M]."""
        s = binary_scores(y[idx], p_pos[idx])
        return {**s, "f1": f1_of(s)}

    def quiet(idx: np.ndarray) -> dict:
        """``scores`` of a resample ``idx`` [N]; {} where it is undefined."""
        with warnings.catch_warnings():  # one-class resamples: AUC undefined, skipped
            warnings.simplefilter("ignore")
            try:
                return scores(idx)
            except ValueError:
                return {}

    out = scores(np.arange(len(y)))
    out["ci95"] = bootstrap_intervals(quiet, len(y), n_boot=n_boot, seed=seed)
    pred = (p_pos >= 0.5).astype(int)
    out["confusion"] = [[int(np.sum((y == t) & (pred == q))) for q in (0, 1)] for t in (0, 1)]
    out["n"] = int(len(y))
    return out


def flip_labels(data: TaskData, p: float, seed: int = 0) -> tuple[TaskData, np.ndarray]:
    """A copy of ``data`` with round(p·N) of the N source training labels flipped (0 ↔ 1), as 004
    §6.3 does: an equal number of LSBGs and artifacts (the odd one an LSBG), each drawn without
    replacement with ``seed``, so the class balance is kept; a class too small for its half gives
    all it has and the other class the rest. Validation, test and the target domain are the same
    objects. Returns the copy and the flipped rows [M] (M = round(p·N), sorted, into the source
    training split)."""
    if not 0 <= p <= 1:
        raise ValueError(f"label-noise fraction must lie in [0, 1], got {p}")
    train = data.source.splits["train"]
    n = int(round(p * len(train)))
    by_class = [np.flatnonzero(train.y == c) for c in (1, 0)]  # LSBGs, artifacts
    take = [min(n - n // 2, len(by_class[0])), min(n // 2, len(by_class[1]))]
    take[0] += min(n - sum(take), len(by_class[0]) - take[0])
    take[1] = n - take[0]
    rng = np.random.default_rng(seed)
    rows = np.sort(
        np.concatenate(
            [rng.choice(r, k, replace=False) for r, k in zip(by_class, take, strict=True)]
        )
    )
    y = train.y.copy()
    y[rows] = 1 - y[rows]
    source = copy.copy(data.source)
    source.splits = {**data.source.splits, "train": dataclasses.replace(train, y=y)}
    return dataclasses.replace(data, source=source), rows


def trained_by(info: dict, recipe) -> bool:
    """Whether the bundle with bundle.json ``info`` was trained under ``recipe``: every recipe
    field that changes the weights (all but ``NOT_TRAINING``) recorded equal in its
    ``hyperparameters``. With ``trained_on`` the same dataset, such a bundle *is* the model the
    recipe would train (the trainer is seeded), so it need not be trained again."""
    got = info.get("hyperparameters", {})
    return all(got.get(k) == v for k, v in recipe.to_dict().items() if k not in NOT_TRAINING)


def choose_cnn(
    cnn: str | Path | None,
    data_root: str | Path,
    attrs: dict,
    *,
    runs_root: str | Path,
    overrides: dict | None = None,
    progress: bool = True,
) -> ModelChoice:
    """The DeepShadows bundle compared: ``cnn`` (store tag or directory), else the newest stored
    deepshadows/regular lsbg bundle trained on the dataset with source-file ``attrs``, else one
    trained now with the quick recipe into ``runs_root`` (afresh) and stored."""
    from core.bundle import read_bundle
    from core.store import list_models, load

    name = f"{ARCHITECTURE}-regular"
    if cnn is not None:
        bundle = load(cnn)
        got = (bundle.info.get("task"), bundle.info.get("architecture"))
        if got != (TASK, ARCHITECTURE):
            raise ValueError(
                f"bundle {bundle.path} given as the CNN is task/architecture "
                f"{'/'.join(map(str, got))}, not {TASK}/{ARCHITECTURE}"
            )
        return ModelChoice(name, ARCHITECTURE, bundle.info["recipe"], bundle, "given", str(cnn))
    for row in list_models(TASK):  # newest first
        if (row["labels"].get("architecture"), row["labels"].get("recipe")) != (
            ARCHITECTURE,
            "regular",
        ):
            continue
        info = read_bundle(row["path"], check_files=False).info
        if info["recipe"] == "regular" and trained_on(info, attrs):
            return ModelChoice(name, ARCHITECTURE, "regular", load(row["tag"]), "store", row["tag"])
    from training.runs import train

    if progress:
        print(f"no stored {TASK} {name} bundle for {data_root}: training the quick recipe")
    res = train(TASK, "regular", quick=True, data_root=data_root, out_root=runs_root,
                progress=progress, resume=False, **(overrides or {}))  # fmt: skip
    return ModelChoice(name, ARCHITECTURE, "regular", load(res.bundle), "trained", res.tag)


def _fit(recipe_name: str, data: TaskData, run_dir: Path, *, quick: bool, model=None,
         overrides: dict | None = None, progress: bool = True):  # fmt: skip
    """Train ``data`` under the lsbg recipe (afresh, in ``run_dir``); the fit result and recipe."""
    from training.recipes import load_recipe
    from training.trainer import fit

    recipe = load_recipe(TASK, recipe_name, quick=quick, **(overrides or {}))
    return fit(recipe, data, run_dir, model=model, progress=progress, resume=False), recipe


def finetune(bundle: Bundle, data: TaskData, run_dir: Path, *, finetune_n: int, quick: bool,
             overrides: dict | None = None, progress: bool = True):  # fmt: skip
    """004 §5: the bundle's whole network retrained on the first ``finetune_n`` labelled
    target-domain training objects (``trainer.fit`` under the ``finetune`` recipe, validated on
    the target validation split); returns (fit result, recipe)."""
    from training.verify import torch_model

    n_target = len(data.target.splits["train"])
    if not 1 <= finetune_n <= n_target:
        raise ValueError(
            f"finetune_n must lie in [1, {n_target}] (the target training split), got {finetune_n}"
        )
    kw = {**(overrides or {}), "finetune_n": finetune_n, "finetune_from": str(bundle.path)}
    return _fit("finetune", data, run_dir, quick=quick, model=torch_model(bundle), overrides=kw,
                progress=progress)  # fmt: skip


def _p_lsbg(net, split: Split, device) -> np.ndarray:
    from training.trainer import predict

    return predict(net.to(device), split, device=device)[0][:, 1].astype(np.float64)


def _gradcam(net, split: Split, p: np.ndarray, raw_path: Path, n_per_cell: int, seed: int,
             out_dir: Path) -> tuple[dict, str | None]:  # fmt: skip
    """Grad-CAM of up to ``n_per_cell`` test objects of each confusion cell, confident ones
    (P(LSBG) > 0.8 or < 0.2, as 004 Fig. 6) first, topped up from the rest of the cell so each
    cell fills its row of the figure: cell facts and the PNG."""
    from core.datasets import open_dataset
    from training.gradcam import CELL_NAMES, confusion_cell_examples, grad_cam
    from training.plots.diagnostics import plot_gradcam

    pred = (p >= 0.5).astype(int)
    confident = (p > CONFIDENT) | (p < 1 - CONFIDENT)
    sure = confusion_cell_examples(split.y, pred, n_per_cell, seed, confident, num_classes=2)
    rest = confusion_cell_examples(split.y, pred, n_per_cell, seed, ~confident, num_classes=2)
    cells, rows = {}, []
    for key, name in sorted(CELL_NAMES.items(), key=lambda kv: CELL_ORDER.index(kv[1])):
        picked = np.concatenate([sure[key], rest[key][: n_per_cell - len(sure[key])]])
        cells[name] = {
            "true": key[0],
            "predicted": key[1],
            "n_in_cell": int(np.sum((split.y == key[0]) & (pred == key[1]))),
            "n_confident_shown": len(sure[key]),
            "objects": split.index[picked].tolist(),
            "p_lsbg": p[picked].tolist(),
        }
        rows += [(name, i) for i in picked]
    if not rows:
        return cells, None
    idx = np.array([i for _, i in rows])
    cams = grad_cam(net, split.x[idx])  # the predicted class explained, as 004 does
    with open_dataset(raw_path) as ds:
        raw = np.stack([ds.images[int(split.index[i])] for i in idx])
    titles = [f"{c}  P(LSBG) = {p[i]:.2f}" for c, i in rows]
    png = plot_gradcam(raw, cams, titles, out_dir / "gradcam_cells.png", ncols=max(1, n_per_cell))
    for name, cell in cells.items():
        cell["cam_peak_fraction"] = [
            float((cams[k] > 0.5).mean()) for k, (c, _) in enumerate(rows) if c == name
        ]
    return cells, png.name


def run_lsbg(
    data_root: str | Path = "data/train",
    out_dir: str | Path = "out/reports/lsbg",
    *,
    cnn: str | Path | None = None,
    noise_levels: tuple[float, ...] = NOISE_LEVELS,
    finetune_n: int = FINETUNE_N,
    quick: bool = True,
    seed: int = 0,
    n_boot: int = N_BOOT,
    n_gradcam: int = N_GRADCAM,
    runs_root: str | Path | None = None,
    train_overrides: dict | None = None,
    device: str | None = None,
    command: str | None = None,
    progress: bool = True,
) -> dict:
    """Run the 004 LSBG experiment and write ``report.md``, ``report.json`` and the PNGs into
    ``out_dir``; returns the report's numbers (what ``report.json`` holds).

    data_root : holds ``lsbg/{des,hsc}.h5`` (simulated first if absent). cnn : store tag or
        bundle directory of the DeepShadows model (default: :func:`choose_cnn`).
    noise_levels : fractions p of training labels flipped, each a retraining (004: 0, 1, 5, 10,
        33 %). finetune_n : labelled HSC-like objects fine-tuned on (004: 320).
    quick : quick recipes for the trainings made here. seed : label flips, baselines, bootstrap,
        Grad-CAM picks, and the recipes' seed. n_boot : bootstrap resamples (004: 1000).
    n_gradcam : Grad-CAM examples per confusion cell. runs_root : run directories (default
        ``out_dir/runs``). train_overrides : recipe fields for every training made here (tests).
    device : torch device (default: CUDA when present). command : the command line, for the report.
    """
    import torch

    from core.datasets import open_dataset
    from experiments.lsbg_report import SEED_004, markdown, plot_noise
    from training.baselines import fit as fit_baseline
    from training.data import load_task
    from training.features import measure_all
    from training.plots.diagnostics import plot_confusion, plot_roc
    from training.recipes import load_recipe
    from training.runs import DEFAULT_N, ensure_datasets
    from training.trainer import default_device
    from training.verify import torch_model

    watch = rp.Stopwatch()
    levels = tuple(float(p) for p in dict.fromkeys(noise_levels))
    if any(not 0 <= p <= 1 for p in levels) or n_boot < 1 or n_gradcam < 0:
        raise ValueError(
            f"need noise levels in [0, 1], n_boot >= 1 and n_gradcam >= 0; got {levels}, "
            f"{n_boot}, {n_gradcam}"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = out_dir / "runs" if runs_root is None else Path(runs_root)
    dev = torch.device(device) if device else default_device()
    overrides = {"seed": seed, **(train_overrides or {})}
    lap = watch.lap

    ensure_datasets(Path(data_root), TASK, DEFAULT_N, progress=progress)
    data = load_task(data_root, TASK)
    des, hsc = data.source, data.target
    test, test_hsc = des.splits["test"], hsc.splits["test"]
    dom = {"source": des.name.upper(), "target": hsc.name.upper()}
    chosen = choose_cnn(cnn, data_root, des.attrs, runs_root=runs, overrides=train_overrides,
                        progress=progress)  # fmt: skip
    net = torch_model(chosen.bundle).to(dev)
    lap("data_and_cnn")

    # 1. CNN vs SVM vs RF on the DES-like test split (004 Tables 2, 3)
    p_cnn = _p_lsbg(net, test, dev)
    zp, scale = np.asarray(des.attrs["magzp"]), float(des.attrs["pixel_scale_arcsec"])
    with tqdm(total=2, desc="sep features", disable=not progress) as bar:
        feats = {}
        for split in ("train", "test"):
            idx = des.splits[split].index
            with open_dataset(des.path) as ds:
                raw = np.concatenate([ds.images[idx[i : i + 512]] for i in range(0, len(idx), 512)])
            feats[split] = measure_all(raw, zp, scale)
            bar.update()
    probs, baseline_params = {"CNN": p_cnn}, {}
    for kind, label in (("svm", "SVM"), ("random_forest", "RF")):
        fitted = fit_baseline(kind, feats["train"], des.splits["train"].y, seed)
        probs[label], baseline_params[label] = fitted.predict_proba(feats["test"]), fitted.params
    comparison = {
        k: score_binary(test.y, v, n_boot, seed)
        for k, v in tqdm(probs.items(), desc="bootstrap", disable=not progress)
    }
    figures = {
        "roc_models": plot_roc(
            test.y,
            probs,
            out_dir / "roc_models.png",
            n_boot=n_boot,
            seed=seed,
            title=f"{dom['source']} test split ({len(test)} objects), 95% bootstrap bands",
        ).name,  # fmt: skip
        "confusion_cnn": plot_confusion(
            np.array(comparison["CNN"]["confusion"]), data.classes, out_dir / "confusion_cnn.png"
        ).name,
    }
    lap("models_and_baselines")

    # 2. transfer DES → HSC, before and after fine-tuning (004 §5, Table 4)
    p_before = _p_lsbg(net, test_hsc, dev)
    fit_res, ft_recipe = finetune(chosen.bundle, data, runs / "finetune", finetune_n=finetune_n,
                                  quick=quick, overrides=overrides, progress=progress)  # fmt: skip
    tuned = fit_res.model.to(dev)
    p_after, p_after_des = _p_lsbg(tuned, test_hsc, dev), _p_lsbg(tuned, test, dev)
    transfer = {
        "before": score_binary(test_hsc.y, p_before, n_boot, seed),
        "after": score_binary(test_hsc.y, p_after, n_boot, seed),
        "after_on_source": score_binary(test.y, p_after_des, n_boot, seed),
        "finetune_n": finetune_n,
        "finetune_objects": hsc.splits["train"].index[:finetune_n].tolist(),
        "recipe": _recipe_facts(ft_recipe),
        "epochs_run": len(fit_res.history),
        "best_epoch": fit_res.best_epoch,
        "seconds": round(fit_res.seconds, 1),
    }
    figures["roc_transfer"] = plot_roc(
        test_hsc.y, {"before fine-tuning": p_before, "after fine-tuning": p_after},
        out_dir / "roc_transfer.png", n_boot=n_boot, seed=seed,
        title=f"{dom['target']} test split ({len(test_hsc)} objects), 95% bootstrap bands",
    ).name  # fmt: skip
    for when in ("before", "after"):
        figures[f"confusion_transfer_{when}"] = plot_confusion(
            np.array(transfer[when]["confusion"]), data.classes,
            out_dir / f"confusion_transfer_{when}.png",
        ).name  # fmt: skip
    lap("transfer")

    # 3. label noise (004 §6.3, Table 6): quick-recipe data, the full clean test split
    noise_recipe = load_recipe(TASK, "regular", quick=quick, **overrides)
    train_data = data if noise_recipe.n_max is None else load_task(data_root, TASK,
                                                                    noise_recipe.n_max)  # fmt: skip
    # The 0 % control is the compared CNN itself when that was trained under the noise recipe
    # on this dataset (the default run's quick CNN is): retraining would repeat it exactly.
    info = chosen.bundle.info
    reuse = trained_on(info, des.attrs) and trained_by(info, noise_recipe)
    noise, p_noise = {}, {}
    for p in tqdm(levels, desc="label noise", disable=not progress):
        noisy, flipped = flip_labels(train_data, p, seed)
        if p == 0 and reuse:
            p_noise[p] = p_cnn
            tr = info.get("training", {})
            fit_facts = {"epochs_run": tr.get("epochs_run"), "best_epoch": tr.get("best_epoch"),
                         "seconds": tr.get("seconds"), "reused": chosen.tag}  # fmt: skip
        else:
            res, _ = _fit("regular", noisy, runs / f"noise-{p:g}", quick=quick,
                          overrides=overrides, progress=progress)  # fmt: skip
            p_noise[p] = _p_lsbg(res.model, test, dev)
            fit_facts = {"epochs_run": len(res.history), "best_epoch": res.best_epoch,
                         "seconds": round(res.seconds, 1), "reused": None}  # fmt: skip
        noise[f"{p:g}"] = {
            "p": p,
            "n_train": len(noisy.source.splits["train"]),
            "n_flipped": len(flipped),
            "flipped_objects": noisy.source.splits["train"].index[flipped].tolist(),
            **fit_facts,
            **score_binary(test.y, p_noise[p], n_boot, seed),
        }
    if levels:
        figures["roc_noise"] = plot_roc(
            test.y, {f"noise {p:.0%}": v for p, v in p_noise.items()},
            out_dir / "roc_noise.png", n_boot=n_boot, seed=seed,
            title=f"{dom['source']} test split, CNN retrained with flipped training labels",
        ).name  # fmt: skip
        figures["noise"] = plot_noise(noise, SEED_004["table6"], out_dir / "noise.png").name
    lap("label_noise")

    # 4. Grad-CAM of the four confusion cells (004 §4.3, Fig. 6)
    cells, png = _gradcam(net, test, p_cnn, des.path, n_gradcam, seed, out_dir)
    if png:
        figures["gradcam_cells"] = png
    lap("gradcam")

    numbers = {
        **rp.run_header(TASK, "004", command, str(dev), watch),
        "data": {
            "root": str(data_root),
            "domains": [des.name, hsc.name],
            "classes": data.classes,
            "dataset": {k: des.attrs[k] for k in ("survey", "seed", "n")},
            "n_train": len(des.splits["train"]),
            "n_test": len(test),
            "n_test_target": len(test_hsc),
            "n_train_target": len(hsc.splits["train"]),
            "class_counts_test": np.bincount(test.y, minlength=2).tolist(),
            "class_counts_test_target": np.bincount(test_hsc.y, minlength=2).tolist(),
        },
        "settings": {
            "quick": quick,
            "noise_levels": list(levels),
            "finetune_n": finetune_n,
            "n_boot": n_boot,
            "n_gradcam": n_gradcam,
            "seed": seed,
            "train_overrides": train_overrides or {},
            "noise_recipe": _recipe_facts(noise_recipe),
            "features": "training.features (sep), train split of the source domain",
            "baselines": baseline_params,
        },
        "cnn": _model_facts(chosen, des.attrs),
        "comparison": comparison,
        "transfer": transfer,
        "noise": noise,
        "gradcam": cells,
        "figures": figures,
        "seed_004": SEED_004,
    }
    rp.write_report(out_dir, markdown(numbers), numbers)
    return numbers


def _recipe_facts(r) -> dict:
    return {k: getattr(r, k) for k in ("recipe", "optimizer", "lr", "batch_size", "epochs",
                                       "patience", "n_max", "seed")}  # fmt: skip


def _model_facts(c: ModelChoice, attrs: dict) -> dict:
    """What the report says of the CNN: origin, bundle, training scale from bundle.json."""
    info = c.bundle.info
    tr, hp = info.get("training", {}), info.get("hyperparameters", {})
    return {
        "architecture": c.architecture,
        "recipe": c.recipe,
        "origin": c.origin,
        "tag": c.tag,
        "path": str(c.bundle.path),
        "optimizer": hp.get("optimizer"),
        "lr": hp.get("lr"),
        "n_max": hp.get("n_max"),
        "epochs_run": tr.get("epochs_run"),
        "best_epoch": tr.get("best_epoch"),
        "training_seconds": tr.get("seconds"),
        "quick": tr.get("quick"),
        "trained_on_this_dataset": trained_on(info, attrs),
        "n_train": info.get("datasets", {}).get("source", {}).get("n_train"),
    }
