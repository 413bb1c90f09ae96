"""The morphology experiment's report.md, with 002's figures beside ours.

Our figure comes first in each cell and 002's follows in parentheses. 002's numbers are typed
from the paper (Tables 2–5, Fig. 6, §4.1 and §5.2), in ``SEED_002``, which report.json repeats.
"""

from __future__ import annotations

from experiments import report as rp
from experiments.morphology_inputs import RECIPES
from training.robustness import JS_BINS

#: 002's figures, by architecture and recipe; metrics are (accuracy, precision, recall, F1),
#: d_E rows (median, mean, standard error), over ``n_both`` images flipped under both models.
SEED_002 = {
    "metrics": {  # Table 2 (ResNet18), Table 4 (ConvNet)
        "convnet-regular": {"source": (0.70, 0.72, 0.70, 0.70), "target": (0.48, 0.67, 0.48, 0.42)},
        "convnet-mmd": {"source": (0.69, 0.70, 0.69, 0.69), "target": (0.57, 0.62, 0.57, 0.58)},
        "resnet18-regular": {
            "source": (0.72, 0.76, 0.72, 0.72),
            "target": (0.43, 0.61, 0.43, 0.36),
        },
        "resnet18-mmd": {"source": (0.82, 0.82, 0.82, 0.82), "target": (0.66, 0.67, 0.66, 0.67)},
    },
    "distances": {  # Table 5 (ConvNet, 134 images), Table 3 (ResNet18, 136 images)
        "convnet": {
            "n_both": 134,
            "target": {"regular": (6.3, 6.7, 0.2), "mmd": (6.9, 8.3, 0.3)},
            "one_pixel": {"regular": (2.8, 3.1, 0.1), "mmd": (3.6, 4.1, 0.2)},
        },
        "resnet18": {
            "n_both": 136,
            "target": {"regular": (18.1, 20.2, 1.0), "mmd": (26.4, 29.7, 1.5)},
            "one_pixel": {"regular": (16.0, 16.8, 0.4), "mmd": (35.8, 38.1, 1.3)},
        },
    },
    # Fig. 6. ResNet18 one-pixel: §5.3 text. The Y10–Y1 values are the figure's labels in the
    # order the text extraction gives them (top: ConvNet, bottom: ResNet18); ConvNet's one-pixel
    # label is not legible in our copy.
    "js": {
        "convnet": {"target": 0.26, "one_pixel": None},
        "resnet18": {"target": 0.24, "one_pixel": 0.64},
    },
    "attack": {"n_attack": 150, "population": 400, "generations": 80},
}
#: What the report says of each early-stop rule of the attack.
STOPS = {
    "flip": "an image's attack stops at its first flip (the untargeted analogue of 002's "
    "targeted stop at p_target > 0.5: just past the decision boundary); ",
    "threshold": "an image's attack stops once its true class falls below 0.05 (Su et al.); ",
    "off": "every image runs all generations; ",
}
SEED_NOTE = (
    "002 = Ćiprijanović et al., DeepAdversaries: IllustrisTNG100 galaxies (spiral, elliptical, "
    "merger) imaged as LSST Y10 (training domain) and the noisier Y1."
)


def markdown(r: dict) -> str:
    """report.md from the numbers of :func:`~experiments.morphology.run_morphology`."""
    s, env, data = r["settings"], r["environment"], r["data"]
    dom = {"source": data["domains"][0].upper(), "target": data["domains"][1].upper()}
    f, seed = rp.fmt, SEED_002
    src, tgt = dom["source"], dom["target"]
    out = [
        "# Morphology robustness: regular vs MMD domain adaptation (seed 002)",
        "",
        SEED_NOTE + " Our figures come first in each cell, 002's in parentheses; our data are "
        "skyguard's GalSim mocks, not 002's, so agreement in trend, not in value, is the test.",
        "",
        "## Scale",
        "",
        f"* command: `{r['command'] or 'experiments.morphology.run_morphology(...)'}`",
        f"* data: `{data['root']}` ({data['dataset']['survey']}, seed {data['dataset']['seed']}, "
        f"{data['dataset']['n']} objects a domain); test split N = {data['n_test']} objects in "
        f"each of {src} and {tgt} (the same galaxies), classes "
        + ", ".join(
            f"{c} {n}" for c, n in zip(data["classes"], data["class_counts_test"], strict=True)
        ),
        f"* device: {env['device']} ({env['cpu_count']} CPU cores, {env['torch_threads']} torch "
        f"threads), torch {env['torch']}, skyguard {env['skyguard']} at {env['git_revision']}",
        f"* wall time: {r['wall_time_s']:.0f} s ("
        + ", ".join(f"{k.replace('_', ' ')} {v:.0f} s" for k, v in r["stage_seconds"].items())
        + f"), {env['date']}",
        f"* one-pixel attack: {s['n_attacked']} {src} test images (of the {s['n_correct_by_all']} "
        f"every model classifies correctly; asked {s['n_attack']}, 002: 150), untargeted, "
        f"population {s['population']}, at most {s['generations']} generations, F = "
        f"{s['mutation_f']}, early stop `{s['early_stop']}`, pixel values in "
        f"[{s['bounds'][0]:g}, {s['bounds'][1]:g}] (the arcsinh-stretched input); 002: population "
        f"{seed['attack']['population']} (Su et al.'s default; 002 does not state its own), at "
        f"most {seed['attack']['generations']} iterations, targeted at each wrong class",
        "",
    ]
    for a, why in s["skipped"].items():
        out += [f"**{a}: {why}.**", ""]

    out += ["## Models", ""]
    rows = []
    for n, m in r["models"].items():
        rows.append(
            [
                n,
                m["origin"],
                f"`{m['tag'] or m['path']}`",
                f(m["lr"], 6) if m["lr"] is None else f"{m['lr']:g}",
                f"{m['epochs_run']} (best {m['best_epoch']})",
                "full" if m["n_max"] is None else f"first {m['n_max']}",
                "yes" if m["trained_on_this_dataset"] else "**no**",
            ]
        )
    out += [
        rp.md_table(
            [
                "model",
                "from",
                "bundle",
                "lr",
                "epochs (best)",
                "objects used",
                "trained on this dataset",
            ],
            rows,
        ),
        "",
    ]
    out += ["002: Adam lr 1e-5, batch 128, up to 100 epochs with early stopping, λ = 0.05.", ""]

    out += [
        f"## Accuracy and weighted precision / recall / F1 on {src} and {tgt} (002 Tables 2, 4)",
        "",
    ]
    rows = []
    for n, c in r["classification"].items():
        ref = seed["metrics"].get(n, {})
        for role in ("source", "target"):
            m, sd = c[role], ref.get(role, (None,) * 4)
            rows.append(
                [n, f"{m['domain']} (N = {m['n']})"]
                + [
                    rp.beside(m[k], sd[j])
                    for j, k in enumerate(("accuracy", "precision", "recall", "f1"))
                ]
            )
    out += [
        rp.md_table(["model", "test domain", "accuracy", "precision", "recall", "F1"], rows),
        "",
    ]
    out += ["Confusion matrices (rows true, columns predicted):", ""]
    out += [f"![{k}]({v})" for k, v in r["figures"].items() if k.startswith("confusion_")] + [""]

    out += ["## One-pixel attack", ""]
    rows = []
    for n, a in r["attack"].items():
        rows.append(
            [
                n,
                f(a["n"]),
                f(a["flipped"]),
                f(a["flip_ratio"]),
                f(a.get("confirmed")),
                f(a.get("generations_mean_flipped"), 1),
                f(a.get("generations_median_flipped"), 1),
                f(a.get("generations_mean"), 1),
                f(a.get("evaluations_mean"), 0),
                f(a["seconds"], 0),
            ]
        )
    out += [
        rp.md_table(
            [
                "model",
                "attacked",
                "flipped",
                "flip ratio",
                "confirmed on re-run",
                "generations (flipped, mean)",
                "(median)",
                "generations (all, mean)",
                "model evaluations / image",
                "seconds",
            ],
            rows,
        ),
        "",
    ]
    out += [
        "002: 134 (ConvNet) and 136 (ResNet18) of 150 images flipped under both trainings "
        "within 80 iterations; DA needed more iterations.",
        "",
    ]

    for arch in s["architectures"]:
        out += _arch_section(arch, r, src, tgt)

    out += [
        "## How this differs from 002",
        "",
        "* Data: skyguard's GalSim mocks of LSST Y10 / Y1 (DESIGN.md), not 002's images; model "
        "lr and epochs as in the Models table.",
        "* Attack: untargeted (002 attacks each wrong class), with the population and "
        "generations above; "
        + STOPS.get(s["early_stop"], "")
        + "a flip counts when the model's argmax on the returned image differs from the true "
        "class, and each is re-checked by running the model again.",
        "* d_E is the Euclidean distance between 256-D latents (the penultimate layer); "
        "standard errors use the sample standard deviation (ddof = 1).",
        "* JS binning is not stated in 002; ours is stated above.",
    ]
    return "\n".join(out)


def _arch_section(arch: str, r: dict, src: str, tgt: str) -> list[str]:
    """The d_E table and JS distances (002 Tables 3, 5; Fig. 6), church windows and isomaps of
    one architecture's regular/mmd pair."""
    f, figs = rp.fmt, r["figures"]
    out = []
    dd = r["distances"].get(arch)
    if dd is not None:
        ref = SEED_002["distances"][arch]
        table = "Table 5" if arch == "convnet" else "Table 3"
        out += [
            f"## {arch}: latent distances d_E over images flipped under both (002 {table})",
            "",
            f"N = {dd['n_both']} images flipped under both regular and mmd "
            f"(002: {ref['n_both']} of 150).",
            "",
        ]
        rows = []
        for kind, label in (("target", f"{src} – {tgt}"), ("one_pixel", f"{src} – 1P")):
            for recipe in RECIPES:
                m, sd = dd[recipe][kind], ref[kind][recipe]
                if m is None:
                    rows.append([label, recipe, rp.MISSING, rp.MISSING, rp.MISSING])
                    continue
                rows.append([
                    label, recipe, rp.beside(m["median"], sd[0], 2, 1), rp.beside(m["mean"], sd[1], 2, 1),
                    f"±{f(m['sem'], 2)} (±{sd[2]:.1f})",
                ])  # fmt: skip
        js, jref = dd["js"], SEED_002["js"][arch]
        out += [
            rp.md_table(["perturbation", "training", "median", "mean", "st. err."], rows),
            "",
            "JS distance between the regular and mmd d_E distributions (base-2 logarithms, "
            f"{JS_BINS} equal-width bins over the pooled range; 002 Fig. 6): "
            f"{src} – {tgt} {rp.beside(js['target'], jref['target'], 2)}, "
            f"{src} – 1P {rp.beside(js['one_pixel'], jref['one_pixel'], 2)}."
            + (
                f" At N = {dd['n_both']} a sample over {JS_BINS} bins the histograms are sparse, "
                "so the JS distance is dominated by sampling noise: read it with care."
                if dd["n_both"] < 5 * JS_BINS
                else ""
            ),
            "",
            f"For context, {src} – {tgt} d_E over all {r['data']['n_test']} test objects: mean "
            f"regular {f(dd['regular']['target_all_test']['mean'], 2)}, mmd "
            f"{f(dd['mmd']['target_all_test']['mean'], 2)}.",
            "",
        ]
        out += [f"![{k}]({v})" for k, v in figs.items() if k.startswith(f"distances_{arch}_")]
        out += [""]
    if f"church_windows_{arch}" in figs:
        out += [
            f"### {arch}: church windows (002 Fig. 5)",
            "",
            "Top row regular, bottom row mmd. Horizontal axis: the one-pixel direction; vertical: "
            f"the {tgt} direction; each normalised so that the attacked image (triangle) is at "
            f"(1, 0) and the {tgt} image (star) at (0, 1), the base {src} image (×) at the origin. "
            "Titles: true class → the attacked image's class (DE generations). Objects "
            f"{r['church_windows'][arch]['objects']}.",
            "",
            f"![church windows {arch}]({figs[f'church_windows_{arch}']})",
            "",
        ]
    isos = [k for k in figs if k.startswith(f"isomap_{arch}-")]
    if isos:
        out += [
            f"### {arch}: isomaps (002 Fig. 3)",
            "",
            f"2-D isomaps of the latents of {r['settings']['n_isomap']} random test objects, "
            f"{src} filled and {tgt} empty, coloured by the model's predicted class; the first "
            "church window's triplet marked (× base, triangle one-pixel, star noisy).",
            "",
        ]
        out += [f"![{k}]({figs[k]})" for k in isos] + [""]
    return out
