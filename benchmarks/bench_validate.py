#!/usr/bin/env python3
"""How fast is `flowrun validate`, and how fast does `flowrun --help` start?

Generates realistic flows of 10, 100 and 1,000 steps into a temporary directory: each
step's prompt refers to one to three earlier steps and to the inputs, some steps use
tools (Python, MCP, code interpreter), every tenth runs ``for_each`` over an earlier
step's structured output, every fifth has an ``output_schema``, some ``continue`` an
earlier step or add ``needs`` / ``if``. Then it times

* ``flowrun validate FLOW`` as a subprocess (interpreter start-up included), median of 5;
* ``load_plan(FLOW)`` in this process (imports done, template caches emptied), median of 5;
* ``flowrun --help`` as a subprocess, median of 10;

and prints a table against the goals: validate < 1 s for 1,000 steps, --help < 0.3 s.
Exits 1 when a goal is missed (not in ``--quick`` mode) or a generated flow does not
validate, else 0.

    .venv/bin/python benchmarks/bench_validate.py [--sizes 10,100,1000] [--repeat 5]
    .venv/bin/python benchmarks/bench_validate.py --quick     # CI: 10 and 1,000 steps, once
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import yaml

GOAL_VALIDATE_1000 = 1.0  # seconds, subprocess, 1,000 steps
GOAL_HELP = 0.3  # seconds, subprocess


def flowrun_command() -> list[str]:
    """The installed `flowrun` script next to this interpreter, else `python -m`."""
    script = Path(sys.executable).with_name("flowrun")
    return [str(script)] if script.exists() else [sys.executable, "-m", "flowrun.cli"]


# --------------------------------------------------------------------------- generation


def generate_flow(n: int, seed: int = 1) -> dict[str, Any]:
    """A flow of ``n`` steps; references only point backwards, so it is a valid DAG."""
    rnd = random.Random(seed)
    flow: dict[str, Any] = {
        "name": f"bench-{n}",
        "description": f"A generated flow with {n} steps.",
        "inputs": {
            "company": "string",
            "region": {"type": "string", "default": "EMEA"},
            "depth": {"type": "integer", "default": 2},
        },
        "secrets": ["DOCS_TOKEN"],
        "defaults": {"model": "gpt-4.1-mini", "temperature": 0.2, "retries": 2, "timeout": "2m"},
        "tools": {
            "lookup": {"python": "bench_tools:lookup"},
            "prices": {"python": "bench_tools:prices", "bind": {"region": "{{ inputs.region }}"}},
            "docs": {
                "mcp": "https://example.com/mcp",
                "headers": {"Authorization": "Bearer {{ secrets.DOCS_TOKEN }}"},
                "require_approval": {"never": ["search"]},
                "approve": ["search"],
            },
            "sandbox": {"code_interpreter": {"memory_limit": "4g"}},
        },
        "steps": {},
    }
    steps: dict[str, Any] = flow["steps"]
    structured: list[str] = []
    ids = [f"s{i:04d}" for i in range(n)]

    def text_of(ref: str) -> str:
        """``steps.REF``'s text as an expression; a for_each step is a list of results."""
        if "for_each" in steps[ref]:
            return f"steps.{ref} | map(attribute='text') | join(' ')"
        return f"steps.{ref}.text"

    for i, sid in enumerate(ids):
        earlier = ids[max(0, i - 50):i]
        refs = rnd.sample(earlier, k=min(len(earlier), rnd.randint(1, 3))) if earlier else []
        lines = [f"Step {i} on {{{{ inputs.company }}}} in {{{{ inputs.region }}}}."]
        lines += [f"Use this: {{{{ ({text_of(r)}) | truncate(200) }}}}" for r in refs]
        step: dict[str, Any] = {}
        if i % 10 == 9 and structured:
            source = rnd.choice(structured[-5:])
            step["for_each"] = f"{{{{ steps.{source}.output.items }}}}"
            step["max_parallel"] = 4
            lines.append("Explain item {{ index }}: {{ item }}")
        step["input"] = "\n".join(lines)
        if i % 5 == 0:
            step["output_schema"] = {
                "type": "object",
                "properties": {"items": {"type": "array", "items": {"type": "string"}}},
                "required": ["items"],
                "additionalProperties": False,
            }
            structured.append(sid)
        if i % 7 == 3:
            step["tools"] = rnd.sample(["lookup", "prices", "docs", "sandbox"], k=2)
        if i % 11 == 4 and refs and "for_each" not in steps[refs[0]]:
            step["continue"] = refs[0]
        if i % 13 == 6 and earlier:
            step["needs"] = [rnd.choice(earlier)]
        if i % 17 == 8 and refs:
            step["if"] = f"{{{{ ({text_of(refs[0])}) | length > 10 }}}}"
        steps[sid] = step
    flow["outputs"] = {"last": f"{{{{ {text_of(ids[-1])} }}}}", "count": n}
    return flow


# --------------------------------------------------------------------------- timing


def median_time(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_ok(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")


BENCH_TOOLS = '''"""Tools of the generated benchmark flows."""


def lookup(company: str) -> str:
    """The ticker of a company."""
    return company[:4].upper()


def prices(ticker: str, region: str = "EU") -> list[float]:
    """Recent prices of a ticker."""
    return [1.0, 2.0]
'''


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--help-repeat", type=int, default=10)
    parser.add_argument("--quick", action="store_true",
                        help="CI mode: sizes 10,1000, one repeat, goals reported but not enforced "
                             "(exit 1 only on a crash or a generated flow that does not validate)")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.repeat, args.help_repeat = "10,1000", 1, 2
    sizes = [int(s) for s in args.sizes.split(",")]

    from flowrun import templating
    from flowrun.plan import load_plan  # imported before timing

    def load_plan_cold(path: Path) -> Any:
        """load_plan as a fresh process sees it: no template analysis cached."""
        for cached in (templating.analyze, getattr(templating, "_compiled", None)):
            getattr(cached, "cache_clear", lambda: None)()
        return load_plan(path)

    cli = flowrun_command()
    tmp = Path(tempfile.mkdtemp(prefix="flowrun-bench-"))
    # validate looks the tools' module up (without importing it): it must exist
    (tmp / "bench_tools.py").write_text(BENCH_TOOLS, encoding="utf-8")
    rows: list[tuple[str, float, str, str]] = []
    failed = False
    try:
        for n in sizes:
            path = tmp / f"flow-{n}.yaml"
            path.write_text(yaml.safe_dump(generate_flow(n), sort_keys=False), encoding="utf-8")
            plan = load_plan(path)  # also checks the generated flow is valid
            assert len(plan.order) == n
            lines = path.read_text().count("\n")
            sub = median_time(lambda: run_ok([*cli, "validate", str(path)], tmp), args.repeat)
            inproc = median_time(lambda: load_plan_cold(path), args.repeat)
            goal, verdict = "", ""
            if n == 1000:
                goal = f"< {GOAL_VALIDATE_1000:.1f} s"
                verdict = "PASS" if sub < GOAL_VALIDATE_1000 else "FAIL"
                failed |= verdict == "FAIL"
            rows.append((f"flowrun validate, {n} steps ({lines} lines), subprocess", sub, goal, verdict))
            rows.append((f"load_plan, {n} steps, in-process", inproc, "", ""))
        startup = median_time(lambda: run_ok([*cli, "--help"], tmp), args.help_repeat)
        verdict = "PASS" if startup < GOAL_HELP else "FAIL"
        failed |= verdict == "FAIL"
        rows.append(("flowrun --help, subprocess", startup, f"< {GOAL_HELP:.1f} s", verdict))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    width = max(len(r[0]) for r in rows)
    print(f"{'measurement':<{width}}  {'median':>9}  {'goal':>8}  result")
    print(f"{'-' * width}  {'-' * 9}  {'-' * 8}  ------")
    for name, seconds, goal, verdict in rows:
        print(f"{name:<{width}}  {seconds * 1000:>7.1f}ms  {goal:>8}  {verdict}")
    print(f"\n(python {sys.version.split()[0]}, {' '.join(cli)}, medians of {args.repeat} "
          f"runs; --help of {args.help_repeat})")
    if failed and args.quick:
        print("(quick mode: goals are not enforced)")
    return 1 if failed and not args.quick else 0


if __name__ == "__main__":
    sys.exit(main())
