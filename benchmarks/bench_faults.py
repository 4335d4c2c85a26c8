#!/usr/bin/env python3
"""Fault soak: does a long streaming chain finish when the service misbehaves?

Runs a chain of 30 streaming steps (each needs the one before) many times against the
built-in emulator, which fails 10 % of ``POST /responses`` with 429 (Retry-After 1 s),
10 % with 500, and cuts 10 % of the streams after 1 to 6 events. It prints, per retry
policy, how many runs completed and the requests per run against the minimum (30, one
per step), and checks them against the emulator's request journal.

Policies: flowrun's default (no ``retries:`` in the flow) and, for comparison,
``retries: 2`` (the SDK's own default, and flowrun's before it was raised).

Goal: the default policy completes every run. Exits 1 when it does not, or when
something crashed (a run failed for another reason than the injected faults, or the
request counts disagree with the journal); ``retries: 2`` missing runs is expected.

    .venv/bin/python benchmarks/bench_faults.py [--runs 20] [--steps 30] [--seed 1]
    .venv/bin/python benchmarks/bench_faults.py --quick   # CI: 3 runs, short waits
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from flowrun.client import ResponsesClient
from flowrun.emulator import Emulator, EmulatorServer
from flowrun.emulator.faults import Faults, StatusFault, StreamFault
from flowrun.plan import load_plan
from flowrun.providers import ProviderConfig
from flowrun.retry import DEFAULT_POLICY
from flowrun.runner import run_plan

RATE = 0.10  # each of: 429, 500, dropped stream


class FaultMix(Faults):
    """Random faults at fixed rates (seeded), instead of the spec's FIFO queues."""

    def __init__(self, seed: int, retry_after: float, rate: float = RATE):
        super().__init__()
        self.rng = random.Random(seed)
        self.retry_after, self.rate = retry_after, rate
        self.injected = {"429": 0, "500": 0, "drop": 0}

    def next_status(self) -> StatusFault | None:
        r = self.rng.random()
        if r < self.rate:
            self.injected["429"] += 1
            return StatusFault(429, retry_after=self.retry_after, message="Rate limit reached (soak).")
        if r < 2 * self.rate:
            self.injected["500"] += 1
            return StatusFault(500, message="The server had an error (soak).")
        return None

    def next_stream(self) -> StreamFault | None:
        # asked only of requests that got past next_status: 0.1 / 0.8 of them makes 10 %
        if self.rng.random() < self.rate / (1 - 2 * self.rate):
            self.injected["drop"] += 1
            return StreamFault("drop", self.rng.randint(1, 6))
        return None


def write_flow(path: Path, steps: int, retries: Any) -> None:
    defaults: dict[str, Any] = {"model": "soak", "stream": True}
    if retries is not None:
        defaults["retries"] = retries
    chain = {f"s{i:02d}": {"input": f"Step {i}." + (f" After: {{{{ steps.s{i - 1:02d}.text | truncate(40) }}}}"
                                                    if i else "")}
             for i in range(steps)}
    path.write_text(json.dumps({"name": "soak", "defaults": defaults, "steps": chain}, indent=1))


async def soak(base_url: str, flow: Path, runs: int, root: Path, concurrent: bool) -> list[dict[str, Any]]:
    """Run ``flow`` ``runs`` times; per run: status, requests sent, first error."""
    plan = load_plan(flow)
    client = ResponsesClient(ProviderConfig("emulator", base_url, "soak"))

    async def one(n: int) -> dict[str, Any]:
        result = await run_plan(plan, client, {}, run_root=root / f"run{n}")
        attempts = sum(o.result.attempts for o in result.steps.values() if o.result is not None)
        errors = [o.error for o in result.steps.values() if o.error]
        return {"status": result.status, "requests": attempts, "error": errors[0] if errors else None}

    try:
        if concurrent:
            return list(await asyncio.gather(*(one(n) for n in range(runs))))
        return [await one(n) for n in range(runs)]
    finally:
        await client.close()


INJECTED = ("rate limited (429)", "server error (500)", "stream dropped after")


def journal_posts(url: str) -> int:
    with urllib.request.urlopen(url + "/_emulator/requests", timeout=30) as resp:
        entries = json.loads(resp.read())
    return sum(1 for e in entries if e["method"] == "POST" and e["path"].endswith("/responses"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--retry-after", type=float, default=1.0, help="seconds the 429s ask for")
    p.add_argument("--quick", action="store_true",
                   help="CI mode: 3 runs one after another (seeded, so repeatable), 429s asking "
                        "for 0.05 s, the default policy's count with 0.02 s backoff, no comparison")
    args = p.parse_args(argv)
    if args.quick:
        args.runs, args.retry_after = min(args.runs, 3), 0.05
    default: Any = {"initial_delay": 0.02} if args.quick else None  # the count is the default's
    policies = [("default", default)] + ([] if args.quick else [("retries: 2", 2)])
    t_start = time.perf_counter()
    rows, crashed = [], []
    with tempfile.TemporaryDirectory(prefix="flowrun-soak-") as tmp:
        for name, retries in policies:
            flow = Path(tmp) / f"soak-{len(rows)}.yaml"
            write_flow(flow, args.steps, retries)
            faults = FaultMix(args.seed, args.retry_after)
            with EmulatorServer(Emulator(faults=faults)) as server:
                t0 = time.perf_counter()
                results = asyncio.run(soak(server.base_url, flow, args.runs, Path(tmp) / name,
                                           concurrent=not args.quick))
                wall = time.perf_counter() - t0
                posts = journal_posts(server.url)
            sent = sum(r["requests"] for r in results)
            # a request on a connection the server had just closed never arrives: flowrun
            # counts it (it was sent, and retried), the journal cannot; never the reverse
            if posts > sent:
                crashed.append(f"{name}: runs counted {sent} requests, the emulator received {posts}")
            for r in results:
                if r["status"] != "succeeded" and not any(m in (r["error"] or "") for m in INJECTED):
                    crashed.append(f"{name}: a run {r['status']} for another reason: {r['error']}")
            done = [r for r in results if r["status"] == "succeeded"]
            rows.append({"policy": name, "done": len(done), "runs": len(results), "wall": wall, "sent": sent,
                         "per_run": [r["requests"] for r in done], "injected": dict(faults.injected),
                         "posts": posts, "first_error": next((r["error"] for r in results if r["error"]), None)})

    shown = DEFAULT_POLICY if not args.quick else DEFAULT_POLICY.model_copy(update={"initial_delay": 0.02})
    print(f"fault soak: {args.runs} runs of a {args.steps}-step streaming chain; each request: "
          f"{RATE:.0%} 429 (Retry-After {args.retry_after:g} s), {RATE:.0%} 500, {RATE:.0%} dropped "
          f"stream; seed {args.seed}; runs {'one after another' if args.quick else 'concurrently'}")
    print(f"default policy: max {shown.max}, initial_delay {shown.initial_delay:g} s, "
          f"max_delay {shown.max_delay:g} s\n")
    head = ["policy", "completed", "requests/run (min " + str(args.steps) + ")", "median", "max",
            "injected 429/500/drop", "sent/received", "wall s", "goal"]
    table = []
    for r in rows:
        per = r["per_run"]
        goal = ("PASS" if r["done"] == r["runs"] else "FAIL") if r["policy"] == "default" else "-"
        table.append([r["policy"], f"{r['done']}/{r['runs']}",
                      f"{statistics.mean(per):.1f}" if per else "-",
                      f"{statistics.median(per):.0f}" if per else "-", f"{max(per)}" if per else "-",
                      "/".join(str(r["injected"][k]) for k in ("429", "500", "drop")),
                      f"{r['sent']}/{r['posts']}",
                      f"{r['wall']:.1f}", goal])
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(head)]
    print("  ".join(h.rjust(w) for h, w in zip(head, widths)))
    print("  ".join("-" * w for w in widths))
    for row in table:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
    for r in rows:
        if r["first_error"] and r["done"] < r["runs"]:
            print(f"\n{r['policy']}: first failure: {r['first_error']}")
    print(f"\nbenchmark took {time.perf_counter() - t_start:.0f} s")
    for message in crashed:
        print(f"benchmark crashed: {message}", file=sys.stderr)
    default_ok = rows[0]["done"] == rows[0]["runs"]
    return 1 if crashed or not default_ok else 0


if __name__ == "__main__":
    sys.exit(main())
