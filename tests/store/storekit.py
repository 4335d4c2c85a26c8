"""What the run-store tests share: reading the store of a runs directory, resuming in
process, and the *zygote* - a process that has imported flowrun once and forks a fresh
``flowrun`` command line per request, so a test can start and ``kill -9`` many real
runs without paying the interpreter start-up each time."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from flowrun.resume import resume_run
from flowrun.rundb import RunDB

ZYGOTE = r"""
import json, os, sys
import flowrun.cli, flowrun.runner, flowrun.client, flowrun.steps.responses, flowrun.tools.functions
import openai  # noqa: F401  (imported before forking)
for line in sys.stdin:
    req = json.loads(line)
    if req["op"] in ("wait", "poll"):
        pid, status = os.waitpid(req["pid"], 0 if req["op"] == "wait" else os.WNOHANG)
        print(json.dumps({"status": status if pid else None}), flush=True)
        continue
    pid = os.fork()
    if pid == 0:
        os.chdir(req["cwd"])
        os.environ.update(req["env"])
        out = os.open(req["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        err = os.open(req["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(out, 1)
        os.dup2(err, 2)
        code = 0
        try:
            flowrun.cli.main(req["argv"], prog_name="flowrun")
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    print(json.dumps({"pid": pid}), flush=True)
"""


class Zygote:
    """Forks ``flowrun ARGV`` children of one warm interpreter; see the module docstring."""

    def __init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_", "FLOWRUN_"))}
        self.proc = subprocess.Popen([sys.executable, "-c", ZYGOTE], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the zygote died"
        return json.loads(line)

    def start(self, argv: list[str], cwd: Path, out: Path, env: dict[str, str] | None = None) -> int:
        """Start ``flowrun ARGV``; returns its pid. stdout goes to ``out``, stderr beside it."""
        return self._ask({"op": "fork", "argv": argv, "cwd": str(cwd), "env": env or {},
                          "out": str(out), "err": str(out) + ".err"})["pid"]

    def wait(self, pid: int) -> int:
        """Reap the child; its exit code (negative: killed by that signal)."""
        status = self._ask({"op": "wait", "pid": pid})["status"]
        return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)

    def poll(self, pid: int) -> int | None:
        """The child's exit code if it ended (then it is reaped), else None."""
        status = self._ask({"op": "poll", "pid": pid})["status"]
        if status is None:
            return None
        return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)

    def kill9(self, pid: int) -> int:
        os.kill(pid, signal.SIGKILL)
        return self.wait(pid)

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=10)


def db_rows(runs: Path, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Rows of a query on the store of ``runs`` (a fresh read-only connection)."""
    path = runs / "flowrun.db"
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, args).fetchall()]
    except sqlite3.OperationalError as exc:  # the schema is not there yet
        if "no such table" in str(exc):
            return []
        raise
    finally:
        conn.close()


def integrity(runs: Path) -> str:
    db = RunDB.at(runs, create=False)
    try:
        return db.integrity()
    finally:
        db.close()


def resume_here(emu: Any, runs: Path, ref: str = "last", **kw: Any) -> Any:
    """``flowrun resume REF --json`` in this process, against the test's emulator."""
    return resume_run(ref, str(runs), kw.pop("assignments", ()), None, "emulator", emu.base_url,
                      True, None, kw.pop("emulator_script", None), False,
                      kw.pop("allow_changes", False))


def step_keys(body: dict[str, Any]) -> str:
    """The step key (``ID`` or ``ID.N``) a request body was sent for."""
    meta = body.get("metadata") or {}
    item = meta.get("flowrun_item")
    return meta.get("flowrun_step", "") + (f".{item}" if item is not None else "")


def wait_until(predicate: Any, timeout: float = 30.0, every: float = 0.01) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")
