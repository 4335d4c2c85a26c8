#!/usr/bin/env python3
"""Dataset runs: throughput against the ideal, peak memory against the row count, and
flowrun against a hand-written asyncio script (and Prompt flow's ``pf run --data`` when
it is installed), each contender in its own subprocess, every emulator in a process of
its own (so the emulator's CPU and memory are not the contender's).

* **concurrency-bound**: a one-step flow over ``--rows`` rows, ``--concurrency`` requests
  in flight, an emulator with a fixed ``--latency-ms`` and no quota. Ideal:
  ``concurrency / latency``. Contenders: ``flowrun run FLOW --dataset`` (in-process
  ``run_dataset``), a hand-written asyncio + ``openai.AsyncOpenAI`` script (a semaphore of
  the same concurrency, the CSV read as a stream, one results line per row), and
  ``pf run --data`` (``--pf``; its own ideal: ``--pf-workers / latency``).
* **quota-bound**: the same flow and concurrency against an emulator with a quota of
  ``--rpm`` requests per minute (below ``concurrency / latency``), flowrun given the same
  ``--rpm``. Ideal: the quota. The extra requests the emulator saw are 429s.
* **memory**: flowrun over ``--mem-rows`` (small, large) rows against an emulator with no
  latency; peak RSS (``ru_maxrss``) of each run's process. Target: within 50 MB.

Target: throughput >= 0.95 of the ideal in both throughput runs. The hand-written
script's ratio shows what the testbed allows (the SDK and the emulator cost a few ms a
request, on the same 2 cores). The script exits 0 whether targets pass or fail; 1 when
a run crashed or a row failed.

    .venv/bin/python benchmarks/bench_dataset.py            # 10,000 rows; memory at 1,000 and 100,000
    .venv/bin/python benchmarks/bench_dataset.py --quick    # 128 rows; memory at 500 and 3,000
    .venv/bin/python benchmarks/bench_dataset.py --pf /tmp/pfvenv/bin/pf   # with Prompt flow
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path

FLOW = """\
name: bench-dataset
inputs:
  ticket: string
steps:
  classify:
    input: "Classify ticket {{ inputs.ticket }}"
outputs:
  category: "{{ steps.classify.text }}"
"""

PF_FLOW = """\
inputs:
  ticket:
    type: string
outputs:
  category:
    type: string
    reference: ${classify.output}
nodes:
- name: classify
  type: python
  source:
    type: code
    path: classify.py
  inputs:
    ticket: ${inputs.ticket}
"""

PF_TOOL = """\
import os

from openai import OpenAI
from promptflow.core import tool

client = OpenAI(base_url=os.environ["BENCH_BASE_URL"], api_key="bench", max_retries=0)
client.responses  # noqa: B018  (loaded when the worker starts, outside the timed lines)


@tool
def classify(ticket: str) -> str:
    return client.responses.create(model="gpt-4.1", input=f"Classify ticket {ticket}").output_text
"""


def make_data(path: Path, rows: int, fmt: str = "csv") -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh) if fmt == "csv" else None
        if w:
            w.writerow(["id", "ticket"])
        for i in range(1, rows + 1):
            ticket = f"T{i}: the printer on floor {i % 9} jams on page {i % 97}"
            if w:
                w.writerow([i, ticket])
            else:
                fh.write(json.dumps({"id": i, "ticket": ticket}) + "\n")
    return path


# ------------------------------------------------------------------------------ workers


def warm_up() -> None:
    """Import what the SDK loads lazily on first use, outside the timed part."""
    import openai

    client = openai.AsyncOpenAI(api_key="bench", base_url="http://127.0.0.1:9/v1")
    client.responses.with_raw_response  # noqa: B018
    import openai.types.responses  # noqa: F401


def worker_flowrun(args: argparse.Namespace) -> dict:
    from flowrun.dataset.launch import run_dataset
    from flowrun.plan import load_plan
    from flowrun.tools import load_builtins

    warm_up()

    tmp = Path(args.tmp)
    flow = tmp / "flow.yaml"
    flow.write_text(FLOW)
    load_plan(str(flow))  # imports (networkx, the template sandbox) outside the timed part, as
    load_builtins()       # the SDK's are for both; the timed run loads the plan again
    started = time.perf_counter()
    result = run_dataset(str(flow), args.data, str(tmp / f"out-{os.getpid()}.jsonl"), (), (), None,
                         "emulator", args.base_url, True, args.concurrency, str(tmp / "runs"), None,
                         args.budget_rpm, None)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": result.succeeded, "failed": result.failed}


def worker_hand(args: argparse.Namespace) -> dict:
    import openai

    warm_up()

    async def main() -> int:
        client = openai.AsyncOpenAI(base_url=args.base_url, api_key="bench", max_retries=0)
        sem = asyncio.Semaphore(args.concurrency)
        done = 0
        tasks: set[asyncio.Task] = set()
        with open(args.data, newline="") as fh, open(Path(args.tmp) / f"hand-{os.getpid()}.jsonl", "w") as out:
            async def one(row: dict) -> None:
                nonlocal done
                try:
                    r = await client.responses.create(model="gpt-4.1", input=f"Classify ticket {row['ticket']}")
                    out.write(json.dumps({"row": row["id"], "status": "succeeded",
                                          "outputs": {"category": r.output_text}}) + "\n")
                    done += 1
                finally:
                    sem.release()

            for row in csv.DictReader(fh):
                await sem.acquire()
                t = asyncio.create_task(one(row))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
            await asyncio.gather(*list(tasks))
        await client.close()
        return done

    started = time.perf_counter()
    rows = asyncio.run(main())
    return {"seconds": time.perf_counter() - started, "rows": rows, "failed": 0}


# ------------------------------------------------------------------------------ driver


def run_worker(kind: str, data: Path, base_url: str, tmp: Path, concurrency: int,
               budget_rpm: float | None = None) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--data", str(data), "--base-url", base_url,
           "--tmp", str(tmp), "--concurrency", str(concurrency)]
    if budget_rpm:
        cmd += ["--budget-rpm", str(budget_rpm)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


class Emulator:
    """One ``flowrun emulator`` process."""

    def __init__(self, latency_ms: int, rpm: float | None = None):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        cmd = [sys.executable, "-m", "flowrun.cli", "emulator", "--port", str(port),
               "--latency-ms", str(latency_ms)]
        if rpm:
            cmd += ["--rpm", str(rpm)]
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        self.proc.stderr.readline()  # "flowrun emulator listening on ..."
        self.root = f"http://127.0.0.1:{port}"
        self.url = f"{self.root}/v1"

    def _call(self, method: str, path: str) -> dict:
        req = urllib.request.Request(self.root + path, method=method, data=b"{}" if method == "POST" else None,
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def reset(self) -> None:
        self._call("POST", "/_emulator/reset")

    def received(self) -> int:
        """API requests received since the last reset (the journal keeps the last ones;
        it counts the ones it dropped)."""
        health = self._call("GET", "/_emulator/health")
        return health["requests"] + health["journal_dropped"]

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def run_pf(pf: str, rows: int, workers: int, emulator: Emulator, tmp: Path) -> dict:
    """``pf run create --flow --data`` with ``workers`` worker processes: rows/s over the
    lines (first line's start to last line's end), and the whole command's wall time."""
    flow = tmp / "pf-flow"
    flow.mkdir(exist_ok=True)
    (flow / "flow.dag.yaml").write_text(PF_FLOW)
    (flow / "classify.py").write_text(PF_TOOL)
    data = make_data(tmp / f"pf-{rows}.jsonl", rows, "jsonl")
    home = tmp / "pf-home"
    home.mkdir(exist_ok=True)
    env = {**os.environ, "HOME": str(home), "BENCH_BASE_URL": emulator.url, "PF_WORKER_COUNT": str(workers),
           "PF_DISABLE_TRACING": "true", "PROMPTFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("PYTHONPATH", None)
    subprocess.run([pf, "config", "set", "telemetry.enabled=false"], env=env, capture_output=True)
    started = time.perf_counter()
    proc = subprocess.run([pf, "run", "create", "--flow", str(flow), "--data", str(data)], env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - started
    runs = sorted((home / ".promptflow" / ".runs").glob("*"), key=lambda p: p.stat().st_mtime)
    if proc.returncode != 0 or not runs:
        raise SystemExit(f"pf run failed:\n{(proc.stdout + proc.stderr)[-2000:]}")
    starts, ends, ok = [], [], 0
    for f in (runs[-1] / "flow_artifacts").glob("*.jsonl"):
        for line in f.read_text().splitlines():
            info = json.loads(line)["run_info"]
            starts.append(datetime.fromisoformat(info["start_time"].replace("Z", "+00:00")))
            ends.append(datetime.fromisoformat(info["end_time"].replace("Z", "+00:00")))
            ok += info.get("status") == "Completed"
    return {"seconds": (max(ends) - min(starts)).total_seconds(), "rows": ok, "failed": rows - ok, "wall": wall}


def _line(name: str, r: dict, ideal: float | None, extra: str = "") -> str:
    rate = r["rows"] / r["seconds"]
    vs = f"{rate / ideal:>9.3f}" if ideal else f"{'':>9}"
    rss = f"{r['rss_mb']:>9.1f}" if "rss_mb" in r else f"{'':>9}"
    return f"  {name:26}{r['rows']:>8}{r['seconds']:>9.2f}{rate:>9.1f}{vs}{rss}  {extra}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (CI)")
    ap.add_argument("--rows", type=int, help="rows for the throughput runs (default 10,000; quick 128)")
    ap.add_argument("--mem-rows", help="small,large rows for memory (default 1000,100000; quick 500,3000)")
    ap.add_argument("--latency-ms", type=int, default=1000, help="the emulator's fixed latency (default 1000)")
    ap.add_argument("--concurrency", type=int, default=64, help="requests in flight (default 64)")
    ap.add_argument("--rpm", type=float, default=3000,
                    help="the quota of the quota-bound run, below concurrency / latency (default 3000; 0: skip)")
    ap.add_argument("--mem-concurrency", type=int, default=16, help="requests in flight in the memory runs")
    ap.add_argument("--pf", default=shutil.which("pf"), help="Prompt flow's pf command (default: pf on PATH)")
    ap.add_argument("--pf-rows", type=int, help="rows for pf (default 1,000; quick 64)")
    ap.add_argument("--pf-workers", type=int, default=8, help="pf worker processes (PF_WORKER_COUNT)")
    ap.add_argument("--worker", choices=["flowrun", "hand"], help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--base-url", help=argparse.SUPPRESS)
    ap.add_argument("--tmp", help=argparse.SUPPRESS)
    ap.add_argument("--budget-rpm", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        out = worker_flowrun(args) if args.worker == "flowrun" else worker_hand(args)
        out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(out))
        return

    began = time.perf_counter()
    rows = args.rows or (128 if args.quick else 10_000)
    small, large = (int(x) for x in (args.mem_rows or ("500,3000" if args.quick else "1000,100000")).split(","))
    pf_rows = args.pf_rows or (64 if args.quick else 1000)
    latency = args.latency_ms / 1000
    ideal = args.concurrency / latency
    quota_ideal = min(ideal, args.rpm / 60) if args.rpm else None
    emulators: list[Emulator] = []
    results: dict[str, dict] = {}
    crashed = False
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            data = make_data(tmp / "rows.csv", rows)
            plain = Emulator(args.latency_ms)
            emulators.append(plain)
            for kind in ("flowrun", "hand"):
                plain.reset()
                results[kind] = run_worker(kind, data, plain.url, tmp, args.concurrency)
                results[kind]["requests"] = plain.received()
            if args.pf and Path(args.pf).exists():
                plain.reset()
                results["pf"] = run_pf(args.pf, pf_rows, args.pf_workers, plain, tmp)
            if args.rpm:
                limited = Emulator(args.latency_ms, args.rpm)
                emulators.append(limited)
                results["quota"] = run_worker("flowrun", data, limited.url, tmp, args.concurrency, args.rpm)
                results["quota"]["requests"] = limited.received()
            fast = Emulator(0)
            emulators.append(fast)
            for n in (small, large):
                fast.reset()
                results[f"mem{n}"] = run_worker("flowrun", make_data(tmp / f"mem-{n}.csv", n), fast.url, tmp,
                                                args.mem_concurrency)
    finally:
        for emu in emulators:
            emu.close()

    fr, hand = results["flowrun"], results["hand"]
    print(f"dataset benchmark: a one-step flow; each contender in its own process, each emulator in its own "
          f"({os.cpu_count()} CPUs)")
    head = f"  {'':26}{'rows':>8}{'seconds':>9}{'rows/s':>9}{'/ ideal':>9}{'peak MB':>9}"
    print(f"\nconcurrency-bound: latency {args.latency_ms} ms, {args.concurrency} in flight, "
          f"ideal {ideal:.1f} rows/s")
    print(head)
    print(_line("flowrun --dataset", fr, ideal, f"{fr['requests'] - fr['rows']} extra requests"))
    print(_line("hand-written asyncio", hand, ideal))
    if "pf" in results:
        pf = results["pf"]
        pf_ideal = min(args.pf_workers, args.concurrency) / latency
        print(_line(f"pf run --data ({args.pf_workers} workers)", pf, pf_ideal,
                    f"its ideal {pf_ideal:.1f} rows/s; lines only, the command took {pf['wall']:.1f} s"))
    else:
        print("  pf run --data              not run: Prompt flow is not installed (pass --pf PATH_TO_pf; "
              "it runs offline against the emulator through a python node)")
    if "quota" in results:
        q = results["quota"]
        print(f"\nquota-bound: the emulator's quota {args.rpm:g} rpm, flowrun --rpm {args.rpm:g}, latency "
              f"{args.latency_ms} ms, {args.concurrency} in flight, ideal {quota_ideal:.1f} rows/s")
        print(head)
        print(_line("flowrun --dataset --rpm", q, quota_ideal, f"{q['requests'] - q['rows']} 429s"))
    print(f"\nmemory: no latency, {args.mem_concurrency} in flight")
    print(head)
    for n in (small, large):
        print(_line(f"flowrun, {n:,} rows", results[f"mem{n}"], None))

    for name, r in results.items():
        want = pf_rows if name == "pf" else small if name == f"mem{small}" else large if name == f"mem{large}" else rows
        if r["rows"] != want or r["failed"]:
            print(f"CRASH: {name}: {r['rows']} of {want} rows succeeded, {r['failed']} failed")
            crashed = True
    ratio = fr["rows"] / fr["seconds"] / ideal
    print(f"\nthroughput / ideal, concurrency-bound: {ratio:.3f} (target >= 0.95) {'ok' if ratio >= 0.95 else 'MISSED'}"
          f"; the hand-written script: {hand['rows'] / hand['seconds'] / ideal:.3f}")
    if "quota" in results:
        q = results["quota"]
        qr = q["rows"] / q["seconds"] / quota_ideal
        print(f"throughput / ideal, quota-bound: {qr:.3f} (target >= 0.95) {'ok' if qr >= 0.95 else 'MISSED'}; "
              f"{q['requests'] - q['rows']} 429s (target 0)")
    print(f"flowrun / hand-written: {(fr['rows'] / fr['seconds']) / (hand['rows'] / hand['seconds']):.3f}")
    growth = results[f"mem{large}"]["rss_mb"] - results[f"mem{small}"]["rss_mb"]
    print(f"peak memory {small:,} -> {large:,} rows: {growth:+.1f} MB (target within 50 MB) "
          f"{'ok' if abs(growth) <= 50 else 'MISSED'}")
    print(f"benchmark took {time.perf_counter() - began:.0f} s")
    if crashed:
        sys.exit(1)


if __name__ == "__main__":
    main()
