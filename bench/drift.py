"""Drift-test speed: our permutation MMD² test against the open drift libraries, same data, one run.

Two cases of seeded Gaussian latents, N_ref = N = 5,000, D = 256: **no drift** (a second draw of
the reference distribution) and a **small mean shift** (that draw plus δ in every coordinate), so
that the p-values of all methods can be compared. One Gaussian kernel k = exp(−d²/2σ²) for all,
σ the median heuristic of ``core.mmd`` on the pooled sample (σ² = median d² / 2), given to the
peers explicitly — their defaults differ (frouros: σ = 1, which at D = 256 makes every off-diagonal
kernel value ≈ 0; torchdrift: ℓ = median d including the zero diagonal, ≈ √2 σ).

* **ours** — ``monitors.drift.MMDDrift``: all P permutations from one kernel matrix by a matrix
  product, in float32 (its default, the latents' precision); once with ``bandwidth="median"``
  (its production path, computing σ itself), once more in float64, and once with σ given, like
  the peers;
* **torchdrift** ``KernelMMDDriftDetector`` (benchmark-only, in .venv): re-indexes the n×n kernel
  matrix once per permutation (float32, the latents' dtype);
* **frouros** ``MMD`` + ``PermutationTestDistanceBased`` (benchmark-only, its own venv
  bench/.peers because it pins older numpy/scipy; run in a subprocess on the same data saved to
  .npy): recomputes the three kernel blocks with scipy ``cdist`` per permutation, in a process pool
  of one worker per core.

Estimators: ours and frouros the unbiased MMD² (diagonal left out); torchdrift keeps the diagonal
but divides by n(n−1), i.e. unbiased + 1/(n−1) + 1/(m−1), a constant under permutation, so its
p-values are those of the unbiased statistic. p-values: ours and frouros (method="conservative")
(1 + #{perm ≥ observed}) / (1 + P); torchdrift #{perm > observed} / P (can be 0), shown here
converted to the same form, (P·p + 1) / (P + 1). ± is the Monte-Carlo standard error √(p(1−p)/P).

A peer whose full run is predicted to exceed ``--budget`` seconds per test (linear in P, from a
run without permutations and one with ``--probe``) is not run at full size: its seconds are
extrapolated (marked ~) and its p-value comes from the probe's permutations (column perms).

Online detector: ``monitors.online.OnlineMMDDrift`` — the bootstrap calibration at construction
(timed once) and µs per ``score(x)`` (median over a stream of reference-distribution latents).

Run:  .venv/bin/python bench/drift.py [--n 5000] [--dim 256] [--permutations 200] [--shift 0.008]
      [--threads 2] [--budget 600] [--probe 20] [--online-ref 1000] [--window 32] [--ert 2000]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from core.mmd import median_sigma, squared_distances
from monitors.drift import MMDDrift
from monitors.online import OnlineMMDDrift

ROOT = Path(__file__).parents[1]
PEERS_PYTHON = ROOT / "bench" / ".peers" / "bin" / "python"
INSTALL = {
    "torchdrift": ".venv/bin/pip install --no-deps torchdrift==0.1.0.post1",
    "frouros": "python3.11 -m venv bench/.peers && bench/.peers/bin/pip install frouros==0.9.0",
}
CASES = ("no drift", "shift")
# run by the peers' interpreter (no torch there); prints one JSON line
FROUROS_SCRIPT = """
import json, sys, time
from functools import partial
import numpy as np
import frouros
from frouros.callbacks import PermutationTestDistanceBased
from frouros.detectors.data_drift import MMD
from frouros.utils.kernels import rbf_kernel
ref, x, sigma, perms, seed = sys.argv[1], sys.argv[2], float(sys.argv[3]), *map(int, sys.argv[4:])
x_ref, x = np.load(ref), np.load(x)
cb = PermutationTestDistanceBased if perms else None
cb = cb and [cb(perms, method="conservative", random_state=seed, name="perm")]
t0 = time.perf_counter()
det = MMD(kernel=partial(rbf_kernel, sigma=sigma), callbacks=cb)
det.fit(X=x_ref)
dist, logs = det.compare(X=x)
sec = time.perf_counter() - t0
p = float(logs["perm"]["p_value"]) if perms else None
print(json.dumps({"seconds": sec, "statistic": float(dist.distance), "p_value": p,
                  "version": frouros.__version__}))
"""
Run = Callable[[int], dict]  # permutations -> {"seconds", "statistic", "p_value"}


def make_data(n: int, dim: int, shift: float, seed: int) -> tuple[np.ndarray, dict]:
    """x_ref [n, dim] and the two cases' windows [n, dim], float32 latents."""
    rng = np.random.default_rng(seed)
    x_ref = rng.standard_normal((n, dim)).astype(np.float32)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x_ref, {"no drift": x, "shift": x + np.float32(shift)}


def pooled_sigma(x_ref: np.ndarray, x: np.ndarray) -> float:
    """The median-heuristic σ that ``MMDDrift(bandwidth="median")`` computes (same code)."""
    z = torch.from_numpy(np.concatenate([x_ref, x])).double()
    return float(median_sigma(squared_distances(z, z)))


def ours(x_ref: np.ndarray, x: np.ndarray, bandwidth, seed: int, precision="float32") -> Run:
    def run(perms: int) -> dict:
        t0 = time.perf_counter()
        det = MMDDrift(x_ref, bandwidth=bandwidth, n_permutations=perms, seed=seed,
                       precision=precision)  # fmt: skip
        s = det.score(x)
        return {"seconds": time.perf_counter() - t0, "statistic": s.statistic, "p_value": s.p_value}

    return run


def torchdrift_run(x_ref: np.ndarray, x: np.ndarray, sigma: float, seed: int) -> Run:
    from torchdrift.detectors.mmd import GaussianKernel, KernelMMDDriftDetector

    r, t = torch.from_numpy(x_ref), torch.from_numpy(x)

    def run(perms: int) -> dict:
        torch.manual_seed(seed)  # its permutations come from the global generator
        t0 = time.perf_counter()
        det = KernelMMDDriftDetector(n_perm=perms, kernel=GaussianKernel(lengthscale=sigma))
        det.fit(r)
        stat, p = det.predict_shift_from_features(det.base_outputs, t, True, perms > 0)
        sec = time.perf_counter() - t0
        if p is not None:  # #{>}/P, as ours: (1 + #{≥}) / (1 + P)
            p = (perms * float(p) + 1.0) / (perms + 1.0)
        return {"seconds": sec, "statistic": float(stat), "p_value": p}

    return run


def frouros_run(paths: tuple[Path, Path], sigma: float, seed: int, python: Path) -> Run:
    def run(perms: int) -> dict:
        cmd = [str(python), "-c", FROUROS_SCRIPT, *map(str, paths), repr(sigma), str(perms)]
        out = subprocess.run([*cmd, str(seed)], capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(f"frouros run failed: {out.stderr.strip()[-2000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    return run


def full_or_extrapolated(run: Run, perms: int, probe: int, budget: float) -> dict:
    """The run at ``perms`` permutations if predicted within ``budget`` s, else the probe's
    p-value and the time extrapolated linearly from 0 and ``probe`` permutations."""
    t0 = run(0)["seconds"]
    r = run(probe)
    per = max(r["seconds"] - t0, 0.0) / probe
    predicted = r["seconds"] + (perms - probe) * per
    if predicted <= budget:
        r = run(perms)
        return {**r, "perms_run": perms, "extrapolated": False, "ms_per_permutation": 1e3 * per}
    return {**r, "seconds": predicted, "perms_run": probe, "extrapolated": True,
            "measured_seconds_at_probe": r["seconds"], "ms_per_permutation": 1e3 * per}  # fmt: skip


def peer_status(args) -> dict[str, str | None]:
    """None for an installed peer, else why not."""
    status: dict[str, str | None] = {}
    try:
        import torchdrift.detectors.mmd  # noqa: F401

        status["torchdrift"] = None
    except Exception as e:  # ImportError, or a broken install
        status["torchdrift"] = f"{type(e).__name__}: {e}"
    py = Path(args.peers_python)
    if not py.exists():
        status["frouros"] = f"{py} not found"
    else:
        chk = subprocess.run([str(py), "-c", "import frouros"], capture_output=True, text=True)
        status["frouros"] = None if chk.returncode == 0 else chk.stderr.strip().splitlines()[-1]
    return status


def bench_online(args) -> dict:
    rng = np.random.default_rng(args.seed + 1)
    x_ref = rng.standard_normal((args.online_ref, args.dim))
    t0 = time.perf_counter()
    det = OnlineMMDDrift(x_ref, window=args.window, ert=args.ert, seed=args.seed)
    calib = time.perf_counter() - t0
    stream = rng.standard_normal((args.stream, args.dim))
    us, alarms = np.empty(len(stream)), 0
    for i, z in enumerate(stream):
        t = time.perf_counter_ns()
        s = det.score(z)
        us[i] = (time.perf_counter_ns() - t) / 1e3
        alarms += s.is_drift
    return {"n_ref": args.online_ref, "dim": args.dim, "window": args.window, "ert": args.ert,
            "n_bootstraps": 20 * args.ert, "calibration_seconds": calib,
            "latents": len(stream), "us_per_latent_median": float(np.median(us)),
            "us_per_latent_p90": float(np.percentile(us, 90)), "alarms": int(alarms)}  # fmt: skip


def _p(r: dict) -> str:
    p, n = r["p_value"], r["perms_run"]
    return f"{p:.3f}±{math.sqrt(p * (1 - p) / n):.3f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=5000, help="N_ref = N")
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--permutations", type=int, default=200)
    ap.add_argument("--shift", type=float, default=0.008, help="mean shift per coordinate")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budget", type=float, default=600.0, help="max peer seconds per test")
    ap.add_argument("--probe", type=int, default=20, help="permutations of a peer's probe run")
    ap.add_argument("--peers-python", default=str(PEERS_PYTHON), help="frouros' interpreter")
    ap.add_argument("--online-ref", type=int, default=1000)
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--ert", type=int, default=2000)
    ap.add_argument("--stream", type=int, default=2000, help="latents scored by the online test")
    ap.add_argument("--json", default=str(ROOT / "out" / "bench" / "drift.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()[0]
    command = " ".join([".venv/bin/python", "bench/drift.py", *(argv or sys.argv[1:])])
    print(f"# {command}")
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs "
          f"({platform.processor() or 'cpu'}), load average {load0:.1f} at start; "
          f"N_ref = N = {args.n}, D = {args.dim}, P = {args.permutations}, "
          f"shift δ = {args.shift} per coordinate, seed {args.seed}")  # fmt: skip
    status = peer_status(args)
    for peer, why in status.items():
        if why:
            print(f"# {peer} not installed ({why}); install it with: {INSTALL[peer]}")
    x_ref, xs = make_data(args.n, args.dim, args.shift, args.seed)
    sigma = {case: pooled_sigma(x_ref, x) for case, x in xs.items()}
    print("# σ (median heuristic of the pooled sample): "
          + ", ".join(f"{c} {s:.4f}" for c, s in sigma.items()))  # fmt: skip
    P, rows = args.permutations, {}
    with tempfile.TemporaryDirectory(prefix="skyguard-bench-drift-") as tmp:
        for case, x in xs.items():
            paths = (Path(tmp) / "x_ref.npy", Path(tmp) / f"x_{case.replace(' ', '_')}.npy")
            np.save(paths[0], x_ref)
            np.save(paths[1], x)
            med = ours(x_ref, x, "median", args.seed)(P)
            med64 = ours(x_ref, x, "median", args.seed, "float64")(P)
            given = ours(x_ref, x, [sigma[case]], args.seed)
            one, full = given(1), given(P)
            per = 1e3 * max(full["seconds"] - one["seconds"], 0.0) / (P - 1)
            runs = {
                "ours (median)": {**med, "perms_run": P, "extrapolated": False},
                "ours (float64)": {**med64, "perms_run": P, "extrapolated": False},
                "ours (σ given)": {**full, "perms_run": P, "extrapolated": False,
                                   "ms_per_permutation": per},
            }  # fmt: skip
            if not status["torchdrift"]:
                td = torchdrift_run(x_ref, x, sigma[case], args.seed)
                runs["torchdrift"] = full_or_extrapolated(td, P, args.probe, args.budget)
            if not status["frouros"]:
                fr = frouros_run(paths, sigma[case], args.seed, Path(args.peers_python))
                runs["frouros"] = full_or_extrapolated(fr, P, args.probe, args.budget)
            for name, r in runs.items():
                rows.setdefault(name, {})[case] = r
            done = (f"{k} {'~' * r['extrapolated']}{r['seconds']:.1f} s" for k, r in runs.items())
            print(f"# {case}: " + ", ".join(done), flush=True)
    label = {"ours (median)": "ours (median)", "ours (float64)": "ours (median, float64)",
             "ours (σ given)": "ours (σ given)"}  # fmt: skip
    if "torchdrift" in rows:
        label["torchdrift"] = f"torchdrift {metadata.version('torchdrift')}"
    if "frouros" in rows:
        label["frouros"] = f"frouros {rows['frouros']['shift']['version']}"
    base = sum(rows["ours (median)"][c]["seconds"] for c in CASES)
    print(
        f"\npermutation MMD² test, seconds per test (no drift / shift); P = {P} unless perms says"
    )
    print(f"{'method':<22} {'N_ref':>5} {'N':>5} {'D':>4} {'perms':>5} {'seconds':>15} "
          f"{'ms/perm':>7} {'speed-up':>8} {'p no drift':>12} {'p shift':>12}")  # fmt: skip
    for name, r in rows.items():
        sec = " / ".join(("~" if r[c]["extrapolated"] else "") + f"{r[c]['seconds']:.1f}"
                         for c in CASES)  # fmt: skip
        mspp = r[CASES[0]].get("ms_per_permutation")
        slow = sum(r[c]["seconds"] for c in CASES) / base
        print(f"{label[name]:<22} {args.n:>5} {args.n:>5} {args.dim:>4} "
              f"{r[CASES[0]]['perms_run']:>5} {sec:>15} "
              f"{'' if mspp is None else f'{mspp:.0f}':>7} {slow:>8.1f} "
              f"{_p(r['no drift']):>12} {_p(r['shift']):>12}")  # fmt: skip
    print("~ extrapolated linearly in P (not measured); speed-up = its seconds / ours (median)'s; "
          "ms/perm = marginal cost of one permutation")  # fmt: skip
    for name, r in rows.items():
        if any(r[c]["extrapolated"] for c in CASES):
            measured = " / ".join(f"{r[c].get('measured_seconds_at_probe', r[c]['seconds']):.1f}"
                                  for c in CASES)  # fmt: skip
            print(f"~ {label[name]}: measured {measured} s with {r[CASES[0]]['perms_run']} "
                  "permutations (p-values from those)")  # fmt: skip
    offset = 1.0 / (args.n - 1) * 2
    print("\nobserved statistic (no drift / shift); torchdrift's minus its diagonal term "
          f"2/(n−1) = {offset:.3e}")  # fmt: skip
    for name, r in rows.items():
        off = offset if name == "torchdrift" else 0.0
        print(f"{label[name]:<22} "
              + " / ".join(f"{r[c]['statistic'] - off:+.4e}" for c in CASES))  # fmt: skip
    online = bench_online(args)
    print(
        f"\nonline detector (OnlineMMDDrift): N_ref {online['n_ref']}, D {online['dim']}, "
        f"window {online['window']}, ERT {online['ert']}, {online['n_bootstraps']} bootstraps"
    )
    print(f"calibration {online['calibration_seconds']:.1f} s; score(x): "
          f"{online['us_per_latent_median']:.0f} µs per latent (median of {online['latents']}, "
          f"p90 {online['us_per_latent_p90']:.0f} µs); "
          f"{online['alarms']} alarm(s) on reference-distribution latents")  # fmt: skip
    load1 = os.getloadavg()[0]
    print(f"# load average {load1:.1f} at end (other processes share these {os.cpu_count()} CPUs)")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "command": command,
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__, "load_average": [load0, load1]},
        "config": {"n_ref": args.n, "n": args.n, "dim": args.dim, "permutations": P,
                   "shift": args.shift, "seed": args.seed, "sigma": sigma},
        "peers_missing": {k: INSTALL[k] for k, v in status.items() if v},
        "tests": rows, "online": online,
    }, indent=1))  # fmt: skip
    print(f"# figures: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
