#!/usr/bin/env python3
"""The emulator's Batch API: how fast it answers batch lines, against the same requests
sent one by one to ``POST /responses``, on the same emulator, in the same invocation.

Contenders (the emulator in-process on loopback, reset between them, no latency):

* **direct** - ``responses.create`` for every body, ``--concurrency`` in flight
  (``openai.AsyncOpenAI``);
* **batch** - one JSONL upload, ``batches.create``, polling every 20 ms until it is
  done, then ``files.content`` of the output file.

Every body is a one-step echo with instructions and a short input, so both contenders
do the same model work; batch lines skip HTTP but not the request's spec check. It
prints requests/s per contender, the ratio batch / direct, and the HTTP requests each
made (from the emulator's journal: N against a handful). Exits 1 when something is
wrong: a batch that did not complete, a missing line, or an output line whose response
differs from the direct answer for the same body (ids, timestamps and usage aside).

    .venv/bin/python benchmarks/bench_batch_emulator.py [--lines 10000] [--concurrency 16]
    .venv/bin/python benchmarks/bench_batch_emulator.py --quick   # 300 lines (smoke run)
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import openai

from flowrun.emulator import EmulatorServer

# ids and times are new on every answer; usage.cached_tokens depends on the order requests
# arrived in (the emulator's prompt cache), which concurrency changes
RANDOM_KEYS = {"id", "created_at", "completed_at", "usage"}


def bodies(n: int) -> list[dict[str, Any]]:
    return [{"model": "bench", "instructions": "answer briefly", "input": f"question number {i} about batches",
             "metadata": {"row": str(i)}} for i in range(n)]


def stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if k not in RANDOM_KEYS}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


async def direct(server: EmulatorServer, reqs: list[dict[str, Any]], concurrency: int) -> list[Any]:
    gate = asyncio.Semaphore(concurrency)
    async with openai.AsyncOpenAI(base_url=server.base_url, api_key="bench", max_retries=0) as client:
        async def one(body: dict[str, Any]) -> Any:
            async with gate:
                raw = await client.responses.with_raw_response.create(**body)
                return raw.http_response.json()
        return await asyncio.gather(*(one(b) for b in reqs))


def batch(server: EmulatorServer, reqs: list[dict[str, Any]]) -> dict[str, Any]:
    client = openai.OpenAI(base_url=server.base_url, api_key="bench", max_retries=0)
    text = "".join(json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/responses", "body": b}) + "\n"
                   for i, b in enumerate(reqs))
    upload = client.files.create(file=("bench.jsonl", text.encode()), purpose="batch")
    job = client.batches.create(input_file_id=upload.id, endpoint="/v1/responses", completion_window="24h")
    while job.status not in ("completed", "failed", "expired", "cancelled"):
        time.sleep(0.02)
        job = client.batches.retrieve(job.id)
    if job.status != "completed" or job.output_file_id is None:
        raise SystemExit(f"batch ended {job.status}: {job.errors}")
    rows = [json.loads(line) for line in client.files.content(job.output_file_id).text.splitlines()]
    return {row["custom_id"]: row["response"]["body"] for row in rows}


def http_requests(server: EmulatorServer) -> int:
    journal = server.emulator.journal
    return len(journal) + journal.dropped  # the journal keeps the newest 1,000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="300 lines, a smoke run")
    args = parser.parse_args(argv)
    n = 300 if args.quick else args.lines
    reqs = bodies(n)
    with EmulatorServer() as server:
        started = time.perf_counter()
        answers = asyncio.run(direct(server, reqs, args.concurrency))
        direct_s = time.perf_counter() - started
        direct_http = http_requests(server)
        server.emulator.reset()
        started = time.perf_counter()
        lines = batch(server, reqs)
        batch_s = time.perf_counter() - started
        batch_http = http_requests(server)
    wrong = [i for i in range(n) if f"r{i}" not in lines or stable(lines[f"r{i}"]) != stable(answers[i])]
    print(f"{n} requests   direct: {n / direct_s:8.0f}/s ({direct_http} HTTP requests, concurrency "
          f"{args.concurrency})   batch: {n / batch_s:8.0f}/s ({batch_http} HTTP requests)   "
          f"batch/direct: {direct_s / batch_s:.2f}x")
    if wrong:
        print(f"FAIL: {len(wrong)} batch lines differ from the direct answers (first: row {wrong[0]})")
        return 1
    print("ok: every batch line equals the direct answer for the same body")
    return 0


if __name__ == "__main__":
    sys.exit(main())
