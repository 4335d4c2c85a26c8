"""Command tools: run an external program for a function call.

The program is started from an argv list (never through a shell) in the flow file's
directory, in its own process group. The call's JSON arguments are written to its stdin;
its stdout is the result (re-encoded compactly when it parses as JSON, else the text).
A non-zero exit status is a failure whose message carries the tail of stderr. When the
call is cancelled (tool timeout, step timeout, Ctrl-C) the whole process group is killed.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any

from ..secrets import Redactor, truncate

STDERR_TAIL = 2000
MAX_OUTPUT_BYTES = 8 * 1024 * 1024


class CommandFailed(Exception):
    """The program could not run or exited with an error; the message is for the model."""


def resolve_argv(argv: list[str], base_dir: Path) -> list[str]:
    """``argv`` with its program made absolute: a path with a ``/`` is taken from the flow
    file's directory, a bare name from ``PATH``. Raises :class:`FileNotFoundError`."""
    program = argv[0]
    if "/" in program or os.sep in program:
        path = Path(program).expanduser()
        path = path if path.is_absolute() else (base_dir / path)
        if not path.is_file():
            raise FileNotFoundError(f"no such program {program!r} (looked for {path})")
        if not os.access(path, os.X_OK):
            raise FileNotFoundError(f"{path} is not executable (chmod +x it, or run it "
                                    "through its interpreter, e.g. [python3, script.py])")
        return [str(path.resolve()), *argv[1:]]
    found = shutil.which(program)
    if found is None:
        raise FileNotFoundError(f"no program {program!r} on PATH")
    return [found, *argv[1:]]


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # start_new_session: the group id is the pid
    except (ProcessLookupError, PermissionError):
        try:
            proc.kill()
        except ProcessLookupError:
            pass


def parse_stdout(data: bytes) -> str:
    """The program's result as the text sent back to the model."""
    text = data.decode("utf-8", errors="replace")
    stripped = text.strip()
    if stripped:
        try:
            return json.dumps(json.loads(stripped), ensure_ascii=False)
        except ValueError:
            pass
    return text.rstrip("\n")


async def run_command(argv: list[str], cwd: Path, arguments: dict[str, Any],
                      redactor: Redactor | None = None, env: dict[str, str] | None = None) -> str:
    """Run the program once with ``arguments`` as JSON on stdin; the text of its result.
    The stderr tail of a failure is taken after ``redactor`` masked the whole of it.
    ``env``: the program's environment (None: this process's; with tracing, it carries
    ``TRACEPARENT``)."""
    payload = json.dumps(arguments, ensure_ascii=False).encode("utf-8")
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=str(cwd),
            env=env,
            start_new_session=True,
        )
    except OSError as exc:
        raise CommandFailed(f"cannot start {argv[0]}: {exc.strerror or exc}") from None
    try:
        stdout, stderr = await proc.communicate(payload)
    finally:
        if proc.returncode is None:  # cancelled (timeout): stop the program and its children
            _kill_group(proc)
            try:
                await asyncio.shield(proc.wait())
            except asyncio.CancelledError:
                pass
    if proc.returncode != 0:
        tail = truncate(stderr.decode("utf-8", errors="replace").strip(), STDERR_TAIL, "tail",
                        redactor=redactor)
        status = proc.returncode
        how = f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
        raise CommandFailed(f"the command {how}" + (f"; stderr: {tail}" if tail else ""))
    return parse_stdout(stdout[:MAX_OUTPUT_BYTES])
