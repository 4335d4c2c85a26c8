"""Fuzzing the shipped example flows: each example, mutated at the byte level (flips,
truncations, YAML metacharacters, duplicated lines, aliases and alias bombs, deep nesting,
control characters, bytes that are not UTF-8), then loaded and planned as ``flowrun
validate`` does. Whatever the bytes: no exception but SpecError, none slower than 10 s,
and every problem has its file, line and column.

About 300 examples in total (``EXAMPLES`` per test below); about 15-25 s on a busy machine.
"""

from __future__ import annotations

import shutil
import signal
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

import pytest
from flowkit import EXAMPLES, example_flows
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowrun.errors import SpecError
from flowrun.plan import load_plan

FLOWS = example_flows()
HANG_SECONDS = 10
SETTINGS = settings(
    max_examples=150,
    deadline=timedelta(seconds=HANG_SECONDS),
    derandomize=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture],
)

# what gets inserted: YAML syntax, templates, and the inputs that used to break the loader
METACHARS = [b":", b": ", b"- ", b"-", b"{", b"}", b"[", b"]", b",", b"'", b'"', b"#", b"&a ",
             b"*a", b"!", b"!!binary ", b"!!python/object ", b"|", b">", b"? ", b"%YAML 1.1\n",
             b"---\n", b"...\n", b"<<: *a\n", b"\t", b"\n", b"\r", b"{{", b"}}", b"{%", b"%}",
             b"\\", b"@", b"`"]
CONTROL = [b"\x00", b"\x01", b"\x07", b"\x1b", b"\x7f", "\u0085".encode(), "\ufeff".encode(),
           "\ufffe".encode(), "\uffff".encode(), "\u2028".encode(), b'"\\udc80"', b'"\\ud800"']
NOT_UTF8 = [b"\xff", b"\xfe", b"\xc3", b"\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf"]


def _bomb(levels: int, width: int) -> bytes:
    rows = [b"b0: &b0 [x, x, x]"]
    for i in range(1, levels):
        rows.append(b"b%d: &b%d [" % (i, i) + b", ".join([b"*b%d" % (i - 1)] * width) + b"]")
    return b"\n".join(rows) + b"\n"


STRUCTURES = st.one_of(
    st.integers(1, 3000).map(lambda n: b"[" * n),
    st.integers(1, 2000).map(lambda n: b"{a: " * n),
    st.integers(1, 400).map(lambda n: b"".join(b"  " * i + b"k:\n" for i in range(n))),
    st.integers(1, 2000).map(lambda n: b"- " * n),
    st.tuples(st.integers(2, 9), st.integers(2, 9)).map(lambda t: _bomb(*t)),
    st.just(b"loop: &l [*l]\n"),
    st.just(b"x: " + b"9" * 5000 + b"\n"),
)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[Path, bytes]:
    """An example flow and its bytes after 1-4 mutations."""
    path = draw(st.sampled_from(FLOWS))
    data = path.read_bytes()
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["flip", "truncate", "insert", "control", "not_utf8",
                                   "duplicate_line", "structure", "delete"]))
        if op == "flip" and data:
            i = min(at, len(data) - 1)
            data = data[:i] + bytes([data[i] ^ (1 << draw(st.integers(0, 7)))]) + data[i + 1:]
        elif op == "truncate":
            data = data[:at]
        elif op == "insert":
            data = data[:at] + draw(st.sampled_from(METACHARS)) + data[at:]
        elif op == "control":
            data = data[:at] + draw(st.sampled_from(CONTROL)) + data[at:]
        elif op == "not_utf8":
            data = data[:at] + draw(st.sampled_from(NOT_UTF8)) + data[at:]
        elif op == "duplicate_line":
            lines = data.splitlines(keepends=True) or [b""]
            i = draw(st.integers(0, len(lines) - 1))
            lines.insert(i, lines[i])
            data = b"".join(lines)
        elif op == "structure":
            start = data.rfind(b"\n", 0, at) + 1  # at a line start, or inline after a key
            cut = at if draw(st.booleans()) else start
            data = data[:cut] + draw(STRUCTURES) + data[cut:]
        elif op == "delete":
            data = data[:at] + data[at + draw(st.integers(1, 20)):]
    return path, data


@pytest.fixture(scope="module")
def flows_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of examples/flows, so sub-flow references and data files resolve."""
    target = tmp_path_factory.mktemp("fuzz-examples") / "flows"
    shutil.copytree(EXAMPLES, target)
    return target


class Hang(Exception):
    pass


def within(seconds: float, fn: Callable[[], Any]) -> Any:
    """Run ``fn``; a real hang (not only a slow example) fails instead of blocking the suite."""

    def alarm(signum: int, frame: Any) -> None:
        raise Hang(f"load + plan ran past {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


STATS = {"examples": 0, "errors": 0, "seconds": 0.0, "slowest": 0.0}


@pytest.fixture(scope="module", autouse=True)
def report_stats() -> Any:
    """Print how much ran (shown with ``pytest -s``)."""
    yield
    print(f"\nfuzz: {STATS['examples']} examples, {STATS['errors']} SpecErrors, "
          f"{STATS['seconds']:.1f} s in load+plan, slowest {STATS['slowest']:.2f} s")


def check_load_and_plan(file: Path, data: bytes) -> None:
    file.write_bytes(data)
    lines = data.count(b"\n") + 1
    started = time.monotonic()
    try:
        within(HANG_SECONDS, lambda: load_plan(file))
    except SpecError as exc:
        STATS["errors"] += 1
        assert exc.problems
        for p in exc.problems:
            # file:line:col on every problem, pointing inside the file
            assert p.file == str(file), p.format()
            assert p.line is not None and p.column is not None, p.format()
            assert 1 <= p.line <= lines + 1 and p.column >= 1, (p.format(), lines)
            assert p.message.strip() and "Traceback" not in p.format()
            p.format().encode("utf-8")  # printable: no lone surrogates in messages
    finally:
        took = time.monotonic() - started
        STATS["examples"] += 1
        STATS["seconds"] += took
        STATS["slowest"] = max(STATS["slowest"], took)


@SETTINGS
@given(case=mutated())
def test_mutated_examples_load_and_plan(case: tuple[Path, bytes], flows_dir: Path) -> None:
    source, data = case
    check_load_and_plan(flows_dir / f"fuzz-{source.name}", data)


@settings(SETTINGS, max_examples=150)
@given(source=st.sampled_from(FLOWS), piece=STRUCTURES, where=st.sampled_from(["top", "steps"]))
def test_examples_with_bombs_and_deep_nesting(source: Path, piece: bytes, where: str,
                                              flows_dir: Path) -> None:
    """The expensive structures on their own, at the top level or inside ``steps``."""
    data = source.read_bytes()
    if where == "top":
        data = data + b"\nextra: " + piece
    else:
        data = data.replace(b"\nsteps:\n", b"\nsteps:\n  injected: " + piece + b"\n", 1)
    check_load_and_plan(flows_dir / f"fuzz-{source.name}", data)
