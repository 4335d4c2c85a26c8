"""The owner lock of a run: the process running (or resuming) a run holds an exclusive
``flock`` on ``<run dir>/.owner.lock`` while it does.

The kernel drops the lock when the process dies, however it dies (``kill -9`` too), so a
reader that can take the lock knows nobody runs the run any more - also where a pid
cannot be told apart from a later process's (no ``/proc``). And two processes never run
one run at once: a second ``flowrun resume`` of a run in progress is refused.
Without ``fcntl`` (Windows) there is no lock and readers go by the pid alone.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".owner.lock"


class OwnerLock:
    """This process's hold on one run (see the module docstring)."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self, wait: float = 2.0) -> bool:
        """Take the lock (a reader holds it only for an instant: retried for ``wait``
        seconds); False if another process runs the run."""
        if fcntl is None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(0.02)
                continue
            self._fd = fd
            return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file releases the lock
            self._fd = None


def own(run_dir: Path, run_id: str) -> OwnerLock:
    """Take the owner lock of run ``run_id`` for this process (release it when the run
    ends); a usage error if another process runs the run or the directory is not writable."""
    from .errors import UsageError

    owner = OwnerLock(run_dir)
    try:
        taken = owner.acquire()
    except OSError as exc:
        raise UsageError(f"cannot write the run directory {run_dir}: {exc.strerror or exc}",
                         hint="choose another --run-dir, or check its permissions") from None
    if not taken:
        raise UsageError(f"run {run_id} is being run by another process",
                         hint="wait for it to finish, or stop it, then resume")
    return owner


def held(run_dir: str | Path | None) -> bool | None:
    """Whether a live process holds the run's owner lock: True / False, or None when it
    cannot be told (no lock file, no ``fcntl``)."""
    if fcntl is None or not run_dir:
        return None
    try:
        fd = os.open(Path(run_dir) / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
