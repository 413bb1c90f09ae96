"""Memory of every server process with the three default bundles, through load and canary rounds
(issue 20 §3).

Starts what ``make serve`` starts (``python -m cli.bootstrap``, then ``bentoml serve
service.service:Skyguard``; the default quick bundles of ``models/bentoml``), with the first
canary round ``--delay-s`` after start and the next ones ``--gap-s`` apart (``--rounds``), sends
``--requests`` FITS requests of ``--per-request`` cutouts to each task (latents fill the
monitor's windows), waits for the rounds, then idles ``--gap-s`` less 5 s (before the next round would start). Reported: the RSS of the
gateway, predictor and monitor (``/proc/<pid>/status``) at start, after the load, after each
round and at the end; the monitor's breakdown from ``/proc/<pid>/smaps`` (file-backed: shared
libraries by name; anonymous: the heap and other private memory) and, from its log, glibc's own
heap figures after each round (in use, free but kept, mmapped).

``--compare`` runs it twice: first with glibc's defaults in the monitor
(``SKYGUARD_MONITOR_ARENAS=0 SKYGUARD_MONITOR_TRIM_S=0``: what the monitor did before it limited
its arenas and trimmed its heap), then with the service's defaults.

Results: ``bench/results/memory.json`` (``--out``). ``--glibc-defaults``: only the first of the
two runs (the two can then run side by side, writing different ``--out`` files).

Run:  .venv/bin/python bench/memory.py [--rounds 2] [--requests 40] [--compare]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from load import ROOT, _children, _role, bodies, rss_mib, start_server, stop_server  # noqa: E402

TASKS = ("morphology", "lsbg", "photoz")


def smaps(pid: int, top: int = 8) -> dict:
    """RSS [MiB] of a process by mapping: anonymous ([heap], [stack], unnamed) and file-backed
    (largest ``top`` files by name, the rest summed)."""
    by: dict[str, float] = {}
    name = None
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            path = head[5] if len(head) > 5 else ""
            name = ("anonymous" if not path or path.startswith("[anon") else
                    path if path.startswith("[") else Path(path).name)  # fmt: skip
        elif head[0] == "Rss:" and name is not None:
            by[name] = by.get(name, 0.0) + int(head[1]) / 1024
    anon = {k: round(v, 1) for k, v in by.items() if k == "anonymous" or k.startswith("[")}
    files = sorted(((v, k) for k, v in by.items() if k not in anon), reverse=True)
    return {
        "anonymous_and_heap": anon,
        "files_top": {k: round(v, 1) for v, k in files[:top]},
        "files_rest": round(sum(v for v, _ in files[top:]), 1),
        "total": round(sum(by.values()), 1),
    }


def _runs(url: str) -> float:
    import httpx

    text = httpx.get(f"{url}/metrics", timeout=30).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("skyguard_canary_runs_total{"))  # fmt: skip


async def _load(url: str, per: int, n: int) -> dict:
    import httpx

    statuses: dict[str, int] = {}
    async with httpx.AsyncClient(timeout=300) as client:
        for task in TASKS:
            bs = bodies(task, per, 4)
            sem = asyncio.Semaphore(4)

            async def one(k: int, task=task, bs=bs, sem=sem) -> None:
                async with sem:
                    ctype, data = bs[k % len(bs)]
                    r = await client.post(f"{url}/{task}", content=data,
                                          headers={"content-type": ctype})  # fmt: skip
                    statuses[str(r.status_code)] = statuses.get(str(r.status_code), 0) + 1

            await asyncio.gather(*(one(k) for k in range(n)))
    return statuses


def run(args, env_extra: dict, label: str) -> dict:
    env = {**os.environ, "BENTOML_HOME": os.environ.get("BENTOML_HOME", str(ROOT / "models" / "bentoml")),
           "BENTOML_DO_NOT_TRACK": "true", "SKYGUARD_CANARY_DELAY_S": str(args.delay_s),
           "SKYGUARD_CANARY_INTERVAL_S": str(args.gap_s), **env_extra}  # fmt: skip
    log = Path(tempfile.gettempdir()) / f"skyguard-bench-memory-{label}-{os.getpid()}.log"
    proc, url = start_server(env, log)
    out: dict = {"label": label, "env": {k: v for k, v in env.items() if k.startswith("SKYGUARD_")},
                 "server_log": str(log), "rss_mib": {}}  # fmt: skip
    try:
        t0 = time.perf_counter()
        out["rss_mib"]["start"] = rss_mib(proc.pid)
        out["load_statuses"] = asyncio.run(_load(url, args.per_request, args.requests))
        out["rss_mib"]["after_load"] = rss_mib(proc.pid)
        per_round = None
        for r in range(1, args.rounds + 1):
            while True:  # a round: as many runs as the first round had, once the first is done
                lines = [x for x in log.read_text(errors="replace").splitlines()
                         if "skyguard monitor: canary round of" in x]  # fmt: skip
                if len(lines) >= r:
                    break
                time.sleep(2)
            per_round = per_round or int(re.search(r"round of (\d+) runs", lines[0]).group(1))
            out["rss_mib"][f"after_round_{r}"] = rss_mib(proc.pid)
            out.setdefault("monitor_heap_mib", []).append(
                json.loads(lines[r - 1].split("memory MiB ", 1)[1])
            )
            print(f"  [{label}] round {r} done at {time.perf_counter() - t0:.0f} s: RSS "
                  f"{out['rss_mib'][f'after_round_{r}']}; monitor heap "
                  f"{out['monitor_heap_mib'][-1]}", flush=True)  # fmt: skip
        out["canary_runs_per_round"] = per_round
        time.sleep(max(0.0, args.gap_s - 5))
        out["rss_mib"]["end"] = rss_mib(proc.pid)
        monitor = next(p for p in _children(proc.pid) if _role(p) == "monitor")
        out["monitor_smaps_mib"] = smaps(monitor)
        out["wall_s"] = round(time.perf_counter() - t0, 1)
    finally:
        stop_server(proc)
    print(f"[{label}] RSS MiB: " + "; ".join(f"{k} {v}" for k, v in out["rss_mib"].items()))
    print(f"[{label}] monitor at the end by mapping: {out['monitor_smaps_mib']}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--requests", type=int, default=40, help="requests per task")
    ap.add_argument("--per-request", type=int, default=32)
    ap.add_argument("--delay-s", type=float, default=30.0, help="first canary round after start")
    ap.add_argument("--gap-s", type=float, default=75.0,
                    help="between rounds (SKYGUARD_CANARY_INTERVAL_S); the end is read this less 5 s "
                    "after the last round")  # fmt: skip
    ap.add_argument("--compare", action="store_true", help="glibc's defaults first, then ours")
    ap.add_argument(
        "--glibc-defaults",
        action="store_true",
        help="only the run with glibc's defaults in the monitor",
    )
    ap.add_argument("--out", default="bench/results/memory.json")
    args = ap.parse_args(argv)
    command = f".venv/bin/python bench/memory.py {' '.join(argv if argv is not None else sys.argv[1:])}".strip()
    print(f"# {command}", flush=True)
    env = {
        **os.environ,
        "BENTOML_HOME": os.environ.get("BENTOML_HOME", str(ROOT / "models" / "bentoml")),
    }
    subprocess.run([sys.executable, "-m", "cli.bootstrap"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    result = {"command": command, "cores": os.cpu_count(),
              "load_average_at_start": os.getloadavg(),
              "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "runs": []}  # fmt: skip
    if args.compare or args.glibc_defaults:
        result["runs"].append(run(args, {"SKYGUARD_MONITOR_ARENAS": "0", "SKYGUARD_MONITOR_TRIM_S": "0"},
                                  "glibc-defaults"))  # fmt: skip
    if not args.glibc_defaults:
        result["runs"].append(run(args, {}, "service-defaults"))
    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"# wrote {out.relative_to(ROOT)}; reproduce: {command}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
