"""Finding and loading test files, with file:line:col errors like flow files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..errors import Problem, SpecError
from ..loader import Source, _problems_from, display_path, parse_yaml, read_text
from .spec import TestFile

SUFFIX = ".test.yaml"


@dataclass
class LoadedTests:
    """A test file: the model, its plain data, where each value sits, and its flow."""

    model: TestFile
    data: dict[str, Any]
    source: Source
    path: Path
    flow_path: Path

    @property
    def name(self) -> str:
        return display_path(self.path)


def discover(paths: list[str] | tuple[str, ...]) -> list[Path]:
    """Test files under ``paths`` (files taken as given, directories searched recursively),
    sorted; ``.flowrun`` run directories and hidden folders are skipped."""
    found: list[Path] = []
    for raw in paths or (".",):
        p = Path(raw)
        if p.is_file():
            found.append(p)
        elif p.is_dir():
            found.extend(f for f in sorted(p.rglob("*" + SUFFIX))
                         if not any(part.startswith(".") and part not in (".", "..") for part in f.parts))
        else:
            raise SpecError(Problem("no such file or directory", str(raw),
                                    hint="give test files (*.test.yaml) or folders holding them"))
    unique: dict[Path, Path] = {}
    for f in found:
        unique.setdefault(f.resolve(), f)
    return sorted(unique.values())


def load_tests(path: Path) -> LoadedTests:
    """Read, parse and validate one test file."""
    from pydantic import ValidationError

    shown = display_path(path)
    text = read_text(path)
    data, source = parse_yaml(text, shown)
    if not isinstance(data, dict):
        raise SpecError(source.problem((), "expected a mapping with `cases:` (and optionally `flow:`)",
                                       hint="see `flowrun schema --tests`"))
    try:
        model = TestFile.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_problems_from(exc.errors(), data, source, model=TestFile)) from None
    if model.flow:
        flow_path = path.parent / model.flow
        where = ("flow",)
    else:
        if not path.name.endswith(SUFFIX):
            raise SpecError(source.problem((), "missing `flow:`",
                                           hint="name the flow file this tests, e.g. `flow: brief.yaml`"))
        flow_path = path.with_name(path.name[: -len(SUFFIX)] + ".yaml")
        where = ()
    if not flow_path.is_file():
        raise SpecError(source.problem(where, f"the flow file {display_path(flow_path)} does not exist",
                                       hint="set `flow:` to the flow's path, relative to the test file"))
    for name, case in model.cases.items():
        for key in ("script_file", "recording"):
            value = getattr(case, key)
            if value is not None and not (path.parent / value).is_file():
                raise SpecError(source.problem(("cases", name, key), f"no such file: {value}",
                                               hint="paths are relative to the test file"))
    return LoadedTests(model, data, source, path, flow_path)


def iter_cases(tests: LoadedTests, pattern: str | None = None) -> Iterator[tuple[str, Any]]:
    """``(name, case)`` pairs whose ``file::name`` contains ``pattern`` (case-insensitive)."""
    for name, case in tests.model.cases.items():
        if pattern is None or pattern.lower() in f"{tests.name}::{name}".lower():
            yield name, case
