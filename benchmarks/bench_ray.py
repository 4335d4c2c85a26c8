#!/usr/bin/env python3
"""Dataset runs on Ray: rows/s of ``--engine ray`` with 1 and 2 workers against
``--engine local``, on a real two-node Ray cluster on this machine.

The script starts the cluster (``ray start --head`` plus a second ``ray start --address
127.0.0.1:PORT``, each node with 1 CPU, its own ports and temp directory; see
:mod:`flowrun.ray_engine.local_cluster`), one ``flowrun emulator`` process with a fixed
latency, and runs the example flow ``examples/flows/ticket-triage.yaml`` over its example
dataset (``examples/flows/data/tickets.csv``, its rows repeated to ``--rows``), driven by
``--ray-address``. Each run gets the same ``--max-concurrency`` (per worker on Ray), so
2 workers have twice the requests in flight of 1 worker or of the local engine. The
flow's ``rate_limits`` are lifted (``--rpm`` / ``--tpm`` far above what runs), so the
shared budget is asked by every request but never makes one wait.

Two figures per run: **wall** (rows / the whole run, connecting to Ray and starting the
workers included) and **steady** (rows / the time between the first and the last row
reaching the run store, from the store's timestamps). Ratios are against the local run
measured in the same invocation. Goal: 2 workers >= 1.6x 1 worker (steady); reported,
not enforced, under ``--quick``. The cluster is stopped at the end (only its own processes).

    .venv/bin/python benchmarks/bench_ray.py            # 1,000 rows, 150 ms latency, 4 in flight
    .venv/bin/python benchmarks/bench_ray.py --quick    # 80 rows
"""
from __future__ import annotations

import argparse
import csv
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
EXAMPLE_FLOW = ROOT / "examples" / "flows" / "ticket-triage.yaml"
EXAMPLE_DATA = ROOT / "examples" / "flows" / "data" / "tickets.csv"


def make_data(path: Path, rows: int) -> Path:
    """The example dataset, its rows repeated (ids renumbered) to ``rows`` rows."""
    with open(EXAMPLE_DATA, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields, base = reader.fieldnames, list(reader)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for i in range(rows):
            w.writerow({**base[i % len(base)], "id": i + 1})
    return path


def start_emulator(latency_ms: int) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "flowrun.cli", "emulator", "--port", str(port), "--latency-ms", str(latency_ms)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    proc.stderr.readline()  # "flowrun emulator listening on ..."
    return proc, f"http://127.0.0.1:{port}/v1"


def steady_rate(runs: Path, run_id: str) -> float:
    from flowrun.rundb import RunDB

    db = RunDB.at(runs, create=False)
    try:
        ended = [r["ended"] for r in db._rows("SELECT ended FROM dataset_rows WHERE run_id=? ORDER BY ended",
                                              (run_id,))]
    finally:
        db.close()
    return (len(ended) - 1) / (ended[-1] - ended[0]) if len(ended) > 1 and ended[-1] > ended[0] else 0.0


def one_run(tmp: Path, name: str, url: str, data: Path, concurrency: int, engine: dict | None) -> dict:
    from flowrun.dataset.launch import run_dataset

    runs = tmp / "runs"
    started = time.perf_counter()
    result = run_dataset(str(EXAMPLE_FLOW), str(data), str(tmp / f"{name}.jsonl"), ("ticket=message",), (),
                         None, "emulator", url, True, concurrency, str(runs), None, 6e6, 6e9, engine=engine)
    wall = time.perf_counter() - started
    if result.status != "succeeded":
        raise SystemExit(f"{name}: {result.status}: {result.error}")
    return {"name": name, "rows": result.succeeded, "wall": result.succeeded / wall,
            "steady": steady_rate(runs, result.run_id), "seconds": wall,
            "per_worker": (result.engine or {}).get("rows_per_worker")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a short run for CI")
    ap.add_argument("--rows", type=int, help="dataset rows (default 1,000; 80 with --quick)")
    ap.add_argument("--latency-ms", type=int, default=150, help="the emulator's latency per request")
    ap.add_argument("--concurrency", type=int, default=4, help="requests in flight per worker (and locally)")
    args = ap.parse_args()
    rows = args.rows or (80 if args.quick else 1000)
    try:
        import ray  # noqa: F401
    except ImportError:
        print("bench_ray: Ray is not installed (pip install 'flowrun[ray]'); nothing measured")
        return 0
    from flowrun.ray_engine.local_cluster import LocalCluster

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmpdir:
        tmp = Path(tmpdir)
        data = make_data(tmp / "tickets.csv", rows)
        emulator, url = start_emulator(args.latency_ms)
        cluster = LocalCluster(nodes=2, cpus_per_node=1)
        try:
            cluster.start()
            up = time.perf_counter() - t0
            print(f"two-node Ray cluster at {cluster.address} up in {up:.1f}s; {rows} rows of "
                  f"{EXAMPLE_FLOW.name} (2 requests a row), emulator latency {args.latency_ms} ms, "
                  f"{args.concurrency} in flight per worker")
            results = [one_run(tmp, "local", url, data, args.concurrency, None)]
            for workers in (1, 2):
                engine = {"name": "ray", "address": cluster.address, "workers": workers, "artifacts_dir": None}
                results.append(one_run(tmp, f"ray x{workers}", url, data, args.concurrency, engine))
        finally:
            cluster.stop()
            cluster.cleanup()
            emulator.terminate()
            emulator.wait(10)
    local = results[0]
    print(f"{'engine':<10}{'wall rows/s':>12}{'vs local':>10}{'steady rows/s':>15}{'vs local':>10}  rows per worker")
    for r in results:
        print(f"{r['name']:<10}{r['wall']:>12.1f}{r['wall'] / local['wall']:>9.2f}x{r['steady']:>15.1f}"
              f"{(r['steady'] / local['steady'] if local['steady'] else 0):>9.2f}x  {r['per_worker'] or '-'}")
    one, two = results[1], results[2]
    scale = two["steady"] / one["steady"] if one["steady"] else 0.0
    ok = scale >= 1.6
    print(f"2 workers / 1 worker (steady): {scale:.2f}x (goal >= 1.6x: {'met' if ok else 'missed'}); "
          f"whole script {time.perf_counter() - t0:.0f}s")
    return 0 if ok or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
