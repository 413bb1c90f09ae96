"""Load and backpressure: the real server under 0.5×, 1×, 2× and 4× its saturation (issue 20 §2).

Starts what ``make serve`` starts — ``python -m cli.bootstrap`` (the default quick bundles in
``models/bentoml`` if that store has none), then ``bentoml serve service.service:Skyguard`` — on
a free port, with the server's own settings (``SKYGUARD_*`` variables given to this script pass
through; canary rounds off unless ``--canaries``: a round is minutes of one core landing at a
random point of a run). Requests are multipart FITS uploads of ``--per-request`` cutouts of the
task's test split, encoded once beforehand.

1. **Saturation**: a closed-loop client at concurrency 1, 2, 4, … (each for ``--step-s``) until
   the throughput of answered cutouts stops growing by 5 %; the best is the saturation
   throughput, in requests/s.
2. **Levels**: an open-loop client (arrivals evenly spaced at ``m`` × the saturation rate for
   ``--level-s`` each, at most ``--max-outstanding`` requests in flight; an arrival past that is
   counted ``client_skipped``, not sent). Per level: p50 / p99 latency of the answered (200)
   requests, the shed fraction (503), throughput, the p50 / p99 / max latency of the 503s, other
   statuses, and the RSS of every server process (gateway, predictor, monitor; /proc) before and
   after.
3. ``--soak-min M``: M minutes at 1× after the levels (or alone with ``--levels``), RSS sampled
   every ``--sample-s``; growth of each process's RSS from the end of warm-up (the first
   ``--warmup-min`` minutes) to the mean of the last minute (target ≤ 5 %).

The client runs on the same machine as the server and takes CPU from it (printed).
Results go to ``bench/results/load-<label>.json`` (summaries, no per-request rows).

Run:  .venv/bin/python bench/load.py [--task morphology] [--per-request 32] [--levels 0.5 1 2 4]
      [--level-s 30] [--soak-min 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).parents[1]
SERVICES = {"skyguard": "gateway", "skyguard-predictor": "predictor",
            "skyguard-monitor": "monitor"}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the server's processes ---------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _role(pid: int) -> str | None:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    cmd = [c.decode(errors="replace") for c in cmd]
    if "--service-name" in cmd:
        return SERVICES.get(
            cmd[cmd.index("--service-name") + 1], cmd[cmd.index("--service-name") + 1]
        )
    if "--worker-id" in cmd:  # BentoML's gateway worker: the root service, no --service-name
        return "gateway"
    return None


def rss_mib(server: int) -> dict[str, float]:
    """RSS [MiB] of each worker process of the server (from /proc/<pid>/status), by role; the
    arbiter (``bentoml serve`` itself) as ``arbiter``."""
    out: dict[str, float] = {}
    for pid in [server, *_children(server)]:
        role = "arbiter" if pid == server else _role(pid)
        if role is None:
            continue
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        kb = next(int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS:"))
        out[role] = out.get(role, 0.0) + kb / 1024
    return out


def cpu_s(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(f[11]) + int(f[12])) / tick
        except (OSError, IndexError):
            pass
    return total


def start_server(env: dict, log: Path) -> tuple[subprocess.Popen, str]:
    bentoml = Path(sys.executable).parent / "bentoml"
    port = _free_port()
    with open(log, "w") as f:
        proc = subprocess.Popen(
            [str(bentoml), "serve", "service.service:Skyguard", "--host", "127.0.0.1",
             "--port", str(port)],
            cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    import httpx

    for _ in range(400):
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; log: {log}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"server not ready; log: {log}")


def stop_server(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, 15)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)


def server_env(args) -> dict:
    env = {**os.environ, "BENTOML_HOME": os.environ.get("BENTOML_HOME", str(ROOT / "models" / "bentoml")),
           "BENTOML_DO_NOT_TRACK": "true"}  # fmt: skip
    if not args.canaries:
        env["SKYGUARD_CANARY_INTERVAL_S"] = "0"
    return env


def bodies(task: str, per: int, n: int = 16) -> list[tuple[str, bytes]]:
    """``n`` multipart bodies of ``per`` random test-split FITS cutouts of ``task``."""
    import httpx

    from training.cutouts import write_cutouts

    domain = {"morphology": "y10", "lsbg": "des", "photoz": "deep"}[task]
    with tempfile.TemporaryDirectory(prefix="skyguard-load-") as tmp:
        paths = write_cutouts(ROOT / "data" / "train" / task / f"{domain}.h5", Path(tmp),
                              n=None, split="test")  # fmt: skip
        files = [p.read_bytes() for p in paths]
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        parts = [("cutouts", (f"c{k}.fits", files[k], "application/fits"))
                 for k in rng.choice(len(files), per)]  # fmt: skip
        req = httpx.Request("POST", f"http://x/{task}", files=parts)
        out.append((req.headers["content-type"], req.read()))
    return out


# --- the client ------------------------------------------------------------------------------------
class Tally:
    def __init__(self) -> None:
        self.ok: list[float] = []  # latency [s] of 200s that answered every cutout
        self.shed: list[float] = []  # latency [s] of 503s
        self.retry_after: list[int] = []
        self.other: dict[str, int] = {}
        self.shed_bodies_ok = True  # every 503 had {"error": ...} and Retry-After
        self.skipped = 0
        self.t0 = self.t1 = time.perf_counter()

    def summary(self, per: int) -> dict:
        wall = max(self.t1 - self.t0, 1e-9)
        sent = len(self.ok) + len(self.shed) + sum(self.other.values())

        def pct(x, q):
            return round(1e3 * float(np.percentile(x, q)), 1) if x else None

        return {
            "sent": sent,
            "answered": len(self.ok),
            "shed": len(self.shed),
            "other": self.other,
            "client_skipped": self.skipped,
            "shed_fraction": round(len(self.shed) / sent, 4) if sent else None,
            "answered_cutouts_per_s": round(len(self.ok) * per / wall, 1),
            "answered_requests_per_s": round(len(self.ok) / wall, 2),
            "p50_ms": pct(self.ok, 50),
            "p99_ms": pct(self.ok, 99),
            "max_ms": pct(self.ok, 100),
            "shed_p50_ms": pct(self.shed, 50),
            "shed_p99_ms": pct(self.shed, 99),
            "shed_max_ms": pct(self.shed, 100),
            "retry_after_s": sorted(set(self.retry_after)),
            "shed_bodies_ok": self.shed_bodies_ok,
            "wall_s": round(wall, 1),
        }


async def _post(client, url, task, body, per, tally: Tally) -> int:
    ctype, data = body
    t0 = time.perf_counter()
    try:
        r = await client.post(f"{url}/{task}", content=data, headers={"content-type": ctype})
    except Exception as e:  # a transport error is a failure too
        tally.other[type(e).__name__] = tally.other.get(type(e).__name__, 0) + 1
        return 0
    dt = time.perf_counter() - t0
    tally.t1 = time.perf_counter()
    if r.status_code == 200 and r.json().get("n_answered") == per:
        tally.ok.append(dt)
    elif r.status_code == 503 and "queue is full" in r.text:  # shed by the admission bound
        tally.shed.append(dt)
        try:
            tally.retry_after.append(int(r.headers["retry-after"]))
            assert isinstance(r.json()["error"], str)
        except (KeyError, ValueError, AssertionError):
            tally.shed_bodies_ok = False
    else:  # a 503 for another reason (the predictor's batcher, a predictor down) counts here
        key = str(r.status_code)
        tally.other[key] = tally.other.get(key, 0) + 1
    return r.status_code


#: send ``Expect: 100-continue`` and the body only when the server asks for it (``--expect-continue``)
EXPECT_CONTINUE = False


class _Answer:
    """The parts of an HTTP answer ``_post`` reads (as httpx's Response has them)."""

    def __init__(self, status: int, body: bytes, headers) -> None:
        self.status_code, self.content, self.headers = status, body, headers
        self.text = body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.content)


class _ExpectContinueClient:
    """aiohttp with ``Expect: 100-continue`` (httpx has no such mode): a request the server
    refuses on its headers is answered without its body crossing the connection, as curl
    behaves for bodies above 1 MiB."""

    def __init__(self, n: int) -> None:
        self.n = n

    async def __aenter__(self):
        import aiohttp

        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.n), timeout=aiohttp.ClientTimeout(total=300)
        )
        return self

    async def __aexit__(self, *exc) -> None:
        await self.session.close()

    async def post(self, url: str, content: bytes, headers: dict) -> _Answer:
        async with self.session.post(url, data=content, headers=headers, expect100=True) as r:
            return _Answer(r.status, await r.read(), r.headers)


def _client(n: int):
    import httpx

    if EXPECT_CONTINUE:
        return _ExpectContinueClient(n)
    return httpx.AsyncClient(
        timeout=300, limits=httpx.Limits(max_connections=n, max_keepalive_connections=n)
    )


async def closed_loop(url, task, bodies_, per, conc, seconds) -> Tally:
    tally = Tally()
    stop = time.perf_counter() + seconds

    async def worker(k: int) -> None:
        i = k
        while time.perf_counter() < stop:
            status = await _post(client, url, task, bodies_[i % len(bodies_)], per, tally)
            i += conc
            if status != 200:
                await asyncio.sleep(0.05)  # shed: do not spin on the shared cores

    async with _client(conc) as client:
        tally.t0 = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(conc)))
    return tally


async def open_loop(url, task, bodies_, per, rate, seconds, most) -> Tally:
    """Arrivals every 1/rate s for ``seconds``; at most ``most`` in flight."""
    tally = Tally()
    pending: set[asyncio.Task] = set()
    async with _client(most) as client:
        t0 = tally.t0 = time.perf_counter()
        k = 0
        while (due := t0 + k / rate) < t0 + seconds:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            if len(pending) >= most:
                tally.skipped += 1
            else:
                job = asyncio.ensure_future(
                    _post(client, url, task, bodies_[k % len(bodies_)], per, tally)
                )
                pending.add(job)
                job.add_done_callback(pending.discard)
            k += 1
        if pending:
            await asyncio.gather(*pending)
    return tally


def saturation(url, task, bodies_, per, step_s) -> tuple[float, list[dict]]:
    """Best answered requests/s of a closed-loop client at rising concurrency."""
    steps, best, conc = [], 0.0, 1
    while conc <= 64:
        s = asyncio.run(closed_loop(url, task, bodies_, per, conc, step_s)).summary(per)
        s["concurrency"] = conc
        steps.append(s)
        print(f"  concurrency {conc:>3}: {s['answered_cutouts_per_s']:7.1f} cutouts/s, "
              f"p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms, shed {s['shed']}", flush=True)  # fmt: skip
        rate = s["answered_requests_per_s"]
        if rate < 1.05 * best and conc >= 4:
            break
        best = max(best, rate)
        conc *= 2
    return best, steps


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="morphology", choices=("morphology", "lsbg", "photoz"))
    ap.add_argument("--per-request", type=int, default=32)
    ap.add_argument("--levels", type=float, nargs="*", default=[0.5, 1, 2, 4])
    ap.add_argument("--level-s", type=float, default=30.0)
    ap.add_argument("--step-s", type=float, default=8.0)
    ap.add_argument("--max-outstanding", type=int, default=512)
    ap.add_argument("--soak-min", type=float, default=0.0)
    ap.add_argument("--warmup-min", type=float, default=2.0)
    ap.add_argument("--sample-s", type=float, default=10.0)
    ap.add_argument("--canaries", action="store_true", help="keep the server's canary schedule")
    ap.add_argument("--expect-continue", action="store_true",
                    help="clients send Expect: 100-continue (aiohttp), the body only when asked")  # fmt: skip
    ap.add_argument("--label", default=None, help="results file bench/results/load-<label>.json")
    args = ap.parse_args(argv)
    command = f".venv/bin/python bench/load.py {' '.join(argv if argv is not None else sys.argv[1:])}".strip()
    print(f"# {command}")
    env = server_env(args)
    subprocess.run([sys.executable, "-m", "cli.bootstrap"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    global EXPECT_CONTINUE
    EXPECT_CONTINUE = args.expect_continue
    bodies_ = bodies(args.task, args.per_request)
    log = Path(tempfile.gettempdir()) / f"skyguard-bench-load-{os.getpid()}.log"
    settings = {k: v for k, v in env.items() if k.startswith("SKYGUARD_")}
    result: dict = {
        "command": command, "task": args.task, "per_request": args.per_request,
        "expect_continue": args.expect_continue,
        "body_bytes": len(bodies_[0][1]), "cores": os.cpu_count(), "host": platform.node(),
        "load_average_at_start": os.getloadavg(), "settings": settings, "server_log": str(log),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }  # fmt: skip
    proc, url = start_server(env, log)
    try:
        result["rss_mib_at_start"] = rss_mib(proc.pid)
        print(f"# server {url}; RSS MiB at start {result['rss_mib_at_start']}", flush=True)
        print("saturation (closed loop):", flush=True)
        sat, steps = saturation(url, args.task, bodies_, args.per_request, args.step_s)
        result["saturation"] = {"requests_per_s": sat, "cutouts_per_s": sat * args.per_request,
                                "steps": steps}  # fmt: skip
        print(
            f"saturation: {sat:.2f} requests/s = {sat * args.per_request:.0f} cutouts/s", flush=True
        )
        levels = []
        me = os.getpid()
        for m in args.levels:
            time.sleep(3)  # the queue drains between levels
            before, cpu0 = rss_mib(proc.pid), cpu_s([me])
            t = asyncio.run(open_loop(url, args.task, bodies_, args.per_request, m * sat,
                                      args.level_s, args.max_outstanding))  # fmt: skip
            s = {"multiple": m, "offered_requests_per_s": round(m * sat, 2), **t.summary(args.per_request),
                 "client_cpu_s": round(cpu_s([me]) - cpu0, 1),
                 "rss_mib_before": before, "rss_mib_after": rss_mib(proc.pid)}  # fmt: skip
            levels.append(s)
            print(f"{m:>4}× ({s['offered_requests_per_s']} req/s offered): answered {s['answered']}"
                  f" p50 {s['p50_ms']} ms p99 {s['p99_ms']} ms, shed {s['shed_fraction']}"
                  f" (503 p50 {s['shed_p50_ms']} / p99 {s['shed_p99_ms']} / max {s['shed_max_ms']} ms),"
                  f" {s['answered_cutouts_per_s']} cutouts/s, other {s['other']},"
                  f" skipped {s['client_skipped']}; RSS after {s['rss_mib_after']}", flush=True)  # fmt: skip
        result["levels"] = levels
        if args.soak_min:
            result["soak"] = soak(url, proc.pid, bodies_, sat, args)
        result["rss_mib_at_end"] = rss_mib(proc.pid)
        result["metrics"] = {
            line.split(" ")[0]: float(line.split(" ")[-1])
            for line in __import__("httpx").get(f"{url}/metrics", timeout=30).text.splitlines()
            if line.startswith(("skyguard_shed_", "skyguard_latents_dropped_total",
                                "skyguard_latents_sent_total", "skyguard_queue_"))
        }  # fmt: skip
    finally:
        stop_server(proc)
    label = args.label or ("soak" if args.soak_min and not args.levels else "levels")
    label += "-expect-continue" if args.expect_continue and not args.label else ""
    out = ROOT / "bench" / "results" / f"load-{label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"# wrote {out.relative_to(ROOT)}; reproduce: {command}")
    return 0


def soak(url: str, server: int, bodies_, sat: float, args) -> dict:
    """``--soak-min`` minutes at 1× saturation with RSS samples every ``--sample-s``."""
    samples: list[dict] = []

    async def run() -> Tally:
        async def sampler() -> None:
            t0 = time.perf_counter()
            while True:
                samples.append({"t_s": round(time.perf_counter() - t0, 1), **rss_mib(server)})
                await asyncio.sleep(args.sample_s)

        job = asyncio.ensure_future(sampler())
        try:
            return await open_loop(url, args.task, bodies_, args.per_request, sat,
                                   60 * args.soak_min, args.max_outstanding)  # fmt: skip
        finally:
            job.cancel()

    tally = asyncio.run(run())
    samples.append({"t_s": round(60 * args.soak_min, 1), **rss_mib(server)})
    warm = [s for s in samples if s["t_s"] <= 60 * args.warmup_min]
    last = [s for s in samples if s["t_s"] >= 60 * (args.soak_min - 1)]
    growth = {}
    for role in SERVICES.values():
        if warm and last and role in warm[-1]:
            base = warm[-1][role]
            end = float(np.mean([s[role] for s in last if role in s]))
            growth[role] = {"after_warmup_mib": round(base, 1), "last_minute_mib": round(end, 1),
                            "growth_pct": round(100 * (end - base) / base, 2)}  # fmt: skip
    out = {"minutes": args.soak_min, "warmup_min": args.warmup_min, **tally.summary(args.per_request),
           "growth": growth, "samples": samples}  # fmt: skip
    print(f"soak {args.soak_min} min at 1×: answered {out['answered']}, p99 {out['p99_ms']} ms, "
          f"shed {out['shed_fraction']}; RSS growth after warm-up: "
          + ", ".join(f"{r} {g['after_warmup_mib']} → {g['last_minute_mib']} MiB ({g['growth_pct']:+.1f} %)"
                      for r, g in growth.items()), flush=True)  # fmt: skip
    return out


if __name__ == "__main__":
    raise SystemExit(main())
