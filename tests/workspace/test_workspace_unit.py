"""The workspace's containment checks and its diff, on real directories."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from flowrun.workspace import PathRefused, Workspace


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Workspace, Path]:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("outside\n")
    root = tmp_path / "ws"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("one\ntwo\n")
    os.symlink(outside, root / "link_dir")
    os.symlink(outside / "secret.txt", root / "link_file")
    os.symlink(root / "sub", root / "inner_link")  # even a link that stays inside is refused
    ws = Workspace(root.resolve())
    ws.baseline = ws.snapshot()
    return ws, outside


@pytest.mark.parametrize("path, reason", [
    ("/etc/passwd", "absolute path"),
    ("../outside/x", "goes up with '..'"),
    ("sub/../../outside/x", "goes up with '..'"),
    ("link_dir/x", "symbolic link"),
    ("link_file", "symbolic link"),
    ("inner_link/x", "symbolic link"),
    ("C:/x", "absolute path"),
    ("sub\\..\\..\\x", "backslashes"),
    ("a\x00b", "NUL"),
    ("", "empty"),
    (".", "the workspace itself"),
])
def test_paths_that_leave_or_bend_the_workspace_are_refused(layout, path, reason):
    ws, outside = layout
    before = {p: p.read_bytes() for p in outside.rglob("*")}
    for op in (ws.path, ws.read_text, lambda p: ws.write_text(p, "x"), ws.delete):
        with pytest.raises(PathRefused, match=reason):
            op(path)
    assert {p: p.read_bytes() for p in outside.rglob("*")} == before


def test_writes_replace_the_entry_and_never_write_through_a_hard_link(layout, tmp_path):
    ws, outside = layout
    os.link(outside / "secret.txt", ws.root / "hard.txt")
    ws.write_text("hard.txt", "changed\n")
    assert (outside / "secret.txt").read_text() == "outside\n"
    assert (ws.root / "hard.txt").read_text() == "changed\n"


def test_the_diff_shows_created_changed_and_deleted_files(layout):
    ws, _ = layout
    ws.write_text("a.txt", "one\n2\n")
    ws.write_text("sub/new.txt", "fresh\n")
    (ws.root / "__pycache__").mkdir()
    (ws.root / "__pycache__" / "x.pyc").write_bytes(b"\x00\x01")
    (ws.root / "blob.bin").write_bytes(b"\x00\xff")
    diff = ws.diff()
    assert "--- a/a.txt\n+++ b/a.txt\n@@ -1,2 +1,2 @@\n one\n-two\n+2\n" in diff
    assert "--- /dev/null\n+++ b/sub/new.txt\n@@ -0,0 +1 @@\n+fresh\n" in diff
    assert "Binary files /dev/null and b/blob.bin differ\n" in diff
    assert "__pycache__" not in diff
    ws.delete("sub/new.txt")
    ws.delete("a.txt")
    diff = ws.diff()
    assert "--- a/a.txt\n+++ /dev/null\n" in diff and "sub/new.txt" not in diff
