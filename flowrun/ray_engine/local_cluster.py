"""A throwaway Ray cluster on this machine: a head node and any number of extra nodes,
each a ``ray start --block`` process with its own ports and temp directory, stopped by
stopping those processes (never ``ray stop``, which stops every Ray on the machine).

For tests and benchmarks: ``with LocalCluster(nodes=2, cpus_per_node=1) as c: c.address``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_cli() -> list[str]:
    exe = Path(sys.executable).with_name("ray")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "ray.scripts.scripts"]


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class LocalCluster:
    """``nodes`` Ray nodes on 127.0.0.1 (the first is the head), ``cpus_per_node`` each."""

    def __init__(self, nodes: int = 1, cpus_per_node: int = 2, env: dict[str, str] | None = None,
                 timeout: float = 120.0):
        self.nodes, self.cpus = nodes, cpus_per_node
        self.env = {**os.environ, **(env or {}), "RAY_USAGE_STATS_ENABLED": "0",
                    "RAY_AUTH_MODE": "disabled"}
        self.env.pop("RAY_ADDRESS", None)
        self.timeout = timeout
        self.root = Path(tempfile.mkdtemp(prefix="flowrun-ray-")).resolve()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"

    def _start(self, i: int, head: bool) -> None:
        temp = self.root / f"node{i}"
        temp.mkdir()
        args = _ray_cli() + ["start", "--block", "--disable-usage-stats", f"--num-cpus={self.cpus}",
                             "--node-ip-address=127.0.0.1", f"--temp-dir={temp}",
                             f"--dashboard-agent-listen-port={free_port()}",
                             f"--metrics-export-port={free_port()}"]
        if head:
            args += ["--head", f"--port={self.port}", "--include-dashboard=false",
                     f"--ray-client-server-port={free_port()}"]
        else:
            args += [f"--address={self.address}"]
        log = open(self.root / f"node{i}.log", "wb")
        self.procs.append(subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True))

    def _started(self, i: int) -> bool:
        """``ray start`` of node ``i`` says its node runs (registered with the head)."""
        try:
            return b"Ray runtime started" in (self.root / f"node{i}.log").read_bytes()
        except OSError:
            return False

    def start(self) -> "LocalCluster":
        deadline = time.monotonic() + self.timeout
        self._start(0, head=True)
        self._wait(deadline, [], port=True)  # the other nodes start once the head's GCS listens
        for i in range(1, self.nodes):
            self._start(i, head=False)
        self._wait(deadline, list(range(self.nodes)))
        return self

    def _listening(self) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def _wait(self, deadline: float, nodes: list[int], port: bool = False) -> None:
        while time.monotonic() < deadline:
            self._check()
            if all(self._started(i) for i in nodes) and (not port or self._listening()):
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the local Ray cluster did not start in {self.timeout:.0f}s; see {self.root}")

    def _check(self) -> None:
        for i, p in enumerate(self.procs):
            if p.poll() is not None:
                log = (self.root / f"node{i}.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"ray start (node {i}) exited with {p.returncode}:\n{log}")

    def session_dirs(self) -> list[Path]:
        """Every node's temp directory (its logs included)."""
        return sorted(self.root.glob("node*"))

    def stop(self) -> None:
        """Stop this cluster's nodes: SIGTERM to each ``ray start`` process group, SIGKILL
        after a few seconds, then any process still naming this cluster's temp directory."""
        for p in reversed(self.procs):
            _signal_group(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 3
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for p in self.procs:
            _signal_group(p.pid, signal.SIGKILL)
            p.wait(10)
        for pid in self._stragglers():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.procs = []

    def _stragglers(self) -> list[int]:
        """Processes whose command line names this cluster's temp directory (its own)."""
        mark = str(self.root).encode()
        out = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                try:
                    if mark in (entry / "cmdline").read_bytes():
                        out.append(int(entry.name))
                except OSError:
                    continue
        return out

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "LocalCluster":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
        self.cleanup()
