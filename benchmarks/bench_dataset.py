#!/usr/bin/env python3
"""Dataset runs: throughput against the ideal, peak memory against the row count, and
flowrun against a hand-written asyncio script, on one ``flowrun emulator`` process with
a fixed latency (and, optionally, a quota).

* **throughput**: ``flowrun run FLOW --dataset`` (in-process ``run_dataset``, a one-step
  flow) over ``--rows`` rows; the ideal is the smaller of ``concurrency / latency`` and the
  quota (``--rpm``: the emulator's quota, the run's budget 0.95 of it). Target >= 0.95.
* **memory**: the same run over ``--mem-rows`` (small, large) rows; peak RSS of each
  (``ru_maxrss`` of its own subprocess). Target: within 50 MB of each other.
* **hand**: asyncio + ``openai.AsyncOpenAI``, a semaphore of the same concurrency, the CSV
  read as a stream, one ``responses.create`` per row, one results line per row.

Prompt flow's ``pf run --data`` is not compared: it is not installed here and needs a
connection to a model service (it has no offline emulator), so it cannot run offline.

    .venv/bin/python benchmarks/bench_dataset.py            # 10,000 rows; memory at 1,000 and 100,000
    .venv/bin/python benchmarks/bench_dataset.py --quick    # small sizes, a few seconds
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
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


def make_data(path: Path, rows: int) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "ticket"])
        for i in range(1, rows + 1):
            w.writerow([i, f"T{i}: the printer on floor {i % 9} jams on page {i % 97}"])
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

    warm_up()

    tmp = Path(args.tmp)
    flow = tmp / "flow.yaml"
    flow.write_text(FLOW)
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
               budget_rpm: float | None) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--data", str(data), "--base-url", base_url,
           "--tmp", str(tmp), "--concurrency", str(concurrency)]
    if budget_rpm:
        cmd += ["--budget-rpm", str(budget_rpm)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def start_emulator(latency_ms: int, rpm: float | None) -> tuple[subprocess.Popen, str]:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    cmd = [sys.executable, "-m", "flowrun.cli", "emulator", "--port", str(port), "--latency-ms", str(latency_ms)]
    if rpm:
        cmd += ["--rpm", str(rpm)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    proc.stderr.readline()  # "flowrun emulator listening on ..."
    return proc, f"http://127.0.0.1:{port}/v1"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes: a few seconds")
    ap.add_argument("--rows", type=int, help="rows for the throughput run (default 10,000; quick 200)")
    ap.add_argument("--mem-rows", help="small,large rows for memory (default 1000,100000; quick 100,1000)")
    ap.add_argument("--latency-ms", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rpm", type=float, help="the emulator's quota (the run's budget: 0.95 of it)")
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

    rows = args.rows or (200 if args.quick else 10_000)
    small, large = (int(x) for x in (args.mem_rows or ("100,1000" if args.quick else "1000,100000")).split(","))
    latency = args.latency_ms / 1000
    ideal = args.concurrency / latency
    if args.rpm:
        ideal = min(ideal, args.rpm / 60)
    budget = args.rpm * 0.95 if args.rpm else None
    emulator, url = start_emulator(args.latency_ms, args.rpm)
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            data = make_data(tmp / "rows.csv", rows)
            fr = run_worker("flowrun", data, url, tmp, args.concurrency, budget)
            hand = run_worker("hand", data, url, tmp, args.concurrency, None)
            # memory: no latency needed to show flatness; the same emulator, rows as fast as it goes
            mem = {}
            for n in (small, large):
                mem[n] = run_worker("flowrun", make_data(tmp / f"mem-{n}.csv", n), url, tmp,
                                    args.concurrency, budget)
    finally:
        emulator.terminate()
        emulator.wait(10)

    fr_rate, hand_rate = fr["rows"] / fr["seconds"], hand["rows"] / hand["seconds"]
    print(f"dataset benchmark: 1-step flow, latency {args.latency_ms} ms, concurrency {args.concurrency}"
          + (f", emulator quota {args.rpm:g} rpm (budget {budget:g})" if args.rpm else ""))
    print(f"{'':28}{'rows':>9}{'seconds':>10}{'rows/s':>10}{'peak MB':>10}")
    print(f"{'ideal':28}{rows:>9}{rows / ideal:>10.2f}{ideal:>10.1f}")
    print(f"{'flowrun --dataset':28}{fr['rows']:>9}{fr['seconds']:>10.2f}{fr_rate:>10.1f}{fr['rss_mb']:>10.1f}")
    print(f"{'hand-written asyncio':28}{hand['rows']:>9}{hand['seconds']:>10.2f}{hand_rate:>10.1f}"
          f"{hand['rss_mb']:>10.1f}")
    for n, m in mem.items():
        print(f"{'flowrun, memory run':28}{m['rows']:>9}{m['seconds']:>10.2f}{m['rows'] / m['seconds']:>10.1f}"
              f"{m['rss_mb']:>10.1f}")
    print(f"{'pf run --data':28}  not run: Prompt flow is not installed and cannot run offline")
    ratio = fr_rate / ideal
    growth = mem[large]["rss_mb"] - mem[small]["rss_mb"]
    print(f"throughput / ideal: {ratio:.3f} (target >= 0.95) {'ok' if ratio >= 0.95 else 'MISSED'}")
    print(f"flowrun / hand-written: {fr_rate / hand_rate:.3f}")
    print(f"peak memory {small:,} -> {large:,} rows: {growth:+.1f} MB (target within 50 MB) "
          f"{'ok' if abs(growth) <= 50 else 'MISSED'}")


if __name__ == "__main__":
    main()
