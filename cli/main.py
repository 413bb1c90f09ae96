"""The ``skyguard`` command line.

Each sub-command is a thin shell over a library function; heavy modules are imported only by the
command that needs them, so ``skyguard --help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from training.recipes import RECIPES  # yaml only: --help stays instant

TASKS = ("morphology", "photoz", "lsbg")
#: ``skyguard experiment NAME``: the seeds' experiments (experiments)
EXPERIMENTS = ("morphology", "photoz", "lsbg")


def _serve(args: argparse.Namespace) -> int:
    import os

    from cli.bootstrap import main as bootstrap

    os.environ.setdefault("BENTOML_HOME", str(Path("models/bentoml").resolve()))
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    argv = ["--data", args.data, "--runs", args.runs, "--examples", args.examples]
    if code := bootstrap(argv):
        return code
    cmd = [sys.executable, "-m", "bentoml", "serve", "service.service:Skyguard",
           "--host", args.host, "--port", str(args.port)]  # fmt: skip
    print("+", shlex.join(cmd), flush=True)
    os.execv(sys.executable, cmd)  # the server replaces this process: signals reach it directly


def _simulate(args: argparse.Namespace) -> int:
    from training.simulate import simulator
    from training.simulate.runner import generate

    options = {"zmax": args.zmax} if args.task == "photoz" and args.zmax is not None else {}
    result = generate(
        simulator(args.task, **options),
        args.n,
        Path(args.out),
        seed=args.seed,
        workers=args.workers,
        label_source=args.labels,
    )
    for name, path in result.paths.items():
        print(f"{args.task}/{name}: {path}")
    rate = result.n / result.seconds
    print(
        f"{result.n} objects × {len(result.paths)} domains in {result.seconds:.1f} s "
        f"({rate:.1f} objects/s on {result.workers} workers)"
    )
    if "gm20_agreement" in result.extra_attrs:
        print(f"construction vs G–M20 class agreement: {result.extra_attrs['gm20_agreement']:.1%}")
        print("confusion (rows construction spiral/elliptical/merger, columns G–M20):")
        for row in result.extra_attrs["gm20_confusion"]:
            print("   ", row)
    return 0


def _cutouts(args: argparse.Namespace) -> int:
    from training.cutouts import write_cutouts

    compression = {"none": None, "rice": "RICE_1", "gzip": "GZIP_2"}[args.compress]
    paths = write_cutouts(
        args.dataset,
        args.out,
        n=args.n,
        split=args.split,
        layout=args.layout,
        compression=compression,
    )
    print(f"wrote {len(paths)} FITS cutouts to {args.out}")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from core.datasets import dataset_paths
    from training.plots.examples import plot_examples, plot_gm20

    root, out = Path(args.data), Path(args.out or args.data)
    out.mkdir(parents=True, exist_ok=True)
    made = []
    for task in args.tasks or TASKS:
        paths = list(dataset_paths(root, task))
        if not paths:
            continue
        if args.what == "examples":
            made.append(plot_examples(paths, out / f"{task}_examples.png"))
        if task == "morphology":  # the G–M20 diagram belongs to both
            made.append(plot_gm20(paths[0], out / "morphology_gm20.png"))
    if not made:
        print(f"no datasets under {root} (expected {root}/<task>/<domain>.h5)", file=sys.stderr)
        return 1
    for p in made:
        print(p)
    return 0


def _hardness(args: argparse.Namespace) -> int:
    from training.simulate.hardness import write

    figures = write(args.data, args.tasks or list(TASKS), Path(args.data) / "hardness.json")
    print(json.dumps(figures, indent=2))
    return 0


def _demo(args: argparse.Namespace) -> int:
    """Simulate all six domains at small N, draw the example PNGs, write a few FITS cutouts."""
    out = Path(args.out)
    for task in TASKS:
        rc = _simulate(
            argparse.Namespace(
                task=task,
                n=args.n,
                out=out,
                seed=args.seed,
                workers=args.workers,
                labels="construction",
                zmax=None,
            )
        )
        if rc:
            return rc
    _plot(argparse.Namespace(data=out, out=out / "plots", tasks=None, what="examples"))
    from training.cutouts import write_cutouts

    for task, domain in (("morphology", "y10"), ("photoz", "deep"), ("lsbg", "des")):
        paths = write_cutouts(out / task / f"{domain}.h5", out / "cutouts", n=3, split="test")
        print(f"{len(paths)} FITS cutouts of {task}/{domain} in {out / 'cutouts'}")
    return 0


def _print_metrics(metrics: dict) -> None:
    keys = ("accuracy", "f1", "auc", "completeness", "purity", "bias", "sigma_mad", "eta")
    for role, m in metrics.items():
        figures = ", ".join(f"{k} {m[k]:.4g}" for k in keys if k in m)
        print(f"  {role} ({m.get('domain')}) test: {figures}")


def _train(args: argparse.Namespace) -> int:
    from training.runs import train

    overrides = {
        "architecture": args.arch,
        "epochs": args.epochs,
        "lr": args.lr,
        "n_max": args.n_max,
        "seed": args.seed,
        "finetune_from": args.finetune_from,
    }
    res = train(
        args.task,
        args.recipe,
        quick=args.quick,
        data_root=args.data,
        out_root=args.out,
        store=not args.no_store,
        resume=not args.restart,
        **overrides,
    )
    t = res.training
    print(
        f"trained in {t['seconds']:.0f} s on {t['device']} ({t['epochs_run']} epochs, "
        f"best {t['best_epoch']}); bundle {res.bundle}"
    )
    _print_metrics(res.metrics)
    print(f"curve: {res.run_dir / 'training_curve.png'}")
    if res.tag:
        print(f"stored as {res.tag}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from training.runs import export_checkpoint

    res = export_checkpoint(args.run_dir, args.data, store=not args.no_store)
    print(f"bundle {res.bundle}" + (f", stored as {res.tag}" if res.tag else ""))
    _print_metrics(res.metrics)
    return 0


def _models(args: argparse.Namespace) -> int:
    from core.bundle import BundleError, check_parity
    from core.store import list_models, load

    if args.action == "list":
        rows = list_models(args.target)
        if not rows:
            print("no skyguard models in the BentoML store")
            return 0
        for r in rows:
            lab = r["labels"]
            meta = ", ".join(f"{k} {v:.4g}" for k, v in r["metadata"].items() if "_" in k and
                             isinstance(v, float))  # fmt: skip
            print(
                f"{r['tag']:<40} {r['created']}  {lab.get('architecture')}/{lab.get('recipe')}  {meta}"
            )
        return 0
    if not args.target:
        print(f"'models {args.action}' needs a tag or bundle directory", file=sys.stderr)
        return 2
    try:
        bundle = load(args.target)
        if args.action == "show":
            print(json.dumps(bundle.info, indent=1))
            return 0
        err = check_parity(bundle)
        print(f"{bundle.path}: schema, sha256 of {len(bundle.info['files'])} files and "
              f"ONNX parity OK ({', '.join(f'{k} {v:.1e}' for k, v in err.items())})")  # fmt: skip
        if args.torch:
            from training.verify import torch_parity

            err = torch_parity(bundle)
            print(f"torch weights.pt vs stored torch outputs: {err}")
    except (BundleError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def _baselines(args: argparse.Namespace) -> int:
    from training.baselines import compare

    result = compare(args.data, n_max=args.n_max, seed=args.seed)
    for domain, rows in result.items():
        for kind, s in rows.items():
            ci = s["ci95"]
            print(
                f"{domain:>4} {kind:<14} accuracy {s['accuracy']:.3f} "
                f"({ci['accuracy'][0]:.3f}–{ci['accuracy'][1]:.3f}), AUC {s['auc']:.3f} "
                f"({ci['auc'][0]:.3f}–{ci['auc'][1]:.3f}), completeness {s['completeness']:.3f}, "
                f"purity {s['purity']:.3f}, n={s['n_test']}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


def _experiment_morphology(args: argparse.Namespace) -> int:
    from core.bundle import BundleError
    from experiments import morphology

    models = {}
    for item in args.bundle:
        name, sep, tag = item.partition("=")
        if not (sep and name and tag):
            print(f"error: --bundle wants NAME=TAG_OR_DIR, got {item!r}", file=sys.stderr)
            return 2
        models[name] = tag
    out = args.out or f"out/reports/{args.name}"
    population = args.population or morphology.POPULATION
    generations = args.generations or morphology.GENERATIONS
    # the command with every default spelled out: what the report prints, to re-run it
    command = shlex.join(
        ["skyguard", "experiment", args.name, "--data", args.data, "--out", out, "--arch",
         *args.arch, "--n-attack", str(args.n_attack), "--population", str(population),
         "--generations", str(generations), "--seed", str(args.seed)]
        + [a for item in args.bundle for a in ("--bundle", item)]
    )  # fmt: skip
    try:
        r = morphology.run_morphology(
            models or None,
            args.data,
            out,
            architectures=tuple(args.arch),
            n_attack=args.n_attack,
            population=population,
            generations=generations,
            seed=args.seed,
            command=command,
        )
    except (BundleError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(
        f"report: {Path(out) / 'report.md'} ({r['wall_time_s']:.0f} s on {r['environment']['device']})"
    )
    for name, c in r["classification"].items():
        a = r["attack"][name]
        print(f"  {name}: accuracy {c['source']['domain']} {c['source']['accuracy']:.3f}, "
              f"{c['target']['domain']} {c['target']['accuracy']:.3f}; one-pixel flips "
              f"{a['flipped']}/{a['n']}")  # fmt: skip
    for arch, d in r["distances"].items():
        js = ", ".join(f"{k} {v:.2f}" for k, v in d["js"].items() if v is not None)
        print(f"  {arch}: {d['n_both']} flipped under both; JS {js or '—'}")
    return 0


def _experiment_lsbg(args: argparse.Namespace) -> int:
    from core.bundle import BundleError
    from experiments import lsbg

    out = args.out or "out/reports/lsbg"
    noise = tuple(args.noise)
    command = shlex.join(
        ["skyguard", "experiment", "lsbg", "--data", args.data, "--out", out, "--noise",
         *(f"{p:g}" for p in noise), "--finetune-n", str(args.finetune_n), "--seed",
         str(args.seed)] + (["--cnn", args.cnn] if args.cnn else [])
        + (["--full"] if args.full else [])
    )  # fmt: skip
    try:
        r = lsbg.run_lsbg(args.data, out, cnn=args.cnn, noise_levels=noise,
                          finetune_n=args.finetune_n, quick=not args.full, seed=args.seed,
                          command=command)  # fmt: skip
    except (BundleError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    dom = [d.upper() for d in r["data"]["domains"]]
    print(f"report: {Path(out) / 'report.md'} ({r['wall_time_s']:.0f} s on "
          f"{r['environment']['device']})")  # fmt: skip
    for name, s in r["comparison"].items():
        print(f"  {name:<4} {dom[0]} accuracy {s['accuracy']:.3f}, AUC {s['auc']:.3f}")
    t = r["transfer"]
    print(f"  CNN on {dom[1]}: accuracy {t['before']['accuracy']:.3f} before, "
          f"{t['after']['accuracy']:.3f} after fine-tuning on {t['finetune_n']}")  # fmt: skip
    for v in r["noise"].values():
        print(f"  label noise {v['p']:.0%}: accuracy {v['accuracy']:.3f}, AUC {v['auc']:.3f}")
    return 0


def _score(args: argparse.Namespace) -> int:
    # scoring sits above service (DESIGN: training ← monitors ← service ← scoring), so it is
    # imported here, when the command runs, and never by the training package itself
    from scoring.cli import main as score_main

    return score_main(args.argv)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="skyguard",
        description=(
            "Model serving and robustness monitoring for survey pipelines. "
            "Offline side: survey mocks, datasets, FITS cutouts, plots."
        ),
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser(
        "simulate",
        help="make a task's paired survey mocks (HDF5, one file per domain)",
        description="Simulate N objects of TASK with GalSim in both of its domains "
        "(morphology: LSST Y10/Y1; photoz: deep/shallow; lsbg: DES-like/HSC-like) and "
        "write OUT/TASK/<domain>.h5 with a seeded 70/10/20 split. The same seed gives "
        "the same bytes whatever the number of workers.",
    )
    s.add_argument("task", choices=TASKS)
    s.add_argument(
        "--n", type=int, required=True, help="number of objects (each drawn in every domain)"
    )
    s.add_argument("--out", required=True, help="output directory")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    s.add_argument(
        "--labels",
        choices=("construction", "gm20"),
        default="construction",
        help="morphology: label by the class an object was built as, or by its G–M20 class (002 §2.1)",
    )
    s.add_argument("--zmax", type=float, default=None, help="photoz: upper redshift (default 0.4)")
    s.set_defaults(func=_simulate)

    c = sub.add_parser(
        "cutouts",
        help="write FITS cutouts from a dataset file",
        description="Write one FITS file per object: a cube HDU or one HDU per band "
        "(FILTER), optionally tile-compressed, with BUNIT, EXPTIME, MAGZP, pixel scale and "
        "OBJECT in the header.",
    )
    c.add_argument("dataset", help="an HDF5 dataset file made by 'skyguard simulate'")
    c.add_argument("--out", required=True)
    c.add_argument("--n", type=int, default=10, help="how many objects (first N of the split)")
    c.add_argument("--split", choices=("train", "val", "test"), default="test")
    c.add_argument("--layout", choices=("cube", "bands"), default="cube")
    c.add_argument("--compress", choices=("none", "rice", "gzip"), default="none")
    c.set_defaults(func=_cutouts)

    pl = sub.add_parser(
        "plot",
        help="draw example grids (002 Fig. 2) and the G–M20 diagram (Fig. 1)",
        description="Draw PNGs from the datasets under DATA/<task>/.",
    )
    pl.add_argument(
        "what",
        choices=("examples", "gm20"),
        help="examples: per-task grids (rows domains, columns classes) and the G–M20 diagram; "
        "gm20: the diagram only",
    )
    pl.add_argument("data", help="directory holding <task>/<domain>.h5")
    pl.add_argument("--out", default=None, help="where the PNGs go (default: DATA)")
    pl.add_argument("--tasks", nargs="*", choices=TASKS)
    pl.set_defaults(func=_plot)

    h = sub.add_parser(
        "hardness",
        help="measure how hard the mocks are (quick classifier, both domains)",
        description="Train a simple model on each task's first domain and score both "
        "domains' test splits; writes DATA/hardness.json.",
    )
    h.add_argument("data")
    h.add_argument("--tasks", nargs="*", choices=TASKS)
    h.set_defaults(func=_hardness)

    d = sub.add_parser(
        "demo",
        help="simulate all six domains at small N, with PNGs and FITS cutouts",
        description="The README's first command: mocks for all three tasks, example PNGs "
        "and the G–M20 diagram, and a few FITS cutouts per task.",
    )
    d.add_argument("--n", type=int, default=300)
    d.add_argument("--out", default="data/demo")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--workers", type=int, default=None)
    d.set_defaults(func=_demo)

    t = sub.add_parser(
        "train",
        help="train a task under a recipe and make its model bundle",
        description="Train TASK under RECIPE (training/recipes/TASK/RECIPE.yaml; --quick uses "
        "its quick block: minutes on a 2-core CPU), evaluate on the source and target test "
        "splits, export the ONNX bundle and store it in the BentoML model store. Datasets are "
        "read from DATA/TASK/*.h5 and simulated there first if absent. Re-running the same "
        "command resumes from the run's checkpoint.",
    )
    t.add_argument("task", choices=TASKS)
    t.add_argument("--recipe", default="regular", choices=RECIPES)
    t.add_argument("--quick", action="store_true", help="the recipe's quick variant")
    t.add_argument("--arch", default=None, help="architecture (morphology: convnet|resnet18; "
                   "photoz: inception|simple_cnn)")  # fmt: skip
    t.add_argument("--data", default="data/train", help="dataset root (default data/train)")
    t.add_argument("--out", default="out/runs", help="run directories (default out/runs)")
    t.add_argument("--epochs", type=int, default=None)
    t.add_argument("--lr", type=float, default=None)
    t.add_argument("--n-max", type=int, default=None, help="use at most N objects")
    t.add_argument("--seed", type=int, default=None)
    t.add_argument("--finetune-from", default=None, help="bundle dir or store tag (finetune)")
    t.add_argument("--no-store", action="store_true", help="do not store the bundle")
    t.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    t.set_defaults(func=_train)

    e = sub.add_parser(
        "export",
        help="make a model bundle from a run directory's checkpoint",
        description="Load RUN_DIR/checkpoint.pt (best-validation weights), evaluate, export "
        "ONNX with the parity check, write RUN_DIR/bundle and store it.",
    )
    e.add_argument("run_dir")
    e.add_argument("--data", default="data/train")
    e.add_argument("--no-store", action="store_true")
    e.set_defaults(func=_export)

    bl = sub.add_parser(
        "baselines",
        help="lsbg: SVM and random-forest baselines on sep features (004 §4.2)",
        description="Measure SourceExtractor-style features with sep on DATA/lsbg/*.h5, fit an "
        "RBF SVM and a random forest on the DES-like train split, score both test splits "
        "with bootstrap 95%% intervals (004 Table 2).",
    )
    bl.add_argument("data", help="dataset root holding lsbg/<domain>.h5")
    bl.add_argument("--n-max", type=int, default=None)
    bl.add_argument("--seed", type=int, default=0)
    bl.add_argument("--json", default=None, help="also write the figures to this JSON file")
    bl.set_defaults(func=_baselines)

    m = sub.add_parser(
        "models",
        help="list, show or verify stored model bundles",
        description="list [TASK]: skyguard models in the BentoML store, newest first. "
        "show TAG: bundle.json. verify TAG: schema, checksums and ONNX-vs-torch parity on the "
        "stored held-out inputs (--torch: also re-run weights.pt). TAG is name:version, a task "
        "name (its newest model) or a bundle directory.",
    )
    m.add_argument("action", choices=("list", "show", "verify"))
    m.add_argument("target", nargs="?", default=None)
    m.add_argument("--torch", action="store_true", help="verify: also re-run the torch weights")
    m.set_defaults(func=_models)

    sv = sub.add_parser(
        "serve",
        help="what 'make serve' does: default bundles if the store has none, then the service",
        description="Train the quick default bundle of every task the store lacks (with "
        "progress), write the example FITS cutouts, then run 'bentoml serve "
        "service.service:Skyguard'. The store is $BENTOML_HOME (the Makefile's, models/bentoml, "
        "when unset).",
    )
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=3000)
    sv.add_argument("--data", default="data/train", help="dataset root for first-start training")
    sv.add_argument("--runs", default="out/runs")
    sv.add_argument("--examples", default="data/examples")
    sv.set_defaults(func=_serve)

    ex = sub.add_parser(
        "experiment",
        help="re-run a seed's experiment and write its report (Markdown, PNG, JSON)",
        description="Re-run one of the seeds' experiments on our mocks; each writes report.md, "
        "report.json and PNGs into --out (default out/reports/NAME). 'skyguard experiment NAME "
        "--help' lists its options.",
    )
    exs = ex.add_subparsers(dest="name", required=True, metavar="NAME")
    mo = exs.add_parser(
        "morphology",
        help="002: ConvNet/ResNet18, regular vs MMD; one-pixel attacks, d_E, church windows",
        description="morphology (002): ConvNet (and ResNet18 with --arch), regular vs MMD "
        "domain adaptation on the Y10 and Y1 test splits: accuracy and weighted P/R/F1, one-pixel "
        "attacks on N_ATTACK test images, latent distances d_E over images flipped under both "
        "models and their JS distance, church windows, isomaps. Models are the --bundle ones, "
        "else the newest stored bundle of each architecture and recipe trained on DATA, else "
        "trained now with the quick recipe. The defaults finish within 30 minutes on a 2-core "
        "CPU (002: at most 80 generations; Su et al.: population 400).",
    )
    mo.add_argument("--data", default="data/train", help="dataset root (default data/train)")
    mo.add_argument("--out", default=None, help="report directory (default out/reports/NAME)")
    mo.add_argument("--bundle", action="extend", nargs="+", default=[], metavar="NAME=TAG",
                    help="a model to compare, e.g. convnet-mmd=skyguard-morphology:abc or a "
                    "bundle directory (repeatable)")  # fmt: skip
    mo.add_argument("--arch", nargs="+", default=["convnet"], choices=("convnet", "resnet18"),
                    help="architectures compared (default convnet)")  # fmt: skip
    mo.add_argument("--n-attack", type=int, default=150, help="test images attacked (002: 150)")
    mo.add_argument(
        "--population",
        type=int,
        default=None,
        help="DE population (default: sized for 30 minutes on 2 cores; Su et al.: 400)",
    )
    mo.add_argument(
        "--generations",
        type=int,
        default=None,
        help="DE generations at most (default: as --population; 002: 80)",
    )
    mo.add_argument("--seed", type=int, default=0)
    mo.set_defaults(func=_experiment_morphology)

    from experiments import photoz  # numpy and the option list only; torch on first use

    ph = exs.add_parser(
        "photoz",
        help="003: FGSM/PGD on the photo-z CNN, transfer, adversarial training at several f_a",
        description="photoz (003): FGSM and PGD (L∞, L2) against the regular simple CNN: bias, "
        "σ_MAD and η clean and attacked (Table 1); the same adversarial images given to a second "
        "seed and to the Inception network (transfer); adversarial training with each FGSM "
        "fraction f_a and with PGD_FRACTION PGD, each scored clean, under FGSM and under PGD "
        "(Tables 2, 3). The default scale finishes within 30 minutes on a 2-core CPU; --full "
        "for all objects.",
    )
    photoz.add_arguments(ph)
    ph.set_defaults(func=photoz.main)

    ls = exs.add_parser(
        "lsbg",
        help="004: DeepShadows vs SVM/RF, DES→HSC fine-tuning, label noise, Grad-CAM",
        description="lsbg (004): the DeepShadows CNN against an SVM and a random forest on sep "
        "features, with bootstrap 95%% intervals, on the DES-like test split (Tables 2, 3); the "
        "CNN on the HSC-like test split before and after fine-tuning on FINETUNE_N HSC-like "
        "objects (Table 4); the CNN retrained with each fraction of training labels flipped "
        "(Table 6); Grad-CAM of the four confusion cells. The CNN is --cnn, else the newest "
        "stored deepshadows/regular lsbg bundle trained on DATA, else trained now (quick recipe, "
        "stored). Fine-tuned and noisy models are not stored. Quick recipes by default: within "
        "30 minutes on a 2-core CPU.",
    )
    ls.add_argument("--data", default="data/train", help="dataset root (default data/train)")
    ls.add_argument("--out", default=None, help="report directory (default out/reports/lsbg)")
    ls.add_argument("--cnn", default=None, metavar="TAG_OR_DIR",
                    help="the DeepShadows bundle: store tag or bundle directory")  # fmt: skip
    ls.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.01, 0.05, 0.10, 0.33],
                    metavar="P", help="fractions of training labels flipped, one retraining "
                    "each (default and 004: 0 0.01 0.05 0.1 0.33)")  # fmt: skip
    ls.add_argument("--finetune-n", type=int, default=320,
                    help="HSC-like objects fine-tuned on (004: 320)")  # fmt: skip
    ls.add_argument("--full", action="store_true",
                    help="full recipes for the fine-tuning and noise retrainings (hours on a "
                    "CPU; default: quick recipes)")  # fmt: skip
    ls.add_argument("--seed", type=int, default=0)
    ls.set_defaults(func=_experiment_lsbg)

    # scoring.cli parses everything after 'score' (its own --help too): no prefix characters
    # here, so argparse hands every argument over as it is
    sc = sub.add_parser(
        "score",
        help="batch-score FITS cutouts or an HDF5 dataset into a Parquet catalogue (Spark or local)",
        add_help=False,
        prefix_chars="\0",
    )
    sc.add_argument("argv", nargs=argparse.REMAINDER)
    sc.set_defaults(func=_score)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
