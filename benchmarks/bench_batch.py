#!/usr/bin/env python3
"""Batch mode against the local engine on the same dataset: HTTP requests, model
requests and batches, tokens, and the price of each at the list prices you give.

Both runs go through ``run_dataset`` (in-process) against one in-process emulator, over
a three-step flow: a function tool loop (two rounds), a ``for_each`` of two items, and a
final step - five model requests per row. The local run sends each as a
``POST /responses``; the batch run sends each round of the whole dataset as one batch
(upload, create, a few polls, download), so its HTTP requests do not grow with the rows.
The results files must hold the same outputs (the emulator is deterministic).

Price: tokens at ``--price-in`` / ``--price-out`` (per 1M tokens, the list prices of
your model), the batch run at ``--discount`` of that (the Batch API's 50 %).

    .venv/bin/python benchmarks/bench_batch.py --price-in 2 --price-out 8   # 1,000 rows
    .venv/bin/python benchmarks/bench_batch.py --quick                      # 100 rows
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FLOW = """\
name: bench-batch
inputs:
  ticket: string
tools:
  lookup: {python: "bench_tools:lookup"}
steps:
  classify:
    input: "Classify ticket {{ inputs.ticket }}"
    tools: [lookup]
    tool_choice: required
  explain:
    for_each: "{{ ['cause', 'fix'] }}"
    input: "Explain the {{ item }} of: {{ steps.classify.text }}"
  reply:
    input: "Draft a reply for: {{ steps.explain | map(attribute='text') | join(' / ') }}"
outputs:
  reply: "{{ steps.reply.text }}"
"""
TOOLS = '''
def lookup(ticket: str) -> dict:
    """Look a ticket up.

    Args:
        ticket: The ticket text.
    """
    return {"ticket": ticket, "team": "printers"}
'''
ROUNDS = 4


def run_once(tmp: Path, base_url: str, data: Path, batch: bool) -> tuple[object, float]:
    from flowrun.dataset.launch import run_dataset

    started = time.monotonic()
    result = run_dataset(str(tmp / "flow.yaml"), str(data), str(tmp / f"results-{batch}.jsonl"), (), (), None,
                         "emulator", base_url, True, 16, str(tmp / "runs"), None, None, None, batch=batch)
    return result, time.monotonic() - started


def outputs(path: Path) -> dict[int, object]:
    return {(line := json.loads(text))["row"]: line["outputs"] for text in path.read_text().splitlines()}


def batch_lines(base_url: str) -> int:
    """Request lines in every batch the emulator ran (their ``request_counts``)."""
    import openai

    with openai.OpenAI(base_url=base_url, api_key="emulator") as sdk:
        return sum(b.request_counts.total for b in sdk.batches.list(limit=100))


def price(usage: dict, price_in: float, price_out: float, factor: float = 1.0) -> float:
    return factor * (usage.get("input_tokens", 0) * price_in + usage.get("output_tokens", 0) * price_out) / 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="100 rows: a few seconds")
    ap.add_argument("--rows", type=int, help="rows (default 1,000; quick 100)")
    ap.add_argument("--price-in", type=float, default=2.0, help="list price per 1M input tokens (default 2.00)")
    ap.add_argument("--price-out", type=float, default=8.0, help="list price per 1M output tokens (default 8.00)")
    ap.add_argument("--discount", type=float, default=0.5, help="batch price as a share of the list price (0.5)")
    args = ap.parse_args()
    rows = args.rows or (100 if args.quick else 1000)

    from flowrun.emulator import EmulatorServer

    with tempfile.TemporaryDirectory() as tmpdir, EmulatorServer() as server:
        tmp = Path(tmpdir)
        (tmp / "flow.yaml").write_text(FLOW)
        (tmp / "bench_tools.py").write_text(TOOLS)
        data = tmp / "tickets.jsonl"
        data.write_text("".join(json.dumps({"ticket": f"T{i}: printer {i} jams"}) + "\n"
                                for i in range(1, rows + 1)))
        os.chdir(tmp)
        stats = {}
        for batch in (False, True):
            server.emulator.reset()
            result, seconds = run_once(tmp, server.base_url, data, batch)
            if result.status != "succeeded":
                print(f"{'batch' if batch else 'local'} run failed: {result.error}", file=sys.stderr)
                return 1
            with urllib.request.urlopen(server.url + "/_emulator/requests") as resp:
                journal = json.loads(resp.read())
            dropped = server.emulator.journal.dropped  # the journal keeps the last 1,000 requests
            posts = lambda p: sum(1 for e in journal if e["method"] == "POST" and e["path"] == p)  # noqa: E731
            responses = posts("/v1/responses")
            if responses == len(journal):  # the local run sends nothing else: what was dropped was one too
                responses += dropped
            stats[batch] = {"http": len(journal) + dropped, "responses": responses,
                            "batches": posts("/v1/batches"), "files": posts("/v1/files"),
                            "lines": batch_lines(server.base_url) if batch else 0,
                            "usage": result.usage, "seconds": seconds}
        same = outputs(tmp / "results-False.jsonl") == outputs(tmp / "results-True.jsonl")
    local, batched = stats[False], stats[True]
    lines = local["responses"]
    cost_local = price(local["usage"], args.price_in, args.price_out)
    cost_batch = price(batched["usage"], args.price_in, args.price_out, args.discount)
    print(f"bench_batch: {rows} rows, 3 steps (tool loop, for_each of 2, final): {lines} model requests")
    print(f"  local : {local['http']:6d} HTTP requests, {local['responses']:6d} POST /responses, "
          f"{local['usage'].get('total_tokens', 0):,} tokens, {local['seconds']:.1f}s")
    print(f"  batch : {batched['http']:6d} HTTP requests, {batched['batches']:6d} batches "
          f"({batched['files']} files, {batched['lines']} lines), {batched['usage'].get('total_tokens', 0):,} tokens, "
          f"{batched['seconds']:.1f}s")
    print(f"  HTTP requests batch/local: {batched['http'] / max(local['http'], 1):.4f}; "
          f"batches per round: {batched['batches'] / ROUNDS:.2f} (goal 1.00)")
    print(f"  price at ${args.price_in:g} in / ${args.price_out:g} out per 1M tokens: local ${cost_local:.4f}, "
          f"batch ${cost_batch:.4f} (discount {args.discount:g}); ratio batch/local {cost_batch / max(cost_local, 1e-12):.3f}")
    print(f"  outputs identical: {same}")
    ok = same and batched["batches"] == ROUNDS and batched["responses"] == 0 \
        and batched["usage"] == local["usage"] and batched["lines"] == lines == 5 * rows
    if not ok:
        print("bench_batch: a check failed (outputs, batch count or usage differ)", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
