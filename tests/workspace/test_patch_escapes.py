"""apply_patch through a real flow on the emulator: every path-escape attempt is refused
back to the model with its reason, and nothing is written outside the workspace."""
from __future__ import annotations

import os
from pathlib import Path

from flowkit import record, run_flow, write

FLOW = """
name: escapes
inputs:
  project: {type: string}
steps:
  edit:
    workspace: {dir: "{{ inputs.project }}", copy: COPY}
    input: "edit the files"
    tools: [apply_patch]
outputs:
  diff: "{{ steps.edit.diff }}"
"""


def _tree(root: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else b"", p.lstat().st_mtime_ns)
            for p in root.rglob("*")}


def _setup(tmp_path: Path) -> tuple[Path, Path]:
    outside = tmp_path / "outside"
    write(outside / "secret.txt", "do not touch\n")
    project = tmp_path / "project"
    write(project / "ok.txt", "one\ntwo\n")
    os.symlink(outside, project / "link_dir")
    os.symlink(outside / "secret.txt", project / "link_file")
    return outside, project


def _attempts(outside: Path) -> list[dict]:
    change = "-one\n+ONE\n"
    return [
        {"type": "create_file", "path": str(outside / "abs.txt"), "diff": "+x\n"},
        {"type": "create_file", "path": "../outside/up.txt", "diff": "+x\n"},
        {"type": "create_file", "path": "sub/../../../outside/up2.txt", "diff": "+x\n"},
        {"type": "create_file", "path": "link_dir/via_link.txt", "diff": "+x\n"},
        {"type": "update_file", "path": "link_file", "diff": "-do not touch\n+touched\n"},
        {"type": "delete_file", "path": "link_file"},
        {"type": "update_file", "path": "ok.txt", "diff": "*** Move to: ../moved.txt\n" + change},
        {"type": "update_file", "path": "ok.txt", "diff": f"*** Move to: {outside}/moved.txt\n" + change},
        {"type": "update_file", "path": "ok.txt", "diff": "*** Move to: link_dir/moved.txt\n" + change},
        {"type": "delete_file", "path": str(outside / "secret.txt")},
    ]


def _run(tmp_path, emu, copy: bool):
    outside, project = _setup(tmp_path)
    before_outside, before_project = _tree(outside), _tree(project)
    attempts = _attempts(outside)
    emu.script({"steps": {"edit": [{"apply_patch_call": attempts}, {"default_rule": True}]}})
    result = run_flow(tmp_path, emu, FLOW.replace("COPY", "true" if copy else "false"),
                      {"project": str(project)})
    assert result.status == "succeeded", result.error
    calls = record(result)["steps"]["edit"]["tool_calls"]
    assert [c["status"] for c in calls] == ["failed"] * len(attempts)
    assert _tree(outside) == before_outside  # not one byte, not one mtime
    assert _tree(project) == before_project
    workspaces = result.run_dir / "workspaces"
    assert not (tmp_path / "moved.txt").exists() and not (workspaces / "moved.txt").exists()
    assert result.outputs["diff"] == ""
    return calls, emu.outputs("edit", "apply_patch_call_output")


def test_every_escape_is_refused_on_a_copy(tmp_path, emu):
    calls, sent = _run(tmp_path, emu, copy=True)
    reasons = [c["error"] for c in calls]
    assert "is an absolute path" in reasons[0]
    assert "goes up with '..'" in reasons[1] and "goes up with '..'" in reasons[2]
    assert "'link_dir' is a symbolic link" in reasons[3]
    assert "'link_file' is a symbolic link" in reasons[4]
    assert "not a regular file" in reasons[5] or "symbolic link" in reasons[5]
    assert "goes up with '..'" in reasons[6] and "absolute path" in reasons[7]
    assert "'link_dir' is a symbolic link" in reasons[8]
    # the model is told each reason, as failed outputs of its calls
    assert [o["status"] for o in sent] == ["failed"] * len(calls)
    assert [o["call_id"] for o in sent] == [c["call_id"] for c in calls]
    assert all("was not applied" in o["output"] for o in sent)


def test_every_escape_is_refused_in_place(tmp_path, emu):
    """copy: false works on the directory itself: the same attempts, the same refusals."""
    calls, _ = _run(tmp_path, emu, copy=False)
    assert all(c["status"] == "failed" for c in calls)


def test_patches_apply_inside_and_the_diff_shows_them(tmp_path, emu):
    project = tmp_path / "project"
    write(project / "ok.txt", "one\ntwo\n")
    write(project / "old.txt", "bye\n")
    emu.script({"steps": {"edit": [
        {"apply_patch_call": [
            {"type": "update_file", "path": "ok.txt", "diff": "*** Move to: docs/ok.md\n one\n-two\n+TWO\n"},
            {"type": "create_file", "path": "new/deep/file.txt", "diff": "+hello\n"},
            {"type": "delete_file", "path": "old.txt"},
            {"type": "create_file", "path": "new/deep/file.txt", "diff": "+again\n"},
            {"type": "update_file", "path": "missing.txt", "diff": "-a\n+b\n"},
        ]},
        {"default_rule": True},
    ]}})
    result = run_flow(tmp_path, emu, FLOW.replace("COPY", "true"), {"project": str(project)})
    assert result.status == "succeeded", result.error
    calls = record(result)["steps"]["edit"]["tool_calls"]
    assert [c["status"] for c in calls] == ["completed", "completed", "completed", "failed", "failed"]
    assert "already exists; use update_file" in calls[3]["error"]
    assert "'missing.txt' does not exist" in calls[4]["error"]
    diff = result.outputs["diff"]
    assert "--- /dev/null\n+++ b/docs/ok.md\n@@ -0,0 +1,2 @@\n+one\n+TWO\n" in diff
    assert "--- a/ok.txt\n+++ /dev/null\n" in diff and "--- a/old.txt\n+++ /dev/null\n" in diff
    assert "+++ b/new/deep/file.txt\n@@ -0,0 +1 @@\n+hello\n" in diff
    assert (project / "ok.txt").read_text() == "one\ntwo\n" and (project / "old.txt").exists()
    ws = Path(record(result)["steps"]["edit"]["workspace"])
    assert ws.parent == result.run_dir / "workspaces" and (ws / "docs" / "ok.md").read_text() == "one\nTWO\n"
    assert "[emulator] tool results: completed: Updated ok.txt and moved it to docs/ok.md" in \
        result.steps["edit"].result.text
