#!/usr/bin/env python3
"""flowrun vs a hand-written asyncio script, on the same emulator with a fixed latency.

Runs the same DAG two ways against one ``flowrun emulator`` process:

* **hand** - a hand-written asyncio script calling the openai SDK directly
  (``openai.AsyncOpenAI(..., max_retries=0)``, ``client.responses.create``): one task per
  node, each awaiting its dependencies' tasks, sending a prompt that contains their
  output text;
* **flowrun** - the same DAG as a generated flow file, run with
  ``flowrun.runner.run_plan`` (templates ``{{ steps.X.text }}`` build the same prompts).

Shapes: ``wide`` (100 independent steps), ``deep`` (a chain of 50) and ``lattice``
(10x10; node (i,j) needs (i-1,j) and (i,j-1)). Each contender runs in its own fresh
subprocess; only the run itself is timed (after imports, plan loading and client
creation). Peak RSS is that subprocess's ``ru_maxrss``. For information, flowrun's
end-to-end CLI time (``flowrun run FLOW --json``, interpreter start-up included) is
measured too. The emulator is reset between runs, and its journal is used to check that
both contenders sent the same prompts.

The emulator's model is scripted to answer every step with a fixed text (as a real model
would, its output does not echo the prompt), so prompt sizes stay bounded in the lattice
(with the default echo rule they would grow like C(i+j, i)).

Goals: flowrun within 10% of the hand-written script, and within 15% of the
critical-path bound (longest path x latency). The script prints a report and exits 0
whether or not the goals are met; it exits 1 only when something crashed.

    .venv/bin/python benchmarks/bench_run.py [--latency-ms 100] [--repeat 3]
                                             [--shapes wide,deep,lattice] [--max-concurrency N]
    .venv/bin/python benchmarks/bench_run.py --quick     # CI: 20 ms, once, no CLI runs

The flows carry no ``max_concurrency``: flowrun's default (100) applies, as for a user.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

SHAPES = ("wide", "deep", "lattice")
MODEL = "bench"
REPLY_PAD = "lorem ipsum dolor sit amet " * 4  # ~110 characters of model output per step


# --------------------------------------------------------------------------- the DAGs

def build_dag(shape: str) -> dict[str, list[str]]:
    """node -> the nodes it needs, in a topological order."""
    if shape == "wide":
        return {f"w{i:03d}": [] for i in range(100)}
    if shape == "deep":
        return {f"d{i:02d}": ([f"d{i - 1:02d}"] if i else []) for i in range(50)}
    if shape == "lattice":
        dag: dict[str, list[str]] = {}
        for i in range(10):
            for j in range(10):
                deps = ([f"l{i - 1}_{j}"] if i else []) + ([f"l{i}_{j - 1}"] if j else [])
                dag[f"l{i}_{j}"] = deps
        return dag
    raise ValueError(f"unknown shape {shape!r}")


def longest_path(dag: dict[str, list[str]]) -> int:
    """Nodes on the longest path (the DAG is in topological order)."""
    depth: dict[str, int] = {}
    for node, deps in dag.items():
        depth[node] = 1 + max((depth[d] for d in deps), default=0)
    return max(depth.values())


def prompt_head(node: str) -> str:
    return f"You are step {node}. Combine your inputs into one short paragraph."


def hand_prompt(node: str, deps: list[str], texts: list[str]) -> str:
    """The prompt the flow's template renders, built by hand."""
    return prompt_head(node) + "".join(f"\nInput from {d}: {t}" for d, t in zip(deps, texts))


def flow_template(node: str, deps: list[str]) -> str:
    return prompt_head(node) + "".join(f"\nInput from {d}: {{{{ steps.{d}.text }}}}" for d in deps)


def reply_text(node: str) -> str:
    return f"Output of {node}: {REPLY_PAD}".strip()


def write_flow(shape: str, path: Path, max_concurrency: int | None = None) -> None:
    """The flow file for ``shape`` (JSON is valid YAML, and needs no quoting rules);
    without ``max_concurrency`` flowrun's default applies."""
    dag = build_dag(shape)
    flow: dict[str, Any] = {"name": f"bench_{shape}", "defaults": {"model": MODEL}}
    if max_concurrency:
        flow["max_concurrency"] = max_concurrency
    flow["steps"] = {node: {"input": flow_template(node, deps)} for node, deps in dag.items()}
    path.write_text(json.dumps(flow, indent=1) + "\n")


def write_emulator_script(path: Path) -> None:
    steps = {node: [{"text": reply_text(node)}] for shape in SHAPES for node in build_dag(shape)}
    path.write_text(json.dumps({"steps": steps}, indent=1) + "\n")


# --------------------------------------------------------------------------- workers
# Each runs in a fresh subprocess and prints one JSON line.

def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _rss_now_mb() -> float:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


async def worker_hand(shape: str, base_url: str) -> dict[str, Any]:
    import openai

    dag = build_dag(shape)
    client = openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0)
    setup_rss = _rss_now_mb()
    tasks: dict[str, asyncio.Task[str]] = {}

    async def run_node(node: str, deps: list[str]) -> str:
        texts = [await tasks[d] for d in deps]  # deps were created first (topological order)
        response = await client.responses.create(
            model=MODEL, input=hand_prompt(node, deps, texts), metadata={"flowrun_step": node},
        )
        if response.status != "completed":
            raise RuntimeError(f"{node}: response {response.status}")
        return response.output_text

    t0 = time.perf_counter()
    for node, deps in dag.items():
        tasks[node] = asyncio.create_task(run_node(node, deps))
    texts = await asyncio.gather(*tasks.values())
    wall = time.perf_counter() - t0
    await client.close()
    bad = [n for n, t in zip(dag, texts) if t != reply_text(n)]
    if bad:
        raise RuntimeError(f"unexpected output for {bad[:3]}")
    return {"wall": wall, "setup_rss_mb": setup_rss}


async def worker_flowrun(shape: str, base_url: str, flow: str, run_root: str) -> dict[str, Any]:
    from flowrun.client import ResponsesClient
    from flowrun.plan import load_plan
    from flowrun.providers import ProviderConfig
    from flowrun.runner import run_plan

    t_load = time.perf_counter()
    plan = load_plan(flow)
    load_s = time.perf_counter() - t_load
    client = ResponsesClient(ProviderConfig("emulator", base_url, "key"))
    setup_rss = _rss_now_mb()
    t0 = time.perf_counter()
    result = await run_plan(plan, client, {}, run_root=Path(run_root))
    wall = time.perf_counter() - t0
    await client.close()
    if result.status != "succeeded":
        raise RuntimeError(f"flowrun run {result.status}: {result.error}")
    return {"wall": wall, "setup_rss_mb": setup_rss, "plan_load_s": load_s}


def worker_main(args: argparse.Namespace) -> int:
    if args.worker == "hand":
        out = asyncio.run(worker_hand(args.shape, args.base_url))
    else:
        out = asyncio.run(worker_flowrun(args.shape, args.base_url, args.flow, args.run_root))
    out["maxrss_mb"] = _maxrss_mb()
    print(json.dumps(out), flush=True)
    return 0


# --------------------------------------------------------------------------- the driver

class Emulator:
    """``flowrun emulator`` in a subprocess, on a free port."""

    def __init__(self, latency_ms: int, script: Path, logdir: Path):
        self.log = logdir / "emulator.log"
        cmd = [sys.executable, "-m", "flowrun.cli", "emulator", "--port", "0",
               "--latency-ms", str(latency_ms), "--script", str(script)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWRUN_EMULATOR_")}
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.url = self._wait_for_url()
        self.base_url = self.url + "/v1"
        self._wait_healthy()

    def _wait_for_url(self, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"emulator exited: {self.log.read_text()[-2000:]}")
            for line in self.log.read_text(errors="replace").splitlines():
                if "listening on " in line:
                    return line.split("listening on ", 1)[1].split()[0].rsplit("/v1", 1)[0]
            time.sleep(0.05)
        raise RuntimeError("emulator did not report its address")

    def _wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.call("GET", "/_emulator/health").get("status") == "ok":
                    return
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"emulator not healthy: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)

    def call(self, method: str, path: str) -> Any:
        req = urllib.request.Request(self.url + path, method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def reset(self) -> None:
        self.call("POST", "/_emulator/reset")

    def requests(self) -> list[dict[str, Any]]:
        return self.call("GET", "/_emulator/requests")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run_child(cmd: list[str], timeout: float = 120.0) -> tuple[str, float, float]:
    """Run ``cmd``; (stdout, wall seconds, peak RSS MB of that child alone via wait4)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        deadline = t0 + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                os.wait4(proc.pid, 0)
                raise RuntimeError(f"timed out: {' '.join(cmd)}")
            time.sleep(0.002)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not wait again
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}: {' '.join(cmd)}\n{stderr[-3000:]}\n{stdout[-1000:]}")
    return stdout, wall, usage.ru_maxrss / 1024.0


def journal_prompts(entries: list[dict[str, Any]]) -> tuple[dict[str, str], list[float]]:
    """step -> prompt text, and arrival times, of the POST /responses requests."""
    prompts: dict[str, str] = {}
    times: list[float] = []
    for e in entries:
        if e["method"] != "POST" or not e["path"].endswith("/responses"):
            continue
        body = e["body"] or {}
        inp = body.get("input")
        if isinstance(inp, list):  # flowrun sends one user message with input_text parts
            inp = "".join(p.get("text", "") for item in inp for p in item.get("content", []))
        prompts[(body.get("metadata") or {}).get("flowrun_step", "?")] = inp
        times.append(e["time"])
    return prompts, sorted(times)


def flowrun_cli() -> list[str]:
    exe = Path(sys.executable).with_name("flowrun")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "flowrun.cli"]


def fmt(x: float | None, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)


def bench(args: argparse.Namespace) -> int:
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    for s in shapes:
        if s not in SHAPES:
            print(f"unknown shape {s!r}; choose from {', '.join(SHAPES)}", file=sys.stderr)
            return 2
    latency = args.latency_ms / 1000.0
    me = str(Path(__file__).resolve())
    contenders = ("hand", "flowrun") if args.quick else ("hand", "flowrun", "cli")
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="flowrun-bench-") as tmp:
        tmpdir = Path(tmp)
        script = tmpdir / "emulator-script.json"
        write_emulator_script(script)
        emu = Emulator(args.latency_ms, script, tmpdir)
        print(f"emulator at {emu.base_url} (latency {args.latency_ms} ms, pid {emu.proc.pid}); "
              f"{args.repeat} repeat(s), median reported", file=sys.stderr)
        rows = []
        try:
            for shape in shapes:
                dag = build_dag(shape)
                flow = tmpdir / f"{shape}.flow.yaml"
                write_flow(shape, flow, args.max_concurrency)
                hops = longest_path(dag)
                res: dict[str, list[dict[str, Any]]] = {"hand": [], "flowrun": [], "cli": []}
                for rep in range(args.repeat):
                    prompts: dict[str, dict[str, str]] = {}
                    for who in contenders:
                        emu.reset()
                        run_root = tmpdir / "runs" / f"{shape}-{who}-{rep}"
                        if who == "cli":
                            cmd = [*flowrun_cli(), "run", str(flow), "--provider", "emulator",
                                   "--base-url", emu.base_url, "--json", "--run-dir", str(run_root)]
                            stdout, wall, rss = run_child(cmd)
                            out = json.loads(stdout)
                            if out.get("status") != "succeeded":
                                raise RuntimeError(f"CLI run {out.get('status')}: {out.get('error')}")
                            data = {"wall": wall, "maxrss_mb": rss}
                        else:
                            cmd = [sys.executable, me, "--worker", who, "--shape", shape,
                                   "--base-url", emu.base_url, "--flow", str(flow),
                                   "--run-root", str(run_root)]
                            stdout, e2e, rss = run_child(cmd)
                            data = json.loads(stdout.strip().splitlines()[-1])
                            data["e2e"] = e2e
                        got, times = journal_prompts(emu.requests())
                        if len(times) != len(dag) or set(got) != set(dag):
                            raise RuntimeError(f"{shape}/{who}: emulator saw {len(times)} requests "
                                               f"for {len(set(got))} steps; expected {len(dag)}")
                        data["arrival_spread"] = times[-1] - times[0]
                        prompts[who] = got
                        res[who].append(data)
                        print(f"  {shape:8s} rep {rep + 1} {who:8s} {data['wall']:7.3f} s  "
                              f"maxrss {data['maxrss_mb']:6.1f} MB", file=sys.stderr)
                    for who in contenders[1:]:
                        diff = [n for n in dag if prompts[who][n] != prompts["hand"][n]]
                        if diff:
                            raise RuntimeError(f"{shape}: {who} sent different prompts for {diff[:3]}: "
                                               f"{prompts[who][diff[0]]!r} vs {prompts['hand'][diff[0]]!r}")

                def med(who: str, key: str) -> float:
                    return statistics.median(d[key] for d in res[who])

                bound = hops * latency
                hand, fr = med("hand", "wall"), med("flowrun", "wall")
                rows.append({
                    "shape": shape, "nodes": len(dag), "hops": hops, "bound": bound,
                    "hand": hand, "flowrun": fr, "r_hand": fr / hand,
                    "r_bound": fr / bound if bound else float("inf"),
                    "hand_r_bound": hand / bound if bound else float("inf"),
                    "rss_hand": med("hand", "maxrss_mb"), "rss_flowrun": med("flowrun", "maxrss_mb"),
                    "rss_cli": med("cli", "maxrss_mb") if res["cli"] else float("nan"),
                    "setup_rss_hand": med("hand", "setup_rss_mb"),
                    "setup_rss_flowrun": med("flowrun", "setup_rss_mb"),
                    "cli": med("cli", "wall") if res["cli"] else None,
                    "plan_load": med("flowrun", "plan_load_s"),
                    "e2e_hand": med("hand", "e2e"), "e2e_flowrun": med("flowrun", "e2e"),
                    "spread_hand": med("hand", "arrival_spread"),
                    "spread_flowrun": med("flowrun", "arrival_spread"),
                    "all_hand": [d["wall"] for d in res["hand"]],
                    "all_flowrun": [d["wall"] for d in res["flowrun"]],
                })
        finally:
            emu.stop()
    report(rows, args, time.perf_counter() - t_start)
    return 0


def report(rows: list[dict[str, Any]], args: argparse.Namespace, total: float) -> None:
    import platform
    from importlib.metadata import version

    lat = args.latency_ms
    print(f"\nflowrun {version('flowrun')} vs hand-written asyncio + openai SDK {version('openai')} "
          f"(Python {platform.python_version()}, {os.cpu_count()} CPUs) - emulator latency {lat} ms, "
          f"median of {args.repeat}\ntimes in seconds, run only (after imports, plan loading and client "
          f"creation); bound = longest path x latency; RSS = peak RSS of the contender's process\n")
    head = ["shape", "nodes", "bound", "hand", "flowrun", "flow/hand", "flow/bound", "hand/bound",
            "RSS hand MB", "RSS flowrun MB", "CLI e2e", "<=1.10 hand", "<=1.15 bound"]
    table = []
    for r in rows:
        table.append([
            r["shape"], str(r["nodes"]), f"{r['bound']:.2f}", fmt(r["hand"]), fmt(r["flowrun"]),
            f"{r['r_hand']:.3f}", f"{r['r_bound']:.3f}", f"{r['hand_r_bound']:.3f}", f"{r['rss_hand']:.1f}",
            f"{r['rss_flowrun']:.1f}", fmt(r["cli"]),
            "PASS" if r["r_hand"] <= 1.10 else "FAIL", "PASS" if r["r_bound"] <= 1.15 else "FAIL",
        ])
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(head)]
    print("  ".join(h.rjust(w) for h, w in zip(head, widths)))
    print("  ".join("-" * w for w in widths))
    for row in table:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))

    print("\ndetails")
    for r in rows:
        over_h = (r["hand"] - r["bound"]) / r["hops"] * 1000
        over_f = (r["flowrun"] - r["bound"]) / r["hops"] * 1000
        print(f"  {r['shape']}: {r['hops']} hops x {lat} ms; time above the bound per hop: hand "
              f"{over_h:.1f} ms, flowrun {over_f:.1f} ms (flowrun's own: {over_f - over_h:.1f} ms/hop)")
        print(f"    all runs: hand {', '.join(f'{x:.3f}' for x in r['all_hand'])}; "
              f"flowrun {', '.join(f'{x:.3f}' for x in r['all_flowrun'])}")
        print(f"    request arrival spread at the emulator (first to last): hand "
              f"{r['spread_hand']:.3f} s, flowrun {r['spread_flowrun']:.3f} s")
        print(f"    RSS after imports+setup: hand {r['setup_rss_hand']:.1f} MB, flowrun "
              f"{r['setup_rss_flowrun']:.1f} MB; CLI peak RSS {r['rss_cli']:.1f} MB")
        print(f"    subprocess e2e (start-up included): hand {r['e2e_hand']:.3f} s, flowrun API "
              f"{r['e2e_flowrun']:.3f} s (plan load {r['plan_load'] * 1000:.0f} ms), CLI {fmt(r['cli'])} s")
    n_pass = sum(r["r_hand"] <= 1.10 and r["r_bound"] <= 1.15 for r in rows)
    print(f"\n{n_pass}/{len(rows)} shapes meet both goals; benchmark took {total:.0f} s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--latency-ms", type=int, default=100, help="emulator latency per request (default 100)")
    p.add_argument("--repeat", type=int, default=3, help="runs per contender and shape; the median is reported")
    p.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated: wide,deep,lattice")
    p.add_argument("--max-concurrency", type=int, default=None,
                   help="set the flows' max_concurrency (default: flowrun's own default)")
    p.add_argument("--quick", action="store_true",
                   help="CI mode: 20 ms latency, one repeat, no CLI contender; still exits 1 on a crash")
    # internal: one measured run in this (fresh) process
    p.add_argument("--worker", choices=["hand", "flowrun"], help=argparse.SUPPRESS)
    p.add_argument("--shape", help=argparse.SUPPRESS)
    p.add_argument("--base-url", help=argparse.SUPPRESS)
    p.add_argument("--flow", help=argparse.SUPPRESS)
    p.add_argument("--run-root", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker_main(args)
    if args.quick:
        args.latency_ms, args.repeat = 20, 1
    if args.repeat < 1 or args.latency_ms < 0:
        p.error("--repeat must be >= 1 and --latency-ms >= 0")
    try:
        return bench(args)
    except Exception as exc:  # a crash (not a failed goal): report it and exit non-zero
        print(f"benchmark crashed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
