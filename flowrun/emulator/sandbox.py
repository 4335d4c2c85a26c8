"""Run untrusted Python for the emulator's code interpreter, in an isolated subprocess.

:func:`run_code` runs one cell of code the way the hosted tool does, as far as a local
emulator can:

* the interpreter is ``sys.executable -I -B -u -X utf8`` (isolated mode: no ``PYTHON*``
  variables, no user site-packages, no script directory on ``sys.path``), started with an
  empty-but-safe environment (``PATH``, ``HOME``/``TMPDIR`` inside the container, UTF-8
  locale) — nothing of the emulator's own environment (API keys...) is passed on;
* the code is read from stdin; every ``/mnt/data`` in the code is rewritten to the
  container's data directory, which is also the working directory, and the logs are
  rewritten back, so code and logs look as they would in the hosted container;
* limits: wall time (the process group is killed with SIGKILL when it runs over; the logs
  then end with ``TimeoutError: ...`` and :attr:`CodeResult.timed_out` is set), address
  space (``RLIMIT_AS`` from the container's ``memory_limit``), CPU seconds and file size
  (``RLIMIT_CPU`` / ``RLIMIT_FSIZE``), all set with ``resource.setrlimit`` in
  ``preexec_fn``; the captured output is capped at :data:`MAX_LOG_BYTES`;
* where the kernel has Landlock (Linux 5.13+), the process may create, change or delete
  files only inside the container (data and temp directories), and from Landlock ABI 4
  on it cannot open TCP connections or listen; elsewhere the subprocess runs without
  that guard (see :func:`write_guard_available`). Reading is not restricted.

This is an emulator's sandbox for scripted, self-written code, not a security boundary
for hostile code.
"""
from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

MOUNT = "/mnt/data"
"""Where the hosted code interpreter keeps the container's files."""
MAX_LOG_BYTES = 64 * 1024
"""Output kept per run; the rest is dropped with a note."""
MAX_FILE_BYTES = 256 * 1024 * 1024
"""Largest file the code may write (``RLIMIT_FSIZE``)."""

_MEMORY = {"1g": 1 << 30, "4g": 4 << 30, "16g": 16 << 30, "64g": 64 << 30}


def memory_bytes(limit: str | None) -> int:
    """Bytes of address space for a container ``memory_limit`` (default ``1g``)."""
    return _MEMORY.get(limit or "1g", _MEMORY["1g"])


@dataclass
class CodeResult:
    """What one run produced."""

    logs: str
    """stdout and stderr, interleaved as written, ``/mnt/data`` paths restored."""
    exit_code: int | None
    """The process's exit status (negative: killed by that signal)."""
    timed_out: bool = False
    duration: float = 0.0
    guarded: bool = False
    """Whether the Landlock write guard was in force."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


# --------------------------------------------------------------------------- Landlock

_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446  # same on all arches


@lru_cache(maxsize=1)
def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 when unavailable."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        version = libc.syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    except (OSError, AttributeError):
        return 0
    return max(int(version), 0)


@lru_cache(maxsize=1)
def write_guard_available() -> bool:
    """True when code runs under the Landlock write guard on this machine: the kernel
    has Landlock and a probe child could apply it (a seccomp filter may forbid it)."""
    abi = landlock_abi()
    if abi < 1:
        return False
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="flowrun-landlock-probe-") as tmp:
        try:
            probe = subprocess.run([sys.executable, "-I", "-B", "-c", _BOOTSTRAP, str(abi), tmp, tmp],
                                   input=b"", capture_output=True, timeout=30, env={}, cwd=tmp)
        except (OSError, subprocess.SubprocessError):
            return False
    return probe.returncode == 0


# Runs first in the child: apply Landlock (when the parent says the ABI is there), then run
# the cell from stdin as __main__, with tracebacks that start at the cell.
_BOOTSTRAP = r"""
import ctypes, os, sys
def _guard(abi, dirs):
    libc = ctypes.CDLL(None, use_errno=True)
    fs = (1 << 1) | (1 << 4) | (1 << 5) | sum(1 << b for b in range(6, 13))
    if abi >= 2: fs |= 1 << 13
    if abi >= 3: fs |= 1 << 14
    net = 3 if abi >= 4 else 0
    class Attr(ctypes.Structure):
        _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64)]
    class Beneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed", ctypes.c_uint64), ("fd", ctypes.c_int32)]
    attr = Attr(fs, net)
    size = ctypes.sizeof(Attr) if net else 8
    rs = libc.syscall(444, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if rs < 0: raise OSError(ctypes.get_errno(), "landlock_create_ruleset")
    for path, rights in [(d, fs) for d in dirs] + [("/dev/null", (1 << 1) | ((1 << 14) if abi >= 3 else 0))]:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        rule = Beneath(rights, fd)
        if libc.syscall(445, rs, 1, ctypes.byref(rule), 0) < 0:
            raise OSError(ctypes.get_errno(), "landlock_add_rule " + path)
        os.close(fd)
    if libc.prctl(38, 1, 0, 0, 0) < 0: raise OSError(ctypes.get_errno(), "no_new_privs")
    if libc.syscall(446, rs, 0) < 0: raise OSError(ctypes.get_errno(), "landlock_restrict_self")
    os.close(rs)
_abi = int(sys.argv[1])
if _abi:
    _guard(_abi, sys.argv[2:])
_src = sys.stdin.read()
sys.stdin = open(os.devnull)
sys.argv = [""]
del _guard, _abi
_ns = {"__name__": "__main__", "__builtins__": __builtins__}
try:
    exec(compile(_src, "<cell>", "exec"), _ns)
except SystemExit:
    raise
except BaseException as _exc:
    import traceback
    _tb = _exc.__traceback__.tb_next if _exc.__traceback__ else None
    traceback.print_exception(type(_exc), _exc, _tb)
    sys.exit(1)
"""


# --------------------------------------------------------------------------- running


def _limits(memory: int, cpu_seconds: int) -> None:
    """``preexec_fn``: resource limits for the child (runs between fork and exec)."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, MAX_FILE_BYTES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def rewrite_code(code: str, data_dir: Path) -> str:
    """``/mnt/data`` in the code points at the container's data directory."""
    return code.replace(MOUNT, str(data_dir))


def restore_paths(text: str, data_dir: Path) -> str:
    """The data directory in the logs reads ``/mnt/data`` again."""
    return text.replace(str(data_dir), MOUNT)


async def _read_capped(stream: asyncio.StreamReader, limit: int) -> tuple[bytes, int]:
    kept, total = bytearray(), 0
    while True:
        chunk = await stream.read(65536)
        if not chunk:
            return bytes(kept), total
        total += len(chunk)
        if len(kept) < limit:
            kept.extend(chunk[: limit - len(kept)])


async def run_code(
    code: str,
    data_dir: Path,
    tmp_dir: Path,
    *,
    timeout: float = 30.0,
    memory: int = _MEMORY["1g"],
) -> CodeResult:
    """Run ``code`` with ``data_dir`` as ``/mnt/data`` and working directory."""
    data_dir, tmp_dir = Path(data_dir).resolve(), Path(tmp_dir).resolve()
    abi = landlock_abi() if await asyncio.to_thread(write_guard_available) else 0
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_dir),
        "TMPDIR": str(tmp_dir),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": str(tmp_dir),
        "OMP_NUM_THREADS": "1",  # thread pools reserve address space; keep within the limit
        "OPENBLAS_NUM_THREADS": "1",
    }
    cpu = max(1, int(timeout) + 1)
    argv = [sys.executable, "-I", "-B", "-u", "-X", "utf8", "-c", _BOOTSTRAP, str(abi), str(data_dir), str(tmp_dir)]
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=str(data_dir),
        env=env,
        start_new_session=True,
        preexec_fn=lambda: _limits(memory, cpu),
    )
    assert proc.stdin is not None and proc.stdout is not None
    reader = asyncio.ensure_future(_read_capped(proc.stdout, MAX_LOG_BYTES))
    timed_out = False
    try:
        try:
            proc.stdin.write(rewrite_code(code, data_dir).encode("utf-8"))
            await proc.stdin.drain()
            proc.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the child died before reading all of it; its logs say why
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except asyncio.TimeoutError:
            timed_out = True
    finally:
        if proc.returncode is None:
            _kill_group(proc.pid)
            await proc.wait()
        else:
            _kill_group(proc.pid)  # stray children of the cell
    try:
        data, total = await asyncio.wait_for(reader, 5)
    except asyncio.TimeoutError:  # a grandchild holds the pipe open
        reader.cancel()
        data, total = b"", 0
    logs = restore_paths(data.decode("utf-8", "replace"), data_dir)
    if total > len(data):
        logs += f"\n[output truncated: {total - len(data)} more bytes]\n"
    if timed_out:
        if logs and not logs.endswith("\n"):
            logs += "\n"
        logs += f"TimeoutError: execution exceeded the time limit of {timeout:g}s and was stopped\n"
    elif proc.returncode is not None and proc.returncode < 0:
        name = _signal_name(-proc.returncode)
        if logs and not logs.endswith("\n"):
            logs += "\n"
        hint = " (CPU time limit)" if name == "SIGXCPU" else " (memory limit?)" if name == "SIGKILL" else ""
        logs += f"Process killed by {name}{hint}\n"
    return CodeResult(logs, proc.returncode, timed_out, time.monotonic() - started, abi >= 1)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
