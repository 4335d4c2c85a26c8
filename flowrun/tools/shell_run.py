"""Run one workspace command, isolated as far as the platform allows.

:func:`run_isolated` starts the program through a small launcher (``python -I -S``) that,
before it ``execve``s the program:

* moves into a new user and network namespace (``unshare``), where the only network is a
  loopback interface that is down - no connection can leave the process;
* applies Landlock (Linux 5.13+): files may be created, changed or deleted only inside
  the workspace and the command's temp directory (from Landlock ABI 4 on, TCP connect and
  bind are refused too). Reading is not restricted.

Each guard is probed once (:func:`isolation`); where one is missing the command runs
without it, and the record says so. The program runs in its own session and process
group, with exactly the environment it is given; when it runs past its timeout the
whole group is killed with SIGKILL, and so are any children left behind when it exits.
stdout and stderr are captured separately; only a head and a tail of each are kept.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


KEEP_BYTES = 1 << 20
"""Bytes kept of the start and of the end of each stream."""

# Runs in the launcher: namespaces, then Landlock, then exec.
# argv: net abi keep_lc_ctype dir... -- prog args
_LAUNCHER = r"""
import ctypes, os, sys
args = sys.argv[1:]
sep = args.index("--")
net, abi, dirs, argv = args[0] == "1", int(args[1]), args[3:sep], args[sep + 1:]
if args[2] == "0":
    os.environ.pop("LC_CTYPE", None)  # set by Python's own C-locale coercion, not by the step
libc = ctypes.CDLL(None, use_errno=True)
if net:
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(0x10000000 | 0x40000000) != 0:
        sys.stderr.write("flowrun: unshare failed: %s\n" % os.strerror(ctypes.get_errno())); sys.exit(125)
    for name, text in (("setgroups", "deny"), ("uid_map", "%d %d 1" % (uid, uid)), ("gid_map", "%d %d 1" % (gid, gid))):
        try:
            with open("/proc/self/" + name, "w") as fh: fh.write(text)
        except OSError:
            pass
if abi:
    fs = (1 << 1) | (1 << 4) | (1 << 5) | sum(1 << b for b in range(6, 13))
    if abi >= 2: fs |= 1 << 13
    if abi >= 3: fs |= 1 << 14
    netr = 3 if abi >= 4 else 0
    class Attr(ctypes.Structure):
        _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64)]
    class Beneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed", ctypes.c_uint64), ("fd", ctypes.c_int32)]
    attr = Attr(fs, netr)
    rs = libc.syscall(444, ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(Attr) if netr else 8), ctypes.c_uint32(0))
    if rs < 0:
        sys.stderr.write("flowrun: landlock unavailable\n"); sys.exit(125)
    for path, rights in [(d, fs) for d in dirs] + [("/dev/null", (1 << 1) | ((1 << 14) if abi >= 3 else 0))]:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        if libc.syscall(445, rs, 1, ctypes.byref(Beneath(rights, fd)), 0) < 0:
            sys.stderr.write("flowrun: landlock rule failed\n"); sys.exit(125)
        os.close(fd)
    if libc.prctl(38, 1, 0, 0, 0) < 0 or libc.syscall(446, rs, 0) < 0:
        sys.stderr.write("flowrun: landlock restrict failed\n"); sys.exit(125)
    os.close(rs)
try:
    os.execve(argv[0], argv, os.environ)
except OSError as exc:
    sys.stderr.write("flowrun: cannot run %s: %s\n" % (argv[0], exc.strerror)); sys.exit(127)
"""


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 when unavailable."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        version = libc.syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    except (OSError, AttributeError):
        return 0
    return max(int(version), 0)


@dataclass(frozen=True)
class Isolation:
    """Which guards commands run under on this machine."""

    network_namespace: bool
    landlock_abi: int

    def describe(self) -> dict[str, object]:
        return {"network_namespace": self.network_namespace, "landlock": self.landlock_abi > 0,
                "landlock_network": self.landlock_abi >= 4}


def _probe(net: bool, abi: int) -> bool:
    with tempfile.TemporaryDirectory(prefix="flowrun-shell-probe-") as tmp:
        argv = [sys.executable, "-I", "-S", "-c", _LAUNCHER, "1" if net else "0", str(abi), "0", tmp, "--",
                "/bin/true"]
        try:
            return subprocess.run(argv, capture_output=True, timeout=30, env={}, cwd=tmp).returncode == 0
        except (OSError, subprocess.SubprocessError):
            return False


@lru_cache(maxsize=1)
def isolation() -> Isolation:
    """The guards that work here (probed once per process)."""
    if not sys.platform.startswith("linux"):
        return Isolation(False, 0)
    abi = landlock_abi()
    net = _probe(True, 0)
    if abi and not _probe(net, abi):
        abi = 0
    return Isolation(net, abi)


@dataclass
class Captured:
    """One stream: the kept head and tail, and how many bytes there were in all."""

    head: bytes
    tail: bytes
    total: int

    def text(self) -> tuple[str, int]:
        """The kept text, and how many bytes were dropped from the middle."""
        if self.total <= len(self.head):
            return self.head.decode("utf-8", "replace"), 0
        dropped = self.total - len(self.head) - len(self.tail)
        return (self.head.decode("utf-8", "replace") + "\x00" + self.tail.decode("utf-8", "replace")), dropped


@dataclass
class Completed:
    """What a command did."""

    exit_code: int | None
    stdout: Captured
    stderr: Captured
    timed_out: bool
    duration: float


async def _capture(stream: asyncio.StreamReader) -> Captured:
    head, tail, total = bytearray(), bytearray(), 0
    while True:
        chunk = await stream.read(65536)
        if not chunk:
            return Captured(bytes(head), bytes(tail), total)
        total += len(chunk)
        room = KEEP_BYTES - len(head)
        if room > 0:
            head.extend(chunk[:room])
            chunk = chunk[room:]
        if chunk:
            tail.extend(chunk)
            if len(tail) > KEEP_BYTES:
                del tail[: len(tail) - KEEP_BYTES]


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


async def run_isolated(argv: list[str], cwd: Path, env: dict[str, str], writable: list[Path],
                       timeout: float) -> Completed:
    """Run ``argv`` (its program an absolute path) in ``cwd`` with exactly ``env``."""
    iso = await asyncio.to_thread(isolation)
    launcher = [sys.executable, "-I", "-S", "-c", _LAUNCHER, "1" if iso.network_namespace else "0",
                str(iso.landlock_abi), "1" if "LC_CTYPE" in env else "0", *[str(p) for p in writable], "--", *argv]
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *launcher, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, cwd=str(cwd), env=env, start_new_session=True)
    assert proc.stdout is not None and proc.stderr is not None
    readers = asyncio.gather(_capture(proc.stdout), _capture(proc.stderr))
    timed_out = False
    try:
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except asyncio.TimeoutError:
            timed_out = True
    finally:
        kill_group(proc.pid)  # the program on timeout or cancellation; strays after it exits
        if proc.returncode is None:
            await proc.wait()
    try:
        out, err = await asyncio.wait_for(readers, 5)
    except asyncio.TimeoutError:  # something outside the group holds the pipes open
        readers.cancel()
        out = err = Captured(b"", b"", 0)
    return Completed(proc.returncode, out, err, timed_out, time.monotonic() - started)
