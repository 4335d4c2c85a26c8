"""The step workspace: the one directory a step's workspace tools (``shell``,
``apply_patch``) may read and change, and the unified diff of what they changed.

``workspace: {dir: PATH, copy: true}`` copies PATH into the run directory first
(``<run>/workspaces/<step>/``), so the user's tree is untouched; ``copy: false`` works on
PATH itself; no ``dir`` is a fresh, empty directory in the run directory.

Every path a tool names is checked by :meth:`Workspace.path`: relative, no ``..``, no NUL,
no backslash, and no symbolic link on the way (an existing link, even one pointing inside,
is refused). Files are then opened relative to directory descriptors opened with
``O_NOFOLLOW`` one component at a time, so a link swapped in between check and use is
still never followed, and a write replaces the directory entry (a temp file renamed over
it), never writing through a hard link into another file.

The diff is taken against a snapshot made when the workspace is opened: file contents up
to :data:`SNAPSHOT_FILE_BYTES` each (larger or binary files show as "Binary files ...
differ"), paths matching ``ignore`` left out.
"""

from __future__ import annotations

import difflib
import errno
import fnmatch
import hashlib
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .errors import ExecutionError

SNAPSHOT_FILE_BYTES = 1 << 20
"""Files larger than this are compared by hash only (shown as binary in the diff)."""
MAX_FILES = 20_000
"""A workspace with more files than this is not snapshotted file by file."""
DEFAULT_IGNORE = (".git", "__pycache__", ".pytest_cache", "*.pyc", ".mypy_cache", ".ruff_cache")
"""Left out of the diff unless the workspace's ``ignore`` says otherwise."""


class PathRefused(Exception):
    """A path a tool named that the workspace does not allow; the message says why."""


@dataclass
class _Entry:
    digest: str
    text: str | None  # None: binary or too large


@dataclass
class Workspace:
    """An opened workspace directory and its starting snapshot."""

    root: Path
    ignore: tuple[str, ...] = DEFAULT_IGNORE
    baseline: dict[str, _Entry] = field(default_factory=dict)

    # ------------------------------------------------------------------ paths

    def path(self, rel: str) -> tuple[str, ...]:
        """The components of ``rel`` inside the workspace, or :class:`PathRefused`."""
        if not isinstance(rel, str) or not rel.strip():
            raise PathRefused("the path is empty")
        if "\x00" in rel:
            raise PathRefused("the path contains a NUL byte")
        if "\\" in rel:
            raise PathRefused(f"{rel!r}: use / to separate directories (no backslashes)")
        if rel.startswith("/") or (len(rel) > 1 and rel[1] == ":"):
            raise PathRefused(f"{rel!r} is an absolute path; give a path relative to the workspace")
        parts = tuple(p for p in rel.split("/") if p not in ("", "."))
        if ".." in parts:
            raise PathRefused(f"{rel!r} goes up with '..'; paths must stay inside the workspace")
        if not parts:
            raise PathRefused(f"{rel!r} names the workspace itself, not a file in it")
        current = self.root
        for i, part in enumerate(parts):
            current = current / part
            try:
                st = os.lstat(current)
            except FileNotFoundError:
                break
            if stat.S_ISLNK(st.st_mode):
                where = "/".join(parts[: i + 1])
                raise PathRefused(f"{where!r} is a symbolic link; the workspace tools do not follow links")
        return parts

    def _open_dir(self, parts: tuple[str, ...], create: bool) -> int:
        """A descriptor of the directory ``parts`` (created when ``create``), each step
        opened with O_NOFOLLOW relative to the last."""
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for part in parts:
                try:
                    nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(part, 0o755, dir_fd=fd)
                    nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise PathRefused(f"{part!r} is not a directory (or is a link)") from None
                    raise
                os.close(fd)
                fd = nxt
            return fd
        except BaseException:
            os.close(fd)
            raise

    # ------------------------------------------------------------------ file access

    def exists(self, rel: str) -> bool:
        parts = self.path(rel)
        return os.path.lexists(self.root.joinpath(*parts))

    def read_text(self, rel: str) -> str:
        parts = self.path(rel)
        try:
            dfd = self._open_dir(parts[:-1], create=False)
        except FileNotFoundError:
            raise PathRefused(f"{rel!r} does not exist") from None
        try:
            try:
                fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
            except FileNotFoundError:
                raise PathRefused(f"{rel!r} does not exist") from None
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise PathRefused(f"{rel!r} is a symbolic link") from None
                raise
            with os.fdopen(fd, "rb") as fh:
                if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                    raise PathRefused(f"{rel!r} is not a regular file")
                data = fh.read()
        finally:
            os.close(dfd)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise PathRefused(f"{rel!r} is not UTF-8 text; apply_patch edits text files") from None

    def write_text(self, rel: str, text: str) -> None:
        """Create or replace ``rel`` (its directories are made as needed)."""
        parts = self.path(rel)
        dfd = self._open_dir(parts[:-1], create=True)
        tmp = f".{parts[-1]}.flowrun-{os.getpid()}.tmp"
        try:
            mode = 0o644
            try:
                st = os.stat(parts[-1], dir_fd=dfd, follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    raise PathRefused(f"{rel!r} is a symbolic link")
                if not stat.S_ISREG(st.st_mode):
                    raise PathRefused(f"{rel!r} exists and is not a regular file")
                mode = stat.S_IMODE(st.st_mode)
            except FileNotFoundError:
                pass
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode,
                         dir_fd=dfd)
            with os.fdopen(fd, "wb") as fh:
                fh.write(text.encode("utf-8"))
            os.replace(tmp, parts[-1], src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dfd)
            except OSError:
                pass
            raise
        finally:
            os.close(dfd)

    def delete(self, rel: str) -> None:
        parts = self.path(rel)
        try:
            dfd = self._open_dir(parts[:-1], create=False)
        except FileNotFoundError:
            raise PathRefused(f"{rel!r} does not exist") from None
        try:
            try:
                st = os.stat(parts[-1], dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                raise PathRefused(f"{rel!r} does not exist") from None
            if not stat.S_ISREG(st.st_mode):
                raise PathRefused(f"{rel!r} is not a regular file")
            os.unlink(parts[-1], dir_fd=dfd)
        finally:
            os.close(dfd)

    # ------------------------------------------------------------------ snapshot and diff

    def ignored(self, rel: str) -> bool:
        parts = rel.split("/")
        return any(fnmatch.fnmatch(p, pat) for pat in self.ignore for p in parts) or any(
            fnmatch.fnmatch(rel, pat) for pat in self.ignore)

    def files(self) -> Iterator[str]:
        """Relative paths of the regular files (and links) below the root, not ignored,
        sorted; links are listed but never followed."""
        out: list[str] = []
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            rel_dir = os.path.relpath(dirpath, self.root)
            rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
            dirnames[:] = sorted(d for d in dirnames if not self.ignored(rel_dir + d))
            for name in filenames:
                rel = rel_dir + name
                if not self.ignored(rel):
                    out.append(rel)
            # links to directories appear in dirnames; list them as entries too
            for d in list(dirnames):
                if os.path.islink(os.path.join(dirpath, d)):
                    out.append(rel_dir + d)
            if len(out) > MAX_FILES:
                break
        return iter(sorted(out))

    def _entry(self, rel: str) -> _Entry:
        full = self.root / rel
        st = os.lstat(full)
        if stat.S_ISLNK(st.st_mode):
            target = os.readlink(full)
            return _Entry("link:" + target, f"-> {target}\n")
        if st.st_size > SNAPSHOT_FILE_BYTES:
            h = hashlib.sha256()
            with open(full, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 16), b""):
                    h.update(chunk)
            return _Entry(h.hexdigest(), None)
        data = full.read_bytes()
        try:
            text: str | None = data.decode("utf-8")
            if "\x00" in text:
                text = None
        except UnicodeDecodeError:
            text = None
        return _Entry(hashlib.sha256(data).hexdigest(), text)

    def snapshot(self) -> dict[str, _Entry]:
        out = {}
        for rel in self.files():
            try:
                out[rel] = self._entry(rel)
            except OSError:
                continue
        return out

    def diff(self) -> str:
        """A unified diff (``a/`` and ``b/`` prefixes, as git writes) from the snapshot
        taken at the start to the workspace as it is now."""
        now = self.snapshot()
        chunks: list[str] = []
        for rel in sorted(set(self.baseline) | set(now)):
            old, new = self.baseline.get(rel), now.get(rel)
            if old is not None and new is not None and old.digest == new.digest:
                continue
            if (old is not None and old.text is None) or (new is not None and new.text is None):
                a = f"a/{rel}" if old is not None else "/dev/null"
                b = f"b/{rel}" if new is not None else "/dev/null"
                chunks.append(f"Binary files {a} and {b} differ\n")
                continue
            before = (old.text if old else "").splitlines(keepends=True)
            after = (new.text if new else "").splitlines(keepends=True)
            lines = list(difflib.unified_diff(
                before, after, f"a/{rel}" if old else "/dev/null", f"b/{rel}" if new else "/dev/null"))
            for line in lines:
                chunks.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
        return "".join(chunks)


# ---------------------------------------------------------------------- opening for a step


def _source_dir(sc: Any, given: str) -> Path:
    path = Path(given).expanduser()
    candidates = [path] if path.is_absolute() else [sc.run.cwd / path, sc.base_dir / path]
    for cand in candidates:
        if cand.is_dir():
            return cand.resolve()
    looked = " and ".join(str(c) for c in candidates)
    raise ExecutionError(f"workspace: {given}: no such directory (looked in {looked})", sc.step_id)


def open_workspace(sc: Any) -> Workspace:
    """The step's workspace, made and snapshotted on first use (kept in ``sc.state``)."""
    ws = sc.state.get("workspace")
    if ws is not None:
        return ws
    spec = sc.step.workspace
    from .store import safe_name

    fresh = sc.run.store.dir / "workspaces" / safe_name(sc.key, "step")
    ignore = tuple(spec.ignore) if spec is not None and spec.ignore is not None else DEFAULT_IGNORE
    if spec is None or spec.dir is None:
        fresh.mkdir(parents=True, exist_ok=True)
        root = fresh
    else:
        source = _source_dir(sc, sc.render(spec.dir))
        if spec.copy_:
            if fresh.exists():
                shutil.rmtree(fresh)
            fresh.parent.mkdir(parents=True, exist_ok=True)
            # symlinks are copied as links (never followed); the tools refuse them anyway
            shutil.copytree(source, fresh, symlinks=True)
            root = fresh
        else:
            root = source
    ws = Workspace(root.resolve(), ignore)
    ws.baseline = ws.snapshot()
    sc.state["workspace"] = ws
    sc.result.workspace = str(ws.root)
    return ws


def uses_workspace(sc: Any) -> bool:
    """Whether the step has a workspace: ``workspace:`` given, or a workspace tool."""
    if getattr(sc.step, "workspace", None) is not None:
        return True
    from .spec import tool_kind
    from .tools import resolve

    return any(tool_kind(resolve(sc, ref)[1]) in WORKSPACE_TOOL_KINDS for ref in sc.step.tools)


WORKSPACE_TOOL_KINDS = ("shell", "apply_patch")


def finish_workspace(sc: Any) -> None:
    """Record the diff of the step's workspace (if it opened one)."""
    ws = sc.state.get("workspace")
    if ws is not None:
        sc.result.diff = ws.diff()
