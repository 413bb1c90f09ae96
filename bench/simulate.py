"""Simulation throughput: cutouts per second per core for each task, and scaling over cores.

Peer: GalSim's own ``drawImage`` of the very same scenes (each component convolved with the band's
PSF and drawn, light maps as ``InterpolatedImage``) — the straightforward way to use GalSim, which
our Fourier renderer (training/simulate/render.py) replaces; the pixel difference between the two
is printed too, so speed is not bought with accuracy.

Figures printed:
  * per task, one core: objects/s and cutouts/s (an object gives one cutout per domain), split
    into rendering + noise and, for morphology, the statmorph Gini–M20 labelling;
  * the GalSim-drawImage peer on the same morphology scenes (one core);
  * scaling: ``generate`` wall time on 1 and on all cores for the same N.

Run:  .venv/bin/python bench/simulate.py [--n 60] [--scaling-n 120]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import galsim
import numpy as np

from training.simulate import TASKS, simulator
from training.simulate.base import noise_rng, truth_rng
from training.simulate.observe import expose, resample
from training.simulate.psf import GSPARAMS, psf
from training.simulate.render import grid_for
from training.simulate.runner import generate


def one_core(task: str, n: int) -> dict:
    sim = simulator(task)
    sim.prepare()
    truths = [sim.draw(truth_rng(0, task, i)) for i in range(n)]
    for t in [sim.draw(truth_rng(1, task, i)) for i in range(50)]:  # warm GalSim's Sérsic tables
        sim.render(t, sim.domains[0])
    t0 = time.perf_counter()
    scenes = []
    for i, t in enumerate(truths):
        cache = {}
        for d in sim.domains:
            if d.optics_key not in cache:
                cache[d.optics_key] = sim.render(t, d)
            img = expose(
                cache[d.optics_key],
                np.asarray(d.exposure),
                d.sky_rate(),
                noise_rng(0, task, i, d.name),
            )
            if d.out_size != d.native_size:
                img = resample(img, d.out_size)
        scenes.append(cache)
    render_s = time.perf_counter() - t0
    out = {"task": task, "n": n, "domains": len(sim.domains), "render_s": render_s}
    annotate = getattr(sim, "annotate", None)
    if annotate is not None:
        t0 = time.perf_counter()
        for t, cache in zip(truths, scenes, strict=True):
            annotate(t, {sim.domains[0].name: next(iter(cache.values()))})
        out["annotate_s"] = time.perf_counter() - t0
    return out


def galsim_peer(n: int) -> dict:
    """Draw the same morphology scenes with GalSim drawImage; time and pixel agreement."""
    sim = simulator("morphology")
    sim.prepare()
    d = sim.domains[0]
    grid = grid_for(d.native_size, d.pixel_scale)
    psfs = [psf(d.survey, b, d.fwhm_scale) for b in d.bands]
    truths = [sim.draw(truth_rng(0, "morphology", i)) for i in range(n)]
    worst = 0.0
    t0 = time.perf_counter()
    images = []
    for t in truths:
        scene = sim.scene(t, d, grid)
        out = np.zeros((len(d.bands), d.native_size, d.native_size))
        for b, p in enumerate(psfs):
            img = galsim.ImageD(d.native_size, d.native_size, scale=d.pixel_scale)
            for c in scene.components:
                prof = c.profile.withFlux(float(c.flux[b])).shift(t["x0"], t["y0"])
                galsim.Convolve(prof, p, gsparams=GSPARAMS).drawImage(image=img, add_to_image=True)
            for m in scene.maps:
                ii = galsim.InterpolatedImage(
                    galsim.ImageD(m.array, scale=grid.map_scale),
                    flux=float(m.flux[b]),
                    use_true_center=False,  # the map's origin is its sample [n, n]
                    gsparams=GSPARAMS,
                ).shift(t["x0"], t["y0"])
                galsim.Convolve(ii, p, gsparams=GSPARAMS).drawImage(image=img, add_to_image=True)
            out[b] = img.array
        images.append(out)
    seconds = time.perf_counter() - t0
    for t, ref in zip(truths, images, strict=True):
        mine = sim.render(t, d)
        worst = max(worst, float(np.abs(mine - ref).max() / ref.max()))
    return {"n": n, "seconds": seconds, "max_abs_diff_over_peak": worst}


def scaling(task: str, n: int) -> dict:
    cores = os.cpu_count() or 1
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        for w in sorted({1, cores}):
            r = generate(simulator(task), n, Path(tmp) / str(w), seed=0, workers=w, progress=False)
            res[w] = r.seconds
    return res


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=150, help="objects per task for the one-core figures")
    ap.add_argument(
        "--scaling-n", type=int, default=120, help="objects per task for the scaling run"
    )
    args = ap.parse_args()
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # "per core" means one core: no multi-threaded BLAS in the one-core runs
    print(
        f"# bench/simulate.py — {os.cpu_count()} cores; command: python bench/simulate.py --n {args.n} "
        f"--scaling-n {args.scaling_n}\n"
    )
    print(
        "| task | domains | objects/s (render+noise) | cutouts/s/core (render+noise) | G–M20 labelling s/object | cutouts/s/core incl. labels |"
    )
    print("|---|---|---|---|---|---|")
    for task in TASKS:
        r = one_core(task, args.n)
        obj_s = r["n"] / r["render_s"]
        ann = r.get("annotate_s")
        incl = r["n"] * r["domains"] / (r["render_s"] + (ann or 0.0))
        print(
            f"| {task} | {r['domains']} | {obj_s:.1f} | {obj_s * r['domains']:.1f} | "
            f"{'' if ann is None else format(ann / r['n'], '.3f')} | {incl:.1f} |"
        )
    peer = galsim_peer(min(args.n, 30))
    print(
        f"\nPeer, GalSim drawImage of the same morphology scenes (Y10, 3 bands, one core): "
        f"{peer['n'] / peer['seconds']:.1f} objects/s; our renderer vs GalSim: max |diff| / peak = "
        f"{peer['max_abs_diff_over_peak']:.2e}"
    )
    print("\nScaling (generate(), wall seconds, all domains written to HDF5):")
    print("| task | N | 1 worker s | all workers s | speed-up |")
    print("|---|---|---|---|---|")
    for task in TASKS:
        s = scaling(task, args.scaling_n)
        one, many = s[min(s)], s[max(s)]
        print(
            f"| {task} | {args.scaling_n} | {one:.1f} | {many:.1f} ({max(s)} workers) | {one / many:.2f}× |"
        )


if __name__ == "__main__":
    main()
