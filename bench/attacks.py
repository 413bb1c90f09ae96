"""Attack speed: our one-pixel attack, FGSM and PGD against their peers, same model and images.

One-pixel (002 §2.3), untargeted, at equal population, generations and F = 0.5:

* **ours** — ``training.attacks.one_pixel``: the populations of all images scored together,
  images × candidates in passes of ``--batch`` rows, an image leaving as soon as it flips; against the torch
  model, and against the bundle's ONNX Runtime session (the served model, black box);
* **scipy** (the per-candidate reference) — ``scipy.optimize.differential_evolution``, one
  candidate per forward pass (rand1bin, CR = 1: the same DE/rand/1 without crossover), stopped by
  its callback after the first generation in which a candidate flipped the image;
* **torchattacks** ``OnePixel`` and **ART** ``PixelAttack`` (benchmark-only peers, if installed):
  one image at a time, its population in passes of ``--batch`` rows (torchattacks'
  ``inf_batch``; best1bin, dithered F), stopping at a flip.
  ART's population is fixed at 400 and it rounds pixel values to 256 levels.

Per attack: seconds per image, success rate (re-checked on the torch model for every attack),
model evaluations (rows through the model, counted by one wrapper for all) per image and per
success, wall milliseconds per evaluation, the time spent inside the model's forward calls, and
efficiency = that model time / attack wall time (the issue's target: ours ≥ 1 / 1.2). On a
shared machine the model's own speed drifts with the load (the 1-minute load average at the start
of each attack is printed): compare ms/eval with that in mind. FGSM and PGD (L∞, ε, 10 steps, α = ε/10; 003) against torchattacks
and ART, in ``--repeats`` interleaved rounds: median, fastest and slowest seconds per image and
success rate.

Model: a morphology bundle from the BentoML store (``models/bentoml``, as the Makefile; default
the newest ``regular`` one, 002's baseline) — its ``weights.pt`` in its architecture and its
ONNX model — on its canaries preprocessed the bundle's way, by default the ones it is least sure
of (so that flips, and early stopping, happen within a short run); else a freshly initialised
ConvNet on uniform random images labelled by its own answers. The output says which. This is a
speed benchmark: its success rates describe these images, not the model's robustness.

Run:  .venv/bin/python bench/attacks.py [--images 8] [--population 400] [--generations 10]
      [--batch 16] [--threads 2] [--model regular] [--pick least-confident] [--repeats 9]
      [--only all|one-pixel|gradient]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).parents[1]
# the Makefile's store; an explicit BENTOML_HOME wins
os.environ.setdefault("BENTOML_HOME", str(ROOT / "models" / "bentoml"))
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
sys.path.insert(0, str(ROOT))

from training.attacks import fgsm, one_pixel, onnx_predictor, pgd, torch_predictor  # noqa: E402
from training.losses import per_sample_cross_entropy  # noqa: E402


class Counted(nn.Module):
    """The model, counting the rows it scores and the seconds spent in its forward calls."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.rows, self.seconds = 0, 0.0

    def reset(self) -> None:
        self.rows, self.seconds = 0, 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t0 = time.perf_counter()
        out = self.net(x)
        self.seconds += time.perf_counter() - t0
        self.rows += len(x)
        return out


class CountedOnnx:
    """An ONNX Runtime ``Predictor`` with the same counters."""

    def __init__(self, session) -> None:
        self.predict = onnx_predictor(session)
        self.rows, self.seconds = 0, 0.0

    def reset(self) -> None:
        self.rows, self.seconds = 0, 0.0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        out = self.predict(x)
        self.seconds += time.perf_counter() - t0
        self.rows += len(x)
        return out


def _resolve(model: str) -> str:
    """A store tag or directory; a recipe name means the newest morphology bundle of it."""
    if model not in ("regular", "mmd"):
        return model
    import bentoml

    found = [m for m in bentoml.models.list("skyguard-morphology")
             if m.info.labels.get("recipe") == model]  # fmt: skip
    if not found:
        raise LookupError(f"no {model} morphology bundle in the store")
    return str(max(found, key=lambda m: m.creation_time).tag)


def setup(model: str, n: int, pick: str) -> tuple[nn.Module, object, np.ndarray, np.ndarray, str]:
    """(model in eval mode, ONNX session or None, images [n, C, H, W] in [0, 1], labels [n],
    description)."""
    try:
        from core.store import load
        from training.models import build

        tag = _resolve(model)
        bundle = load(tag)
        if bundle.task not in ("morphology", "lsbg"):
            raise ValueError(
                f"{tag} is a {bundle.task} bundle; the one-pixel attack needs a classifier"
            )
        info = bundle.info
        net = build(info["architecture"])
        net.load_state_dict(torch.load(bundle.path / "weights.pt", weights_only=True))
        net.eval()
        can = bundle.canaries()
        x = bundle.preprocessing(can["images"]).astype(np.float32)
        y = can["labels"].astype(np.int64)
        if pick == "balanced":  # the first canary of each class, then the second, ...
            rank = np.empty(len(y), int)
            for c in np.unique(y):
                rank[y == c] = np.arange((y == c).sum())
            order = np.lexsort((y, rank))[:n]
        else:  # the ones the model is least sure of: a one-pixel flip is within reach
            with torch.inference_mode():
                p = torch.softmax(net(torch.from_numpy(x)), 1).numpy()
            order = np.argsort(p[np.arange(len(y)), y], kind="stable")[:n]
        x, y = x[order], y[order]
        sess = _session(bundle.onnx_path)
        what = (f"bundle {tag} ({Path(bundle.path).name}): {info['architecture']} "
                f"{info['recipe']} ({info['task']}); the {len(x)} {pick} of its "
                f"{len(can['labels'])} canaries, preprocessed")  # fmt: skip
    except Exception as e:  # no store, no bundle, or a broken one: say so and go on
        from training.models import ConvNet

        torch.manual_seed(0)
        net = ConvNet().eval()
        gen = torch.Generator().manual_seed(0)
        x = torch.rand((n, *net.input_shape), generator=gen).numpy()
        with torch.inference_mode():
            y = net(torch.from_numpy(x)).argmax(1).numpy()
        sess = None
        what = (f"FALLBACK — no usable bundle {model!r} ({type(e).__name__}: {e}); a freshly "
                f"initialised ConvNet on {n} uniform random images labelled by its own answers")  # fmt: skip
    return net, sess, x, y, what


def _session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def raw_seconds_per_row(fn: Callable[[np.ndarray], object], x: np.ndarray, batch: int) -> float:
    """Seconds per image of ``fn`` on batches of ``batch`` images (≥ 1 s of calls)."""
    xb = np.ascontiguousarray(np.resize(x, (batch, *x.shape[1:])), dtype=np.float32)
    fn(xb)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 1.0:
        fn(xb)
        n += 1
    return (time.perf_counter() - t0) / (n * batch)


# --- one-pixel attacks: each returns perturbed images [N, C, H, W] -------------------------------


def scipy_one_pixel(model: nn.Module, x: np.ndarray, y: np.ndarray, pop: int, gens: int,
                    f: float) -> np.ndarray:  # fmt: skip
    """Per-candidate reference: scipy's DE, one forward pass per candidate, stopped by its
    callback after the first generation with a flipped candidate."""
    from scipy.optimize import differential_evolution

    _, ch, h, w = x.shape
    bounds = [(0, h), (0, w)] + [(0.0, 1.0)] * ch
    out = x.copy()
    for i in range(len(x)):
        img, label = x[i], int(y[i])
        hit: list[np.ndarray] = []

        def place(z: np.ndarray, img=img) -> np.ndarray:
            adv = img.copy()
            adv[:, min(int(z[0]), h - 1), min(int(z[1]), w - 1)] = z[2:]
            return adv

        def fitness(z: np.ndarray, label=label, hit=hit, place=place) -> float:
            with torch.inference_mode():
                p = torch.softmax(model(torch.from_numpy(place(z)[None])), 1)[0].numpy()
            if not hit and p.argmax() != label:
                hit.append(z.copy())
            return float(p[label])

        res = differential_evolution(
            fitness, bounds, strategy="rand1bin", popsize=max(1, pop // len(bounds)),
            mutation=f, recombination=1.0, maxiter=gens, tol=0, atol=-1, polish=False,
            init="random", updating="deferred", rng=np.random.default_rng(i),
            callback=lambda xk, convergence=None, hit=hit: bool(hit),
        )  # fmt: skip
        out[i] = place(hit[0] if hit else res.x)
    return out


def torchattacks_one_pixel(model: nn.Module, x: np.ndarray, y: np.ndarray, pop: int, gens: int,
                           batch: int) -> np.ndarray:  # fmt: skip
    import torchattacks

    atk = torchattacks.OnePixel(model, pixels=1, steps=gens, popsize=pop, inf_batch=batch)
    return atk(torch.from_numpy(x), torch.from_numpy(y)).numpy()


def _art_classifier(model: nn.Module, x: np.ndarray, k: int):
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(model, loss=nn.CrossEntropyLoss(), input_shape=x.shape[1:],
                             nb_classes=k, clip_values=(0.0, 1.0), device_type="cpu")  # fmt: skip


def art_one_pixel(model: nn.Module, x: np.ndarray, y: np.ndarray, k: int,
                  gens: int) -> np.ndarray:  # fmt: skip
    from art.attacks.evasion import PixelAttack

    probs = nn.Sequential(model, nn.Softmax(dim=1))  # fitness on probabilities, as 002
    atk = PixelAttack(_art_classifier(probs, x, k), th=1, es=1, max_iter=gens,
                      verbose=False)  # fmt: skip
    return atk.generate(x, y).astype(np.float32)


#: how to get each benchmark-only peer (not in requirements.lock): torchattacks without its
#: dependencies, which would pull torchvision and another torch (it imports without them)
INSTALL = {
    "torchattacks": ".venv/bin/pip install --no-deps torchattacks==3.5.1",
    "art": ".venv/bin/pip install -c requirements.lock adversarial-robustness-toolbox==1.20.1",
}


def _peer(name: str) -> str | None:
    """None if the peer imports, else why not."""
    try:
        with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if name == "torchattacks":
                import torchattacks  # noqa: F401
            else:
                import art.attacks.evasion  # noqa: F401
        return None
    except Exception as e:  # ImportError, or a broken install (e.g. torchvision beside our torch)
        return f"{type(e).__name__}: {e}".splitlines()[0][:100] + f"; install: {INSTALL[name]}"


def _flipped(model: nn.Module, adv: np.ndarray, y: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(np.ascontiguousarray(adv))).argmax(1).numpy() != y


def _l0_ok(x: np.ndarray, adv: np.ndarray) -> bool:
    """At most one pixel position changed (beyond float round-off: ART rescales to 0…255 and
    back)."""
    changed = (np.abs(adv - x) > 1e-5).any(axis=1)
    return bool((changed.reshape(len(x), -1).sum(1) <= 1).all())


def _one_pixel_section(args, net, sess, model, x, y, k, why, why_art) -> None:
    """The one-pixel comparison: ours (torch, ONNX Runtime), scipy DE, torchattacks, ART."""
    n, p, g = len(x), args.population, args.generations
    print(f"\n## one-pixel, untargeted: population {p}, ≤ {g} generations, F = 0.5, {n} images")
    print(f"{'attack':<30} {'s/image':>8} {'success':>8} {'evals/img':>10} {'evals/succ':>10} "
          f"{'ms/eval':>8} {'model s':>8} {'eff':>5} {'load':>5}  note")  # fmt: skip
    rows: dict[str, dict] = {}

    def report(name: str, fn: Callable[[], np.ndarray], counter, note: str = "") -> None:
        counter.reset()
        load = os.getloadavg()[0]
        np.random.seed(0)
        torch.manual_seed(0)
        t0 = time.perf_counter()
        adv = fn()
        wall = time.perf_counter() - t0
        ok = _flipped(net, adv, y)
        if not _l0_ok(x, adv):
            note = (note + "; " if note else "") + "L0 > 1!"
        r = {"s": wall / n, "succ": ok.mean(), "evals": counter.rows / n,
             "per_succ": counter.rows / max(1, ok.sum()), "model_s": counter.seconds,
             "eff": counter.seconds / wall}  # fmt: skip
        rows[name] = r
        ms_eval = 1e3 * wall / max(1, counter.rows)
        print(f"{name:<30} {r['s']:8.2f} {r['succ']:8.0%} {r['evals']:10.0f} {r['per_succ']:10.0f} "
              f"{ms_eval:8.2f} {r['model_s']:8.1f} {r['eff']:5.2f} {load:5.1f}  {note}",
              flush=True)  # fmt: skip

    def ours(predictor, stop):
        res = one_pixel(predictor, x, y, population=p, generations=g, early_stop=stop,
                        batch_size=args.batch, seed=0)  # fmt: skip
        return res.images

    report("ours torch, stop at flip", lambda: ours(torch_predictor(model), "flip"), model)
    report("ours torch, stop p_true<0.05", lambda: ours(torch_predictor(model), "threshold"),
           model, "002's criterion: runs longer")  # fmt: skip
    if sess is not None:
        counted = CountedOnnx(sess)
        report("ours ONNX Runtime, stop at flip", lambda: ours(counted, "flip"), counted,
               "the served model; faster engine")  # fmt: skip
    report("scipy DE, per candidate", lambda: scipy_one_pixel(model, x, y, p, g, 0.5), model,
           "callback stop")  # fmt: skip
    if why is None:
        report("torchattacks OnePixel", lambda: torchattacks_one_pixel(model, x, y, p, g,
               args.batch), model)  # fmt: skip
    else:
        print(f"{'torchattacks OnePixel':<30} not run: torchattacks unavailable ({why})")
    if why_art is None:
        report("ART PixelAttack", lambda: art_one_pixel(model, x, y, k, g), model,
               "population fixed at 400" if p != 400 else "")  # fmt: skip
    else:
        print(f"{'ART PixelAttack':<30} not run: ART unavailable ({why_art})")
    mine = rows["ours torch, stop at flip"]
    peers = {k_: r for k_, r in rows.items() if not k_.startswith("ours")}
    if peers:
        fastest = min(peers, key=lambda k_: peers[k_]["s"])
        fewest = min(peers, key=lambda k_: peers[k_]["per_succ"])
        print(f"ours (torch, stop at flip): {mine['s']:.2f} s/image vs {peers[fastest]['s']:.2f} "
              f"for the fastest peer ({fastest}; ratio peer/ours {peers[fastest]['s'] / mine['s']:.2f}); "
              f"evaluations per success {mine['per_succ']:.0f} vs {peers[fewest]['per_succ']:.0f} "
              f"(fewest among peers, {fewest}); efficiency {mine['eff']:.2f} "
              f"(target ≥ {1 / 1.2:.2f})")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--population", type=int, default=400)
    ap.add_argument("--generations", type=int, default=10, help="002 caps at 80")
    ap.add_argument("--batch", type=int, default=16,
                    help="rows per model call (ours, peers); on a CPU small batches are faster: "
                    "ours on torch, 16 images, 1.44 / 1.47 / 2.46 / 3.13 s per image at 16 / 32 "
                    "/ 64 / 400 rows")  # fmt: skip
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eps", type=float, default=0.01, help="FGSM/PGD L∞ budget, input units")
    ap.add_argument("--only", choices=["all", "one-pixel", "gradient"], default="all",
                    help="run only the one-pixel or only the FGSM/PGD comparison")  # fmt: skip
    ap.add_argument("--repeats", type=int, default=9,
                    help="interleaved rounds of the FGSM/PGD comparison (median reported)")  # fmt: skip
    ap.add_argument("--model", default="regular",
                    help="store tag or bundle directory; 'regular' or 'mmd': the newest "
                    "morphology bundle of that recipe")  # fmt: skip
    ap.add_argument(
        "--pick",
        choices=["least-confident", "balanced"],
        default="least-confident",
        help="which canaries: lowest true-class probability, or class-balanced",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.getLogger("art").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    print(f"# .venv/bin/python bench/attacks.py {' '.join(argv or sys.argv[1:])}".rstrip())
    net, sess, x, y, what = setup(args.model, args.images, args.pick)
    k = int(net.num_outputs)
    model = Counted(net).eval()
    n = len(x)
    print(f"# torch {torch.__version__}, {args.threads} threads, {platform.processor() or 'cpu'}")
    print(f"# model: {what}")
    print(f"# images {list(x.shape)}, classes {np.bincount(y, minlength=k).tolist()}, "
          f"input range [0, 1]")  # fmt: skip

    print(f"# load average before the run: {os.getloadavg()[0]:.2f} (other processes share "
          "the cores; timings are only comparable within one run)")  # fmt: skip
    engines = {"torch": torch_predictor(net)}
    if sess is not None:
        engines["onnx"] = onnx_predictor(sess)
    sizes = sorted({1, 16, 64, 256, args.batch})
    print("raw model, ms per image at batch " + " / ".join(map(str, sizes)) + ": " + "; ".join(
        f"{eng} " + " / ".join(f"{1e3 * raw_seconds_per_row(fn, x, b):.2f}" for b in sizes)
        for eng, fn in engines.items()))  # fmt: skip

    why, why_art = _peer("torchattacks"), _peer("art")
    if args.only in ("all", "one-pixel"):
        _one_pixel_section(args, net, sess, model, x, y, k, why, why_art)
    if args.only == "one-pixel":
        return 0

    eps, alpha = args.eps, args.eps / 10
    print(f"\n## FGSM and PGD (L∞), untargeted: ε = {eps:g}, PGD 10 steps of α = {alpha:g}, "
          f"no random start, {n} images, {args.repeats} interleaved rounds")  # fmt: skip
    print(f"{'attack':<30} {'median':>8} {'success':>8} {'fastest':>8} {'slowest':>8}  "
          "(s/image)")  # fmt: skip
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    grad: dict[str, Callable[[], np.ndarray]] = {
        "ours FGSM": lambda: fgsm(net, xt, yt, eps, per_sample_cross_entropy,
                                  bounds=(0.0, 1.0)).numpy(),
        "ours PGD": lambda: pgd(net, xt, yt, eps, alpha, 10, per_sample_cross_entropy,
                                bounds=(0.0, 1.0)).numpy(),
    }  # fmt: skip
    if why is None:
        import torchattacks

        grad["torchattacks FGSM"] = lambda: torchattacks.FGSM(net, eps=eps)(xt, yt).numpy()
        grad["torchattacks PGD"] = lambda: torchattacks.PGD(
            net, eps=eps, alpha=alpha, steps=10, random_start=False)(xt, yt).numpy()  # fmt: skip
    if why_art is None:
        from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent

        clf = _art_classifier(net, x, k)
        grad["ART FGSM"] = lambda: FastGradientMethod(clf, norm=np.inf, eps=eps,
                                                      batch_size=n).generate(x, y)  # fmt: skip
        grad["ART PGD"] = lambda: ProjectedGradientDescent(
            clf, norm=np.inf, eps=eps, eps_step=alpha, max_iter=10, num_random_init=0,
            batch_size=n, verbose=False).generate(x, y)  # fmt: skip
    # Interleaved rounds (each round runs every attack once, in a rotated order), so a drift of
    # the machine's speed during the run falls on all attacks alike; medians and ranges printed.
    times: dict[str, list[float]] = {name: [] for name in grad}
    advs: dict[str, np.ndarray] = {}
    order = list(grad)
    for r in range(args.repeats):
        for name in order[r % len(order) :] + order[: r % len(order)]:
            t0 = time.perf_counter()
            advs[name] = np.asarray(grad[name](), dtype=np.float32)
            times[name].append(time.perf_counter() - t0)
    med = {name: float(np.median(t)) / n for name, t in times.items()}
    for name in grad:
        linf = float(np.abs(advs[name] - x).max())
        note = "" if linf <= eps * (1 + 1e-4) else f"‖δ‖∞ = {linf:.4g} > ε!"
        lo, hi = min(times[name]) / n, max(times[name]) / n
        print(f"{name:<30} {med[name]:8.4f} {_flipped(net, advs[name], y).mean():8.0%} "
              f"{lo:8.4f} {hi:8.4f}  {note}")  # fmt: skip
    for kind in ("FGSM", "PGD"):
        peers = {k_: v for k_, v in med.items() if k_.endswith(kind) and not k_.startswith("ours")}
        if peers:
            fastest = min(peers, key=peers.get)
            print(f"ours {kind}: median {med['ours ' + kind]:.4f} s/image vs {peers[fastest]:.4f} "
                  f"for the fastest peer ({fastest}; ratio peer/ours "
                  f"{peers[fastest] / med['ours ' + kind]:.3f})")  # fmt: skip
    for name in ("torchattacks", "ART"):
        if (why if name == "torchattacks" else why_art) is not None:
            print(f"{name + ' FGSM/PGD':<30} not run: {name} unavailable")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
