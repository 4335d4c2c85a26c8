"""The step cache from the command line: ``run --cache`` in real processes (concurrent
runs sharing one cache directory), the in-process emulator keyed by its script, and
``flowrun cache stats`` / ``clear``."""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import sys
from pathlib import Path

from cachekit import posted, rows
import pytest
from click.testing import CliRunner
from flowkit import write_flow

from flowrun.cli import main as cli_main

from flowrun.cache_store import CacheStore

WIDE = """
    name: wide
    steps:
      intro: {input: "Intro"}
      many:
        for_each: [a, b, c, d, e, f]
        input: "Item {{ item }} after {{ steps.intro.text }}"
    outputs:
      many: "{{ steps.many | map(attribute='text') | join('|') }}"
"""


def flowrun_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None):
    """``flowrun ARGS`` in this process (click's runner; stdout and stderr apart)."""
    old = os.getcwd()
    os.chdir(cwd or old)
    try:
        return CliRunner().invoke(cli_main, list(args), env=env)
    finally:
        os.chdir(old)


def _run_args(flow, emu, tmp_path, *extra):
    return ["run", str(flow), "--provider", "emulator", "--base-url", emu.base_url, "--json",
            "--run-dir", str(tmp_path / "runs"), *extra]


def _forked_cli(argv: list[str], out: Path, env: dict[str, str]) -> int:
    """``flowrun ARGV`` in a forked copy of this (already warm) interpreter: a real
    separate process with its own SQLite connections; stdout to ``out``."""
    ctx = multiprocessing.get_context("fork")

    def child() -> None:
        os.environ.update(env)
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 1)
        if argv[0] == "cache":
            os.dup2(fd, 2)
        # pytest captures sys.stdout in this process: write to the real descriptors
        sys.stdout = open(1, "w", closefd=False)
        sys.stderr = open(2, "w", closefd=False)
        code = 0
        try:
            from flowrun.cli import main

            main(argv, prog_name="flowrun")
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            sys.stdout.flush()
            os._exit(code)

    proc = ctx.Process(target=child)
    proc.start()
    return proc


@pytest.mark.slow  # five real processes
def test_concurrent_runs_share_a_cache_dir_without_corrupting_it(tmp_path, emu):
    flow = write_flow(tmp_path, WIDE)
    env = {"FLOWRUN_CACHE_DIR": str(tmp_path / "cache")}
    procs = [_forked_cli(_run_args(flow, emu, tmp_path, "--cache"), tmp_path / f"out{n}", env)
             for n in range(4)]
    # and a clear racing them
    clearer = _forked_cli(["cache", "clear", "--older-than", "1h"], tmp_path / "clear", env)
    for proc in [*procs, clearer]:
        proc.join(timeout=120)
        assert proc.exitcode == 0, (tmp_path / "clear").read_text()
    results = [json.loads((tmp_path / f"out{n}").read_text()) for n in range(4)]
    assert [r["status"] for r in results] == ["succeeded"] * 4
    assert len({json.dumps(r["outputs"]) for r in results}) == 1
    store = CacheStore(tmp_path / "cache")
    try:
        assert store.integrity() == "ok"
    finally:
        store.close()
    (entry_count,) = rows(tmp_path / "cache" / "cache.db", "SELECT count(*) AS n FROM entries")
    assert entry_count["n"] == 7  # one per distinct request, however many runs wrote it
    emu.server.emulator.journal.clear()
    again = flowrun_cli(*_run_args(flow, emu, tmp_path, "--cache"), cwd=tmp_path,
                        env={"FLOWRUN_CACHE_DIR": str(tmp_path / "cache")})
    assert again.exit_code == 0, again.stderr
    assert emu.journal() == []
    out = json.loads(again.stdout)
    assert out["outputs"] == results[0]["outputs"]
    assert out["steps"]["intro"]["cached"] and all(i["cached"] for i in out["steps"]["many"]["items"])


def test_no_cache_flag_and_the_in_process_emulator(tmp_path):
    flow = write_flow(tmp_path, WIDE.replace("name: wide", "name: wide\n    defaults: {cache: true}"))
    env = {"FLOWRUN_CACHE_DIR": str(tmp_path / "cache")}
    args = ["run", str(flow), "--provider", "emulator", "--json", "--run-dir", str(tmp_path / "runs")]
    out = flowrun_cli(*args, cwd=tmp_path, env=env)
    assert out.exit_code == 0, out.output
    first = json.loads(out.stdout)
    assert first["status"] == "succeeded" and "cached" not in first["steps"]["intro"]
    # a new emulator on another port, same (no) script: the same answers
    second = json.loads(flowrun_cli(*args, cwd=tmp_path, env=env).stdout)
    assert second["steps"]["intro"].get("cached") is True and second["outputs"] == first["outputs"]
    third = json.loads(flowrun_cli(*args, "--no-cache", cwd=tmp_path, env=env).stdout)
    assert "cached" not in third["steps"]["intro"]
    # a script decides the emulator's answers: another script, another key
    script = tmp_path / "flow.emulator.yaml"
    script.write_text("steps:\n  intro: [\"scripted intro\"]\n")
    fourth = json.loads(flowrun_cli(*args, cwd=tmp_path, env=env).stdout)
    assert "cached" not in fourth["steps"]["intro"]
    assert fourth["outputs"]["many"].count("scripted intro") == 6


def test_cache_stats_and_clear(tmp_path, emu):
    flow = write_flow(tmp_path, WIDE)
    env = {"FLOWRUN_CACHE_DIR": str(tmp_path / "cache")}
    assert flowrun_cli(*_run_args(flow, emu, tmp_path, "--cache"), cwd=tmp_path, env=env).exit_code == 0
    stats = json.loads(flowrun_cli("cache", "stats", "--json", env=env).stdout)
    assert stats["entries"] == 7 and stats["hits"] == 0 and stats["dir"] == str(tmp_path / "cache")
    assert stats["flows"][0]["flow"] == "wide"
    text = flowrun_cli("cache", "stats", env=env).stdout
    assert "7 (0 hits)" in text and str(tmp_path / "cache") in text
    # --older-than keeps what is younger
    kept = json.loads(flowrun_cli("cache", "clear", "--older-than", "7d", "--json", env=env).stdout)
    assert kept == {"entries": 0, "blobs": 0}
    # ... and removes what is older: three answers made eight days ago
    conn = sqlite3.connect(tmp_path / "cache" / "cache.db")
    conn.execute("UPDATE entries SET created = created - 8 * 86400 WHERE key IN"
                 " (SELECT key FROM entries ORDER BY key LIMIT 3)")
    conn.commit()
    conn.close()
    old = json.loads(flowrun_cli("cache", "clear", "--older-than", "7d", "--json", env=env).stdout)
    assert old["entries"] == 3
    assert json.loads(flowrun_cli("cache", "stats", "--json", env=env).stdout)["entries"] == 4
    emu.server.emulator.journal.clear()
    assert flowrun_cli(*_run_args(flow, emu, tmp_path, "--cache"), cwd=tmp_path, env=env).exit_code == 0
    assert len(posted(emu)) == 3  # exactly the cleared answers are asked again
    bad = flowrun_cli("cache", "clear", "--older-than", "soon", env=env)
    assert bad.exit_code == 2 and "not a time to live" in bad.stderr and "Traceback" not in bad.stderr
    done = flowrun_cli("cache", "clear", env=env)
    assert done.exit_code == 0 and "removed 7 entries" in done.stdout
    emu.server.emulator.journal.clear()
    assert flowrun_cli(*_run_args(flow, emu, tmp_path, "--cache"), cwd=tmp_path, env=env).exit_code == 0
    assert len(posted(emu)) == 7  # cleared: everything asked again


def test_unwritable_cache_dir_is_a_usage_error(tmp_path, emu):
    flow = write_flow(tmp_path, WIDE)
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    out = flowrun_cli(*_run_args(flow, emu, tmp_path, "--cache"), cwd=tmp_path,
                      env={"FLOWRUN_CACHE_DIR": str(blocker / "cache")})
    assert out.exit_code == 2 and "cannot open the step cache" in out.stderr
    assert "FLOWRUN_CACHE_DIR" in out.stderr and "Traceback" not in out.stderr
