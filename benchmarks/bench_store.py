#!/usr/bin/env python3
"""The run store's cost: flowrun with its SQLite run store against the record.json-only
approach it replaced, on the same emulator, in the same invocation.

Shapes: ``wide`` (1,000 independent steps) and ``fanout`` (one ``for_each`` over 10,000
items). Contenders, each run in its own fresh subprocess with ``flowrun.runner.run_plan``:

* **store** - the default: every step and item written to ``flowrun.db`` as it finishes,
  ``record.json`` exported at checkpoints (at most ~5% of the run's time) and at the end;
* **record** - ``run_plan(..., durable=False)``: no store, ``record.json`` rewritten
  whole at most every 50 ms as steps finish (the approach before the store, O(steps²)).

``history``: ``flowrun runs`` (with ``--flow`` / ``--status`` filters) and ``flowrun show``
on a store of 10,000 runs against one of 100, timed in process; the ratio shows the cost
does not grow with the history.

Only the run itself is timed (after imports, plan loading and client creation); peak
memory is the subprocess's ``ru_maxrss``. The emulator (a ``flowrun emulator`` process,
no latency, reset between runs) is the same for both. The report prints wall time and
peak memory per contender and the ratios store / record. Exits 1 only if something
crashed (a run that did not succeed, a wrong number of requests).

    .venv/bin/python benchmarks/bench_store.py [--quick] [--repeat 1] [--shapes wide,fanout]

``--quick``: 200 steps and 1,000 items, one repeat (a smoke run for scripts/test.sh).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_run import Emulator  # noqa: E402  (the same emulator harness)

SHAPES = ("wide", "fanout", "history")
CONTENDERS = ("record", "store")
CONCURRENCY = 64


def write_flow(shape: str, n: int, path: Path) -> int:
    """The flow file; returns how many requests it makes."""
    lines = [f"name: bench-{shape}", "defaults: {model: bench}", "steps:"]
    if shape == "wide":
        lines += [f"  w{i:04d}: {{input: \"Node {i}\"}}" for i in range(n)]
    else:
        lines += ["  fan:", f"    for_each: \"{{{{ range({n}) | list }}}}\"",
                  "    input: \"Item {{ item }}\""]
    lines += ["outputs:", "  done: ok", ""]
    path.write_text("\n".join(lines))
    return n


def write_script(path: Path) -> None:
    path.write_text(json.dumps({"default": [{"text": "lorem ipsum dolor sit amet " * 4}]}))


async def worker_run(flow: str, base_url: str, run_root: str, durable: bool) -> dict[str, Any]:
    from flowrun.client import ResponsesClient
    from flowrun.plan import load_plan
    from flowrun.providers import ProviderConfig
    from flowrun.runner import run_plan

    plan = load_plan(flow)
    client = ResponsesClient(ProviderConfig("emulator", base_url, "key"))
    try:
        started = time.perf_counter()
        result = await run_plan(plan, client, {}, run_root=Path(run_root),
                                max_concurrency=CONCURRENCY, durable=durable)
        wall = time.perf_counter() - started
    finally:
        await client.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"status": result.status, "wall": wall, "rss_mb": rss}


def worker_main(args: argparse.Namespace) -> int:
    out = asyncio.run(worker_run(args.flow, args.base_url, args.run_root, args.contender == "store"))
    print(json.dumps(out))
    return 0


def run_worker(contender: str, flow: Path, base_url: str, run_root: Path) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", "--contender", contender, "--flow", str(flow),
           "--base-url", base_url, "--run-root", str(run_root)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"{contender} worker failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench(args: argparse.Namespace) -> int:
    sizes = {"wide": 200, "fanout": 1000} if args.quick else {"wide": 1000, "fanout": 10000}
    repeat = 1 if args.quick else args.repeat
    shapes = [s for s in args.shapes.split(",") if s and s != "history"]
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        tmpdir = Path(tmp)
        script = tmpdir / "script.json"
        write_script(script)
        emu = Emulator(0, script, tmpdir)
        rows = []
        try:
            for shape in shapes:
                flow = tmpdir / f"{shape}.yaml"
                expected = write_flow(shape, sizes[shape], flow)
                results: dict[str, list[dict[str, Any]]] = {c: [] for c in CONTENDERS}
                for r in range(repeat):
                    for contender in CONTENDERS:
                        emu.reset()
                        root = tmpdir / f"runs-{shape}-{contender}-{r}"
                        out = run_worker(contender, flow, emu.base_url, root)
                        posts = sum(1 for e in emu.requests() if e["method"] == "POST")
                        if out["status"] != "succeeded" or posts != expected:
                            raise RuntimeError(f"{shape}/{contender}: {out['status']}, {posts} requests "
                                               f"(expected {expected})")
                        if contender == "store" and not (root / "flowrun.db").is_file():
                            raise RuntimeError("the store contender wrote no flowrun.db")
                        results[contender].append(out)
                med = {c: {k: statistics.median(o[k] for o in results[c]) for k in ("wall", "rss_mb")}
                       for c in CONTENDERS}
                rows.append((shape, sizes[shape], med))
        finally:
            emu.stop()
    if rows:
        print(f"\nrun store vs record.json only ({'quick' if args.quick else 'full'}; median of {repeat}; "
              f"max concurrency {CONCURRENCY}; emulator without latency)")
        print(f"{'shape':<8} {'size':>6} {'record s':>9} {'store s':>9} {'time x':>7} "
              f"{'record MB':>10} {'store MB':>9} {'mem x':>6}")
        for shape, size, med in rows:
            rec, sto = med["record"], med["store"]
            print(f"{shape:<8} {size:>6} {rec['wall']:>9.2f} {sto['wall']:>9.2f} "
                  f"{sto['wall'] / rec['wall']:>7.2f} {rec['rss_mb']:>10.1f} {sto['rss_mb']:>9.1f} "
                  f"{sto['rss_mb'] / rec['rss_mb']:>6.2f}")
        print("time x, mem x: store / record (below 1: the store is cheaper)")
    if "history" in args.shapes.split(","):
        print_history(bench_history(args))
    return 0


def fill_history(root: Path, n: int) -> None:
    """A run store holding ``n`` finished runs of 7 flows (and 10 killed ones)."""
    from flowrun.rundb import RunDB

    db = RunDB.at(root)
    now = time.time()
    rows = [(f"run-{i:06d}", f"flow{i % 7}", ("succeeded", "failed")[i % 3 == 0], now - n + i,
             now - n + i + 2, 2.0, i % 5, int(i % 3 == 0), 100 + i, None) for i in range(n)]
    rows += [(f"run-dead-{i}", "flow0", "running", now - 5 * i, None, None, 0, 0, 0, 2 ** 22 + i)
             for i in range(10)]  # pids no process has: they read (and get recorded) interrupted
    db.conn.execute("BEGIN")
    db.conn.executemany(
        "INSERT INTO runs (id, flow_name, status, started, ended, duration, steps_ok,"
        " steps_failed, tokens, pid) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
    db.conn.execute("COMMIT")
    db.close()


def time_command(argv: list[str], repeat: int) -> float:
    """Median seconds of ``flowrun ARGV`` (in process: the command, not the interpreter)."""
    from click.testing import CliRunner

    from flowrun.cli import main as cli

    runner, times = CliRunner(), []
    for _ in range(repeat):
        started = time.perf_counter()
        out = runner.invoke(cli, argv)
        times.append(time.perf_counter() - started)
        if out.exit_code != 0:
            raise RuntimeError(f"flowrun {' '.join(argv)}: {out.output[-2000:]}")
    return statistics.median(times)


def bench_history(args: argparse.Namespace) -> list[tuple[str, float, float]]:
    """``flowrun runs`` / ``show`` on a store of 10,000 runs against one of 100."""
    repeat = 3 if args.quick else 11
    queries = {
        "runs": ["runs"],
        "runs --json --limit 100": ["runs", "--json", "--limit", "100"],
        "runs --flow --status": ["runs", "--flow", "flow3", "--status", "failed"],
        "runs --status interrupted": ["runs", "--status", "interrupted"],
        "show RUN": ["show", "run-000042"],
    }
    out = []
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        small, large = Path(tmp) / "small", Path(tmp) / "large"
        fill_history(small, 100)
        fill_history(large, 10_000)
        for name, argv in queries.items():
            t_small = time_command([*argv, "--run-dir", str(small)], repeat)
            t_large = time_command([*argv, "--run-dir", str(large)], repeat)
            out.append((name, t_small, t_large))
    return out


def print_history(rows: list[tuple[str, float, float]]) -> None:
    print("\nrun history: the command on 10,000 runs against 100 runs (in process, median)")
    print(f"{'command':<28} {'100 runs ms':>12} {'10,000 ms':>10} {'x':>6}")
    for name, t_small, t_large in rows:
        print(f"{name:<28} {t_small * 1000:>12.1f} {t_large * 1000:>10.1f} {t_large / t_small:>6.2f}")
    print("x: 10,000 runs / 100 runs (about 1: the cost does not grow with the history)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--contender", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--flow", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--run-root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker_main(args)
    try:
        return bench(args)
    except RuntimeError as exc:
        print(f"bench_store: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    os.environ.pop("FLOWRUN_EMULATOR_LATENCY_MS", None)
    sys.exit(main())
