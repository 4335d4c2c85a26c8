#!/usr/bin/env python3
"""The cost of OpenTelemetry tracing: the same run with tracing off and on, in one process.

The flow has ``--steps`` independent steps, each a two-turn function-tool loop (two
``chat`` spans, one ``execute_tool`` span, one ``invoke_agent`` span per step), on the
in-process emulator with no added latency, so that flowrun's own work is what is timed.
*off* is the default no-op tracer; *on* is the real one (``flowrun.otel``: batch span
processor, OTLP/HTTP exporter) sending to a small loopback receiver that reads and
discards each export. Runs alternate off / on, ``--repeat`` times each; the medians are
compared (wall time, and this process's CPU time, which other load on the machine
disturbs less). Goal: tracing adds less than 10% CPU to the run (reported, never fatal); the
export of the spans (flushed at the end, timed apart) is reported per span.

    .venv/bin/python benchmarks/bench_otel.py            # 50 steps, 5 repeats
    .venv/bin/python benchmarks/bench_otel.py --quick    # 10 steps, 5 repeats
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TOOLS = '''
def lookup(key: str) -> dict:
    """Look a key up."""
    return {"key": key, "value": len(key)}
'''


def flow_text(steps: int) -> str:
    body = "".join(f"  s{i}:\n    input: Look up k{i}\n    tools: [lookup]\n" for i in range(steps))
    return ("name: bench-otel\ndefaults: {model: gpt-4.1}\ntools:\n  lookup: {python: \"tools:lookup\"}\n"
            "steps:\n" + body)


def script(steps: int) -> dict:
    return {"steps": {f"s{i}": [{"function_calls": [{"name": "lookup", "arguments": {"key": f"k{i}"}}]},
                                {"default_rule": True}] for i in range(steps)}}


class Sink:
    """An OTLP/HTTP endpoint that reads each export and answers 200 (counting bytes)."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                sink.bytes += len(self.rfile.read(int(self.headers["Content-Length"])))
                sink.requests += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="10 steps, 5 repeats")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.repeat = 10, 5

    from flowrun import tracing
    from flowrun.client import ResponsesClient
    from flowrun.emulator import Emulator, EmulatorServer
    from flowrun.plan import load_plan
    from flowrun.providers import ProviderConfig
    from flowrun.runner import run_plan

    sink = Sink()
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink.url
    os.environ.pop("OTEL_TRACES_EXPORTER", None)
    from flowrun.otel import OtelTracer

    work = Path(tempfile.mkdtemp(prefix="bench-otel-"))
    (work / "tools.py").write_text(TOOLS)
    (work / "flow.yaml").write_text(flow_text(args.steps))
    plan = load_plan(work / "flow.yaml")
    emulator = Emulator(script=script(args.steps), check_requests=False)
    times: dict[str, list[float]] = {"off": [], "on": []}
    cpus: dict[str, list[float]] = {"off": [], "on": []}
    flushes: list[float] = []
    spans_per_run = args.steps * 4 + 1

    with EmulatorServer(emulator) as server:
        provider = ProviderConfig("emulator", server.base_url, "bench-key")

        async def once(mode: str) -> float:
            client = ResponsesClient(provider)
            try:
                started, cpu = time.perf_counter(), time.process_time()
                result = await run_plan(plan, client, {}, run_root=work / "runs", durable=False)
                elapsed = time.perf_counter() - started
                cpus[mode].append(time.process_time() - cpu)
            finally:
                await client.close()
            if result.status != "succeeded":
                raise SystemExit(f"bench_otel: the run failed: {result.error}")
            return elapsed

        def run(mode: str) -> None:
            emulator.reset()
            emulator.load_script(script(args.steps))
            tracer = OtelTracer.from_environment() if mode == "on" else None
            before = tracing.install(tracer)
            try:
                times[mode].append(asyncio.run(once(mode)))
            finally:
                tracing.install(before)
                if tracer is not None:
                    started = time.perf_counter()
                    tracer.shutdown()  # flushes every span
                    flushes.append(time.perf_counter() - started)

        run("off")  # warm-up: imports, the emulator's first requests, the exporter's first export
        run("on")
        for kept in (*times.values(), *cpus.values(), flushes):
            kept.clear()
        for _ in range(args.repeat):
            run("off")
            run("on")

    off, on = statistics.median(times["off"]), statistics.median(times["on"])
    cpu_off, cpu_on = statistics.median(cpus["off"]), statistics.median(cpus["on"])
    ratio = cpu_on / cpu_off
    flush = statistics.median(flushes)
    print(f"tracing overhead: {args.steps} steps ({spans_per_run} spans a run), "
          f"median of {args.repeat} runs each (CPU: this process, the emulator's threads included)")
    for mode, wall, cpu in (("off", off, cpu_off), ("on ", on, cpu_on)):
        runs = ", ".join(f"{t * 1000:.0f}" for t in times[mode.strip()])
        print(f"  {mode} wall {wall * 1000:7.1f} ms  CPU {cpu * 1000:7.1f} ms   wall of each run: {runs}")
    print(f"  on / off: wall {on / off:.3f}, CPU {ratio:.3f} ({(cpu_on - cpu_off) / spans_per_run * 1e6:+.0f} "
          f"us CPU per span); goal CPU < 1.10: {'met' if ratio < 1.10 else 'MISSED'}")
    print(f"  export at the end: {flush * 1000:.1f} ms median ({flush / spans_per_run * 1e6:.0f} us per span); "
          f"the receiver got {sink.requests} requests, {sink.bytes / max(1, sink.requests) / 1024:.1f} KiB each")
    if sink.requests == 0:
        print("bench_otel: no spans reached the receiver", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
