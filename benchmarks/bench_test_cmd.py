#!/usr/bin/env python3
"""How fast is `flowrun test examples/`? Goal: every example test in under 10 s on 2 cores.

Runs the command as a user does (a subprocess, interpreter start-up included) and prints
its wall time, the CPU time it used (user + system, children included: a figure that a
busy shared machine does not inflate the way it inflates wall time), and each case's
time from ``--json``, slowest first. The baseline, measured in the same run, is the
smallest test command: one trivial case (`quickstart.test.yaml -k "default rule"`), i.e.
start-up, one emulator and one run; the ratio says what the whole suite costs in such
units. Without ``--quick`` it also runs the suite with ``-j 1`` to show what running cases
concurrently gains.

    .venv/bin/python benchmarks/bench_test_cmd.py            # baseline x3, suite x3, -j 1 once
    .venv/bin/python benchmarks/bench_test_cmd.py --quick    # CI: baseline and suite once

Exits 1 when a case fails (always) or the median wall time misses the goal (not in
``--quick`` mode: CI machines are shared).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
GOAL_S = 10.0


def flowrun_command() -> list[str]:
    """The installed `flowrun` script next to this interpreter, else `python -m`."""
    script = Path(sys.executable).with_name("flowrun")
    return [str(script)] if script.exists() else [sys.executable, "-m", "flowrun.cli"]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_tests(*args: str) -> tuple[float, float, dict[str, Any]]:
    """``flowrun test ARGS --json``: (wall s, CPU s, the report). Exits on a failed case."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_", "FLOWRUN_"))}
    cpu, start = _children_cpu(), time.perf_counter()
    proc = subprocess.run([*flowrun_command(), "test", *args, "--json"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    wall, cpu = time.perf_counter() - start, _children_cpu() - cpu
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        raise SystemExit(f"flowrun test {' '.join(args)} printed no report ({proc.returncode}):\n"
                         f"{proc.stderr[-2000:]}") from None
    if proc.returncode != 0:
        bad = [c for c in report.get("cases", []) if c.get("status") != "passed"]
        raise SystemExit(f"flowrun test {' '.join(args)} failed ({proc.returncode}): "
                         f"{json.dumps(bad or report, indent=1)[:3000]}")
    return wall, cpu, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true",
                        help="CI mode: baseline and suite once, no -j 1 run; the goal is reported, "
                             "not enforced")
    args = parser.parse_args(argv)
    repeat = 1 if args.quick else max(1, args.repeat)

    baseline = [run_tests("examples/flows/quickstart.test.yaml", "-k", "default rule") for _ in range(repeat)]
    suite = [run_tests("examples/") for _ in range(repeat)]
    base_wall = statistics.median(b[0] for b in baseline)
    wall = statistics.median(s[0] for s in suite)
    cpu = statistics.median(s[1] for s in suite)
    report = suite[-1][2]
    cases = sorted(report["cases"], key=lambda c: -c["duration_s"])
    verdict = "PASS" if wall < GOAL_S else "FAIL"

    print(f"flowrun test examples/: {report['summary']['total']} cases, "
          f"{len({c['file'] for c in cases})} files (median of {repeat})")
    print(f"  wall {wall:6.2f} s   goal < {GOAL_S:.0f} s   {verdict}")
    print(f"  cpu  {cpu:6.2f} s   (user + system, all processes; {os.cpu_count()} cores here)")
    print(f"  baseline (one trivial case) {base_wall:.2f} s; suite / baseline = {wall / base_wall:.1f}x")
    if not args.quick:
        serial = run_tests("examples/", "-j", "1")
        print(f"  -j 1: wall {serial[0]:.2f} s, cpu {serial[1]:.2f} s; concurrency gains "
              f"{serial[0] / wall:.1f}x")
    print("\nper case (the last suite run; cases overlap, so these add up to more than the wall time)")
    width = max(len(c["id"]) for c in cases)
    for c in cases:
        print(f"  {c['id']:<{width}}  {c['duration_s']:6.2f} s  {c['requests']:4d} requests")
    if verdict == "FAIL" and args.quick:
        print("\n(quick mode: the goal is not enforced)")
    return 1 if verdict == "FAIL" and not args.quick else 0


if __name__ == "__main__":
    sys.exit(main())
