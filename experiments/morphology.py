"""002 (DeepAdversaries) re-run on our mocks: ``skyguard experiment morphology``.

For each architecture asked (ConvNet by default, ResNet18 on request), regular training against
MMD domain adaptation ("DA" in 002), on the paired Y10 / Y1 test splits:

1. accuracy and weighted precision / recall / F1 per model and domain (002 Tables 2, 4), with
   confusion matrices;
2. an untargeted one-pixel attack (``training.attacks.one_pixel``) against every model on the same
   ``n_attack`` Y10 test images, drawn (seeded) from those that *every* compared model classifies
   correctly (002 §4.1, §5.2 attack correctly classified images): flip ratio, DE generations;
3. over the images flipped under *both* models of a regular/mmd pair: d_E between the base and the
   attacked latents and between Y10 and the same galaxy in Y1 (median, mean ± standard error; 002
   Tables 3, 5), and the JS distance between the two models' d_E distributions (Fig. 6);
4. church windows of ``n_windows`` of those images (Fig. 5) and 2-D isomaps of test latents, Y10
   filled and Y1 empty (Fig. 3).

The models are bundles, chosen by ``morphology_inputs.choose_models``: given, found in the model
store (trained on the same dataset), or trained now with the quick recipe. The report is written
by ``morphology_report``, beside 002's figures.

Where we differ from 002 (each is stated in the report): the attack is untargeted (002 attacks
every wrong class) and stops an image at its first flip (the untargeted analogue of 002's targeted
stop at p_target > 0.5, which lands just past the decision boundary, where d_E measures the
distance to the wrong class); population and generations default to 100 and 40 (Su et al.'s 400
and 002's cap of 80 iterations take ~8× the time) so the default run fits 30 minutes on a 2-core
CPU.
"""

from __future__ import annotations

import time
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from experiments import report as rp
from experiments.morphology_inputs import (
    ARCHITECTURES,
    RECIPES,
    TASK,
    ModelChoice,
    PairedTest,
    choose_models,
    model_name,
    read_test_splits,
    trained_on,
)
from training.attacks.onepixel import OnePixelResult, StopRule, one_pixel, torch_predictor

if TYPE_CHECKING:
    from torch import nn

#: Defaults sized for 30 minutes on a 2-core CPU (see the module docstring).
POPULATION = 100
GENERATIONS = 40
#: 002 attacks 150 test images (§4.1) and shows 250 objects per domain in its isomaps (Fig. 3).
N_ATTACK = 150
N_ISOMAP = 250
#: Images per ``one_pixel`` call: the progress bar's step (each call still batches its images).
ATTACK_CHUNK = 10
#: Images per forward pass on a CPU: small batches keep the activations in cache (the ConvNet runs
#: about twice as fast a row at 32 as at 256: docs/benchmarks.md, attack speed); GPUs want more.
CPU_BATCH, GPU_BATCH = 32, 4096
#: Why an architecture left out of ``architectures`` is missing from the report.
SKIP_REASON = (
    "not asked (--arch); on a CPU ResNet18 costs ~5× the ConvNet per forward pass, so the default "
    "run leaves it out to stay within 30 minutes on 2 cores; add it with --arch convnet resnet18"
)


def _concat(parts: list[OnePixelResult]) -> OnePixelResult:
    """One result from the results of consecutive chunks of images (untargeted)."""
    cat = {
        f.name: np.concatenate([getattr(p, f.name) for p in parts])
        for f in fields(parts[0])
        if f.name not in ("targets", "index")
    }
    return OnePixelResult(**cat, targets=None, index=np.arange(len(cat["success"])))


def attack_images(
    net: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    bounds: tuple[float, float],
    population: int,
    generations: int,
    early_stop: StopRule,
    seed: int,
    progress: bool,
    desc: str,
) -> OnePixelResult:
    """Untargeted one-pixel attacks of ``net`` on x [N, C, H, W] (model input) with labels y [N],
    ``ATTACK_CHUNK`` images a call; chunk k is seeded by (seed, k), so every model sees the same
    initial populations on the same images."""
    predict = torch_predictor(net)
    on_gpu = next(net.parameters()).device.type != "cpu"
    parts = []
    with tqdm(total=len(x), desc=desc, unit="img", disable=not progress) as bar:
        for k, s in enumerate(range(0, len(x), ATTACK_CHUNK)):
            sl = slice(s, s + ATTACK_CHUNK)
            parts.append(
                one_pixel(
                    predict,
                    x[sl],
                    y[sl],
                    bounds=bounds,
                    population=population,
                    generations=generations,
                    early_stop=early_stop,
                    batch_size=GPU_BATCH if on_gpu else CPU_BATCH,
                    seed=np.random.default_rng([seed, k]),
                )
            )
            bar.update(len(x[sl]))
    return _concat(parts)


def _pick_windows(both: np.ndarray, labels: np.ndarray, n: int) -> list[int]:
    """Up to ``n`` of the images ``both``: first one of each true class (002 Fig. 5 shows a
    spiral, an elliptical and a merger), then the rest in order."""
    first = [int(both[labels[both] == k][0]) for k in np.unique(labels[both])]
    rest = [int(i) for i in both if i not in first]
    return (first + rest)[:n]


def _classify(nets: dict, data: PairedTest, dev, out_dir: Path, progress: bool):
    """Predictions {name: {role: (probs [N, K], latents [N, D])}} on both test splits, their
    scores (002 Tables 2, 4) and confusion-matrix PNGs."""
    from training.metrics import classification_scores
    from training.plots.diagnostics import plot_confusion
    from training.trainer import predict

    preds, scores, figures = {}, {}, {}
    roles = {"source": data.source, "target": data.target}
    for name, net in tqdm(nets.items(), desc="predict", disable=not progress):
        preds[name], scores[name] = {}, {}
        for (role, split), domain in zip(roles.items(), data.domains, strict=True):
            batch = CPU_BATCH if dev.type == "cpu" else GPU_BATCH
            preds[name][role] = predict(net, split, batch_size=batch, device=dev)
            s = classification_scores(split.y, preds[name][role][0].argmax(1), len(data.classes))
            scores[name][role] = {"domain": domain.upper(), "n": len(split), **s}
            png = plot_confusion(
                np.array(s["confusion"]), data.classes, out_dir / f"confusion_{name}_{domain}.png"
            )
            figures[f"confusion_{name}_{role}"] = png.name
    return preds, scores, figures


def _attack_summary(net, res: OnePixelResult, seconds: float) -> dict:
    """Flip ratio and generations of one model's attack, every counted flip re-checked by
    running the model on the returned image, and per attacked image (in order) its success,
    generations, and the pixel (row, col) and band values that reproduce the attacked image."""
    flipped = res.images[res.success]
    again = torch_predictor(net)(flipped).argmax(1) if len(flipped) else np.zeros(0, int)
    g = res.generations[res.success]
    return {
        "n": len(res.success),
        "flipped": int(res.success.sum()),
        "flip_ratio": float(res.success.mean()),
        "confirmed": int((again != res.labels[res.success]).sum()),
        "generations_mean_flipped": float(g.mean()) if g.size else None,
        "generations_median_flipped": float(np.median(g)) if g.size else None,
        "generations_mean": float(res.generations.mean()),
        "evaluations_mean": float(res.evaluations.mean()),
        "seconds": round(seconds, 1),
        "evaluations_per_s": round(float(res.evaluations.sum()) / max(seconds, 1e-9), 1),
        "per_image": {
            "success": res.success.tolist(),
            "generations": res.generations.tolist(),
            "pixel": res.pixel.tolist(),
            "values": res.values.tolist(),
        },
    }


def _pair_distances(
    arch: str,
    nets: dict,
    results: dict,
    preds: dict,
    x: np.ndarray,
    x_noisy: np.ndarray,
    dom: dict,
    out_dir: Path,
):
    """d_E summaries, JS distances and histogram PNGs of the regular/mmd pair of ``arch`` over
    the attacked images [M] flipped under both (002 §4.1, Tables 3 and 5, Fig. 6); returns
    (numbers, figures, indices of those images into the attacked ones)."""
    from training.plots.robustness import plot_distance_histograms
    from training.robustness import (
        distance_summary,
        flipped_under_both,
        js_distance,
        latent_distances,
    )

    names = {r: model_name(arch, r) for r in RECIPES}
    both = flipped_under_both(results[names["regular"]], results[names["mmd"]])
    d, entry, figures = {}, {"n_both": len(both)}, {}
    for recipe, name in names.items():
        d[recipe] = {
            "one_pixel": latent_distances(nets[name], x[both], results[name].images[both]),
            "target": latent_distances(nets[name], x[both], x_noisy[both]),
        }
        entry[recipe] = {k: distance_summary(v) if len(v) else None for k, v in d[recipe].items()}
        # context: Y10–Y1 over every test object, flipped or not
        (_, z_s), (_, z_t) = preds[name]["source"], preds[name]["target"]
        entry[recipe]["target_all_test"] = distance_summary(np.linalg.norm(z_t - z_s, axis=1))
    entry["js"] = {}
    for kind, label in (("target", dom["target"]), ("one_pixel", "one-pixel (1P)")):
        if not len(both):
            entry["js"][kind] = None
            continue
        js = js_distance(d["regular"][kind], d["mmd"][kind])
        entry["js"][kind] = js
        png = plot_distance_histograms(
            d["regular"][kind],
            d["mmd"][kind],
            names=("regular", "mmd (DA)"),
            js=js,
            path=out_dir / f"distances_{arch}_{kind}.png",
            title=f"{arch}: {dom['source']} – {label}, {len(both)} images flipped under both",
        )
        figures[f"distances_{arch}_{kind}"] = png.name
    entry["d_e"] = {r: {k: v.tolist() for k, v in dd.items()} for r, dd in d.items()}
    return entry, figures, both


def _church_windows(
    arch: str,
    nets: dict,
    results: dict,
    picks: list[int],
    x: np.ndarray,
    x_noisy: np.ndarray,
    y: np.ndarray,
    classes: list[str],
    out_dir: Path,
):
    """Church windows (002 §4.2, Fig. 5) of the attacked images ``picks`` under the regular
    (top row) and the mmd (bottom row) model of ``arch``: their classes and the PNG."""
    from training.plots.robustness import plot_church_windows
    from training.robustness import church_window

    info: dict = {"one_pixel_class": {}, "noisy_class": {}}
    wins, titles = [], []
    for recipe in RECIPES:
        name = model_name(arch, recipe)
        res, row = results[name], []
        for i in picks:
            cw = church_window(nets[name], x[i], res.pixel[i], res.values[i], x_noisy=x_noisy[i])
            row.append(cw)
            titles.append(f"{classes[y[i]]} → {classes[cw.adv_class]} ({res.generations[i]} gen)")
        info["one_pixel_class"][recipe] = [classes[w.adv_class] for w in row]
        info["noisy_class"][recipe] = [classes[w.noisy_class] for w in row]
        wins += row
    png = plot_church_windows(
        wins,
        classes,
        out_dir / f"church_windows_{arch}.png",
        row_names=["regular", "mmd (DA)"],
        titles=titles,
        ncol=len(picks),
    )
    info["true"] = [classes[k] for k in y[picks]]
    return info, png.name


def _isomap(
    name: str,
    net,
    preds: dict,
    sample: np.ndarray,
    triplet: np.ndarray | None,
    data: PairedTest,
    out_dir: Path,
) -> str:
    """2-D isomap (002 §4.3, Fig. 3) of the test objects ``sample`` in both domains (Y10 filled,
    Y1 empty, coloured by predicted class), with the images ``triplet`` [3, C, H, W] (base,
    one-pixel, noisy) marked when given; the PNG's name."""
    import torch

    from training.plots.robustness import plot_isomap
    from training.robustness import isomap_embedding, latents

    (p_s, z_s), (p_t, z_t) = preds["source"], preds["target"]
    extra, marks, mark_classes = None, None, None
    keys = ("base", "one_pixel", "noisy")
    if triplet is not None:
        extra = latents(net, triplet)
        dev = next(net.parameters()).device
        with torch.inference_mode():
            lab = net(torch.from_numpy(triplet).to(dev)).argmax(1).cpu().numpy()
        mark_classes = dict(zip(keys, map(int, lab), strict=True))
    emb = isomap_embedding(z_s[sample], z_t[sample], 2, extra=extra)
    if triplet is not None:
        marks = dict(zip(keys, emb.extra, strict=True))
    src, tgt = (d.upper() for d in data.domains)
    png = plot_isomap(
        emb,
        None,
        (p_s[sample].argmax(1), p_t[sample].argmax(1)),
        out_dir / f"isomap_{name}.png",
        classes=data.classes,
        names=(src, tgt),
        triplet=marks,
        triplet_labels=mark_classes,
        title=f"{name}: {len(sample)} test objects, {src} filled, {tgt} empty",
    )
    return png.name


def run_morphology(
    models: dict[str, str | Path] | None = None,
    data_root: str | Path = "data/train",
    out_dir: str | Path = "out/reports/morphology",
    *,
    architectures: tuple[str, ...] = ("convnet",),
    n_attack: int = N_ATTACK,
    population: int = POPULATION,
    generations: int = GENERATIONS,
    early_stop: StopRule = "flip",
    n_windows: int = 3,
    n_isomap: int = N_ISOMAP,
    n_test: int | None = None,
    seed: int = 0,
    train_missing: bool = True,
    runs_root: str | Path | None = None,
    device: str | None = None,
    command: str | None = None,
    progress: bool = True,
) -> dict:
    """Run the 002 morphology experiment and write ``report.md``, ``report.json`` and the PNGs
    into ``out_dir``; returns the report's numbers (what ``report.json`` holds).

    models : name (``ARCH-RECIPE``) → store tag or bundle directory; missing ones are found or
        trained (:func:`choose_models`, ``train_missing``; runs in ``runs_root``, by default
        ``out_dir/runs``).
    data_root : holds ``morphology/<domain>.h5`` (simulated first if absent, as ``skyguard
        train`` does). architectures : subset of ``ARCHITECTURES``, each compared regular vs mmd.
    n_attack : Y10 test images attacked, drawn (``seed``) from those every model classifies
        correctly (fewer if fewer are). population, generations, early_stop : the one-pixel
        attack's (002 / Su et al.: 400, 80, threshold). n_windows : church windows per model.
    n_isomap : test objects per domain in the isomaps. n_test : only the first N test objects
        (None: all). device : torch device (default: CUDA when present). command : the command
        line, for the report.
    """
    import torch

    from experiments.morphology_report import SEED_002, markdown
    from training.runs import DEFAULT_N, ensure_datasets
    from training.trainer import default_device
    from training.verify import torch_model

    watch = rp.Stopwatch()
    architectures = tuple(dict.fromkeys(architectures))
    if not architectures or any(a not in ARCHITECTURES for a in architectures):
        raise ValueError(f"architectures must be among {ARCHITECTURES}, got {architectures}")
    if n_attack < 1 or n_windows < 0 or n_isomap < 0 or (n_test is not None and n_test < 2):
        raise ValueError(
            "need n_attack >= 1, n_windows >= 0, n_isomap >= 0 and n_test >= 2 or None; got "
            f"{n_attack}, {n_windows}, {n_isomap}, {n_test}"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device) if device else default_device()
    lap = watch.lap

    ensure_datasets(Path(data_root), TASK, DEFAULT_N, progress=progress)
    data = read_test_splits(data_root, n_test)
    src, tgt, classes = data.source, data.target, data.classes
    dom = {"source": data.domains[0].upper(), "target": data.domains[1].upper()}
    chosen = choose_models(
        models,
        architectures,
        data_root,
        data.attrs,
        train_missing=train_missing,
        runs_root=out_dir / "runs" if runs_root is None else runs_root,
        progress=progress,
    )
    nets = {n: torch_model(c.bundle).to(dev).eval() for n, c in chosen.items()}
    lap("data_and_models")

    preds, classification, figures = _classify(nets, data, dev, out_dir, progress)
    lap("classification")

    # the same images for every model: Y10 test images all of them classify correctly (002 §4.1)
    correct = np.logical_and.reduce([p["source"][0].argmax(1) == src.y for p in preds.values()])
    candidates = np.flatnonzero(correct)
    picked = np.sort(
        np.random.default_rng(seed).choice(
            candidates, size=min(n_attack, len(candidates)), replace=False
        )
    )
    x, y, x_noisy = src.x[picked], src.y[picked], tgt.x[picked]
    results: dict[str, OnePixelResult] = {}
    attack: dict[str, dict] = {}
    bounds = tuple(next(iter(chosen.values())).bundle.info.get("input_range") or (0.0, 1.0))
    for name, net in nets.items():
        if not len(picked):
            attack[name] = {"n": 0, "flipped": 0, "flip_ratio": None, "seconds": 0.0}
            continue
        t0 = time.perf_counter()
        results[name] = attack_images(
            net,
            x,
            y,
            bounds=bounds,
            population=population,
            generations=generations,
            early_stop=early_stop,
            seed=seed,
            progress=progress,
            desc=f"one-pixel {name}",
        )
        attack[name] = _attack_summary(net, results[name], time.perf_counter() - t0)
    lap("one_pixel")

    distances, windows = {}, {}
    sample = np.sort(
        np.random.default_rng([seed, 1]).choice(len(src), min(n_isomap, len(src)), replace=False)
    )
    for arch in architectures:
        picks: list[int] = []
        if results:
            entry, figs, both = _pair_distances(
                arch, nets, results, preds, x, x_noisy, dom, out_dir
            )
            entry["objects"] = src.index[picked[both]].tolist()
            distances[arch] = entry
            figures.update(figs)
            picks = _pick_windows(both, y, n_windows) if len(both) else []
        if picks:
            info, png = _church_windows(arch, nets, results, picks, x, x_noisy, y, classes, out_dir)
            windows[arch] = {"objects": src.index[picked[picks]].tolist(), **info}
            figures[f"church_windows_{arch}"] = png
        # isomap's 5 nearest neighbours need more than 5 points
        for recipe in RECIPES if 2 * len(sample) > 5 else ():
            name = model_name(arch, recipe)
            i = picks[0] if picks else None
            triplet = None if i is None else np.stack([x[i], results[name].images[i], x_noisy[i]])
            figures[f"isomap_{name}"] = _isomap(
                name, nets[name], preds[name], sample, triplet, data, out_dir
            )
    lap("distances_windows_isomaps")

    numbers = {
        **rp.run_header(TASK, "002", command, str(dev), watch),
        "data": {
            "root": str(data_root),
            "domains": list(data.domains),
            "classes": classes,
            "n_test": len(src),
            "dataset": {k: data.attrs[k] for k in ("survey", "seed", "n")},
            "class_counts_test": np.bincount(src.y, minlength=len(classes)).tolist(),
        },
        "settings": {
            "architectures": list(architectures),
            "skipped": {a: SKIP_REASON for a in ARCHITECTURES if a not in architectures},
            "n_attack": n_attack,
            "n_attacked": len(picked),
            "n_correct_by_all": len(candidates),
            "attacked_objects": src.index[picked].tolist(),
            "population": population,
            "generations": generations,
            "mutation_f": 0.5,
            "early_stop": early_stop,
            "targeted": False,
            "bounds": list(bounds),
            "n_windows": n_windows,
            "n_isomap": len(sample),
            "seed": seed,
        },
        "models": {n: _model_facts(c, data.attrs) for n, c in chosen.items()},
        "classification": classification,
        "attack": attack,
        "distances": distances,
        "church_windows": windows,
        "figures": figures,
        "seed_002": SEED_002,
    }
    rp.write_report(out_dir, markdown(numbers), numbers)
    return numbers


def _model_facts(c: ModelChoice, attrs: dict) -> dict:
    """What the report says of a model: origin, bundle, training scale from bundle.json."""
    info = c.bundle.info
    tr, hp = info.get("training", {}), info.get("hyperparameters", {})
    return {
        "architecture": c.architecture,
        "recipe": c.recipe,
        "origin": c.origin,
        "tag": c.tag,
        "path": str(c.bundle.path),
        "lr": hp.get("lr"),
        "mmd_weight": hp.get("mmd_weight"),
        "n_max": hp.get("n_max"),
        "epochs_run": tr.get("epochs_run"),
        "best_epoch": tr.get("best_epoch"),
        "training_seconds": tr.get("seconds"),
        "trained_on_this_dataset": trained_on(info, attrs),
        "git_revision": info.get("git_revision"),
        "bundle_metrics": {
            role: {k: m.get(k) for k in ("domain", "n", "accuracy", "f1")}
            for role, m in info.get("metrics", {}).items()
        },
    }
