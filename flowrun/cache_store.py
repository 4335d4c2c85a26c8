"""The step cache on disk: one directory per user, shared by every run and every process.

Layout of ``$FLOWRUN_CACHE_DIR`` (default: the platform's cache directory, e.g.
``~/.cache/flowrun``)::

    cache.db                   SQLite (WAL, busy timeout): entries and the blobs they use
    blobs/ab/abcdef...         artifacts, content-addressed by their sha256

- ``entries``: key, created, last used, hits, flow, step, run id, size, and the value
  (the step's result, its responses, its artifacts by digest) as masked JSON.
- ``entry_blobs``: which blobs an entry needs.

Concurrency: every write is one short transaction; readers never block the writer. A
blob is written to a temporary file and renamed into place before the row naming it is
committed, so a reader never sees half a file; two runs writing the same blob write the
same bytes. ``clear`` deletes rows first, then the blobs no row names; an entry whose blob
went missing (a clear racing a write) reads as a miss and is dropped.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any, Mapping

from .errors import UsageError

DB_NAME = "cache.db"
BLOBS = "blobs"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY, created REAL NOT NULL, used REAL, hits INTEGER NOT NULL DEFAULT 0,
    flow TEXT, step TEXT, run_id TEXT, bytes INTEGER NOT NULL DEFAULT 0, value TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_by_created ON entries(created);
CREATE TABLE IF NOT EXISTS entry_blobs (
    key TEXT NOT NULL, digest TEXT NOT NULL, PRIMARY KEY (key, digest)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entry_blobs_by_digest ON entry_blobs(digest);
"""


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$FLOWRUN_CACHE_DIR``, else the platform's user cache directory + ``flowrun``."""
    env = os.environ if environ is None else environ
    if env.get("FLOWRUN_CACHE_DIR"):
        return Path(env["FLOWRUN_CACHE_DIR"]).expanduser()
    home = Path.home()
    if sys.platform == "darwin":
        return home / "Library" / "Caches" / "flowrun"
    if os.name == "nt":
        base = env.get("LOCALAPPDATA") or str(home / "AppData" / "Local")
        return Path(base) / "flowrun" / "Cache"
    return Path(env.get("XDG_CACHE_HOME") or home / ".cache") / "flowrun"


def file_digest(path: Path) -> str:
    """The sha256 of a file's bytes, as hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class CacheStore:
    """One connection to a cache directory; safe to share between threads."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._lock = threading.RLock()
        try:
            (self.root / BLOBS).mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(str(self.root / DB_NAME), timeout=30,
                                        isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA busy_timeout=30000")
            self.conn.executescript(_SCHEMA)
            self.conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except (OSError, sqlite3.Error) as exc:
            raise UsageError(f"cannot open the step cache in {self.root}: {exc}",
                             hint="set FLOWRUN_CACHE_DIR to a writable directory, or run "
                                  "with --no-cache") from None
        self.conn.row_factory = sqlite3.Row

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    # -- blobs ---------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        return self.root / BLOBS / digest[:2] / digest

    def add_blob(self, source: Path) -> str:
        """Copy a file into the blob store (atomically, once per content); its digest."""
        digest = file_digest(source)
        target = self.blob_path(digest)
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f"{digest}.{os.getpid()}.{threading.get_ident()}.tmp")
            shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        return digest

    # -- entries -------------------------------------------------------------------------
    def get(self, key: str, ttl: float | None) -> dict[str, Any] | None:
        """The value stored under ``key``, if younger than ``ttl`` seconds and whole."""
        with self._lock:
            row = self.conn.execute("SELECT created, value FROM entries WHERE key=?",
                                    (key,)).fetchone()
            if row is None:
                return None
            if ttl is not None and row["created"] + ttl <= time.time():
                return None
            digests = [r[0] for r in self.conn.execute(
                "SELECT digest FROM entry_blobs WHERE key=?", (key,))]
            if not all(self.blob_path(d).is_file() for d in digests):
                self._delete([key])
                return None
            self.conn.execute("UPDATE entries SET hits=hits+1, used=? WHERE key=?",
                              (time.time(), key))
        value = json.loads(row["value"])
        value["created"] = row["created"]
        return value

    def put(self, key: str, value: dict[str, Any], digests: list[str], *, flow: str | None,
            step: str, run_id: str | None) -> None:
        """Store ``value`` under ``key`` (replacing an older one); its blobs must be in."""
        text = json.dumps(value, ensure_ascii=True, default=str, separators=(",", ":"))
        size = len(text) + sum(self.blob_path(d).stat().st_size for d in set(digests))
        now = time.time()
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self.conn.execute("DELETE FROM entry_blobs WHERE key=?", (key,))
                self.conn.execute(
                    "INSERT OR REPLACE INTO entries (key, created, used, hits, flow, step, run_id,"
                    " bytes, value) VALUES (?,?,?,0,?,?,?,?,?)",
                    (key, now, now, flow, step, run_id, size, text))
                self.conn.executemany("INSERT OR IGNORE INTO entry_blobs (key, digest) VALUES (?,?)",
                                      [(key, d) for d in set(digests)])
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def _delete(self, keys: list[str]) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            for key in keys:
                self.conn.execute("DELETE FROM entries WHERE key=?", (key,))
                self.conn.execute("DELETE FROM entry_blobs WHERE key=?", (key,))
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def clear(self, older_than: float | None = None) -> dict[str, int]:
        """Remove every entry (or those created more than ``older_than`` seconds ago),
        then the blobs no entry needs. Returns the counts removed."""
        with self._lock:
            if older_than is None:
                keys = [r[0] for r in self.conn.execute("SELECT key FROM entries")]
            else:
                keys = [r[0] for r in self.conn.execute(
                    "SELECT key FROM entries WHERE created <= ?", (time.time() - older_than,))]
            self._delete(keys)
            used = {r[0] for r in self.conn.execute("SELECT DISTINCT digest FROM entry_blobs")}
        blobs = 0
        for path in (self.root / BLOBS).glob("*/*"):
            if path.name.endswith(".tmp") or path.name in used:
                continue  # a .tmp is a write in progress in another run
            try:
                path.unlink()
                blobs += 1
            except FileNotFoundError:
                pass
        with self._lock:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return {"entries": len(keys), "blobs": blobs}

    def stats(self) -> dict[str, Any]:
        """Entries, hits, sizes and ages, overall and per flow."""
        with self._lock:
            total = dict(self.conn.execute(
                "SELECT count(*) AS entries, coalesce(sum(hits), 0) AS hits,"
                " coalesce(sum(bytes), 0) AS bytes, min(created) AS oldest,"
                " max(created) AS newest FROM entries").fetchone())
            flows = [dict(r) for r in self.conn.execute(
                "SELECT flow, count(*) AS entries, coalesce(sum(hits), 0) AS hits,"
                " coalesce(sum(bytes), 0) AS bytes FROM entries GROUP BY flow ORDER BY flow")]
        blobs = [p for p in (self.root / BLOBS).glob("*/*") if not p.name.endswith(".tmp")]
        disk = sum(p.stat().st_size for p in blobs)
        for name in (DB_NAME, DB_NAME + "-wal"):
            if (self.root / name).is_file():
                disk += (self.root / name).stat().st_size
        return {"dir": str(self.root), **total, "blobs": len(blobs), "disk_bytes": disk,
                "flows": flows}

    def integrity(self) -> str:
        with self._lock:
            return self.conn.execute("PRAGMA integrity_check").fetchone()[0]
