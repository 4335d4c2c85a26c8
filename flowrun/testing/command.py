"""``flowrun test``: discover test files, run their cases, report, exit 1 on a failure."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click


@click.command("test")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("-k", "pattern", metavar="PATTERN", help="Only cases whose FILE::NAME contains PATTERN.")
@click.option("--junit", "junit", type=click.Path(dir_okay=False), help="Write JUnit XML here (for CI).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with every case's result.")
@click.option("--update", is_flag=True,
              help="Rewrite failing `equals` snapshots from the actual values, and record anew the "
                   "cassettes whose requests no longer match (see README, Testing your flows).")
@click.option("-j", "--jobs", type=click.IntRange(1), default=4, show_default=True,
              help="Cases run at once.")
@click.option("--run-dir", type=click.Path(file_okay=False),
              help="Keep the cases' run records here (default: a temporary directory).")
def test_command(paths: tuple[str, ...], pattern: str | None, junit: str | None, as_json: bool,
                 update: bool, jobs: int, run_dir: str | None) -> None:
    """Run flow tests (*.test.yaml) offline on the built-in emulator.

    PATHS are test files or folders (default: the current folder). Exit code: 0 every case
    passed, 1 a case failed, 2 a test file or flow is invalid.
    """
    import asyncio

    from ..errors import FlowrunError, SpecError
    from ..plan import load_plan
    from .junit import write_junit
    from .load import discover, iter_cases, load_tests
    from .run_case import PASSED, CaseResult, run_all

    problems: list[str] = []
    selected: list[Any] = []
    replays: dict[tuple[str, str], Any] = {}
    files = discover(list(paths))
    for path in files:
        try:
            tests = load_tests(path)
            plan = load_plan(tests.flow_path)
        except SpecError as exc:
            problems.append(exc.format())
            continue
        for name, case in iter_cases(tests, pattern):
            if case.recording is not None:
                from .cassette import Replay

                try:
                    replays[(tests.name, name)] = Replay.load(tests.path.parent / case.recording)
                except FlowrunError as exc:
                    problems.append(exc.format())
                    continue
            selected.append((tests, plan, name, case))
    if problems:
        if as_json:
            click.echo(json.dumps({"status": "invalid", "errors": problems}, ensure_ascii=False))
        for p in problems:
            click.echo(p, err=True)
        sys.exit(2)
    if not files:
        message = "no test files (*.test.yaml) found"
        if as_json:
            click.echo(json.dumps({"status": "error", "error": message}))
        click.echo(message + "; write FLOW.test.yaml beside a flow (see `flowrun schema --tests`)", err=True)
        sys.exit(2)

    def show(res: CaseResult) -> None:
        if as_json:
            return
        mark = {"passed": "PASS", "failed": "FAIL", "error": "ERROR"}[res.status]
        click.echo(f"{mark:5} {res.id} ({res.duration_s:.2f}s)")
        for f in res.failures:
            click.echo(f"      {f.where}: {f.message}")
            diff = f.diff()
            if diff:
                click.echo("\n".join("        " + line for line in diff.splitlines()))
        if res.error:
            click.echo("      " + res.error.replace("\n", "\n      "))

    results = asyncio.run(run_all(selected, jobs=jobs, run_dir=Path(run_dir) if run_dir else None,
                                  replays=replays, on_result=show))
    if update:
        results = _rerecord(results, selected, replays, jobs, run_dir, as_json, show)
        _update(results, selected, as_json)
        for res in results:  # an updated snapshot is no longer a failure
            res.failures = [f for f in res.failures if not (f.path and f.path[-1] == "equals")]
            if res.status == "failed" and not res.failures:
                res.status = PASSED
    if junit:
        write_junit(results, junit)
    passed = sum(r.status == PASSED for r in results)
    summary = {"passed": passed, "failed": sum(r.status == "failed" for r in results),
               "errors": sum(r.status == "error" for r in results), "total": len(results)}
    ok = passed == len(results)
    if as_json:
        click.echo(json.dumps({"status": "passed" if ok else "failed", "summary": summary,
                               "cases": [r.to_dict() for r in results]}, ensure_ascii=False, default=str))
    else:
        click.echo(f"{passed} passed, {summary['failed']} failed, {summary['errors']} errors "
                   f"in {len(files)} file(s)")
    sys.exit(0 if ok else 1)


def _update(results: list[Any], selected: list[Any], as_json: bool) -> None:
    from .snapshots import update_file

    by_file: dict[Path, list[Any]] = {}
    for res, (tests, *_rest) in zip(results, selected):
        by_file.setdefault(tests.path, []).extend(res.failures)
    for path, failures in by_file.items():
        n = update_file(path, failures)
        if n:
            stream = sys.stderr if as_json else sys.stdout
            for f in failures:
                if f.path and f.path[-1] == "equals" and f.diff():
                    stream.write(f"{f.where}:\n{f.diff()}\n")
            stream.write(f"updated {n} snapshot(s) in {path}\n")


def _rerecord(results: list[Any], selected: list[Any], replays: dict[tuple[str, str], Any], jobs: int,
              run_dir: str | None, as_json: bool, show: Any) -> list[Any]:
    """Record anew every case whose requests no longer match its cassette, print what
    changed, then replay the case from the new cassette; returns the results updated."""
    import asyncio
    import tempfile

    from .cassette import Replay
    from .rerecord import rerecord, stale
    from .run_case import run_case

    todo = [i for i, res in enumerate(results) if stale(res)]
    if not todo:
        return results
    stream = sys.stderr if as_json else sys.stdout
    results = list(results)

    async def again(root: Path) -> None:
        gate = asyncio.Semaphore(jobs)

        async def one(i: int) -> None:
            tests, plan, name, case = selected[i]
            key = (tests.name, name)
            async with gate:
                done = await rerecord(tests, plan, name, case, replays[key], root)
            lines = [f"{results[i].id}: the requests no longer match {done.path}"]
            lines += ["  " + f.message.replace("\n", "\n  ") for f in results[i].failures
                      if f.path and f.path[-1] == "recording"]
            if done.error:
                lines.append(f"  not re-recorded: {done.error}")
                stream.write("\n".join(lines) + "\n")
                return
            lines.append(f"  re-recorded {done.path} ({done.turns} turns) on {done.source}"
                         + (f"\n  ({done.note})" if done.note else ""))
            stream.write("\n".join(lines) + "\n")
            replays[key] = Replay.load(done.path)
            async with gate:
                results[i] = await run_case(tests, plan, name, case, root, replays[key])
            show(results[i])

        await asyncio.gather(*(one(i) for i in todo))

    with tempfile.TemporaryDirectory(prefix="flowrun-rerecord-") as tmp:
        asyncio.run(again(Path(run_dir) if run_dir else Path(tmp)))
    return results
