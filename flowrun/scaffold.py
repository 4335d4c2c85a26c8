"""``flowrun new NAME [--from RECIPE]``: a flow folder to start from.

The folder is a copy of a recipe's (the built-in ``starter`` by default): the flow file,
its tools module, its emulator script and its test file, renamed to ``NAME.*`` with the
flow's ``name:`` set to NAME, so ``flowrun test NAME/`` passes as generated.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from .errors import UsageError
from .recipes import Recipe, find_recipe

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_SKIP_DIRS = {"__pycache__", ".flowrun", ".pytest_cache"}
_SKIP_FILES = {"__init__.py"}
_TEXT = (".yaml", ".yml", ".py", ".md", ".txt", ".json", ".jinja2", ".j2")
_SUFFIXES = (".yaml", ".yml", ".emulator.yaml", ".emulator.yml", ".test.yaml", ".test.yml")


def source_of(spec: str | None) -> Recipe:
    """``--from``: a recipe name, or a flow file (its folder is copied); default starter."""
    if spec and Path(spec).is_file():
        path = Path(spec).resolve()
        return Recipe(path.stem, path, str(spec))
    return find_recipe(spec or "starter")


def scaffold(name: str, source: Recipe, parent: Path) -> list[Path]:
    """Create ``parent/name/`` from ``source``; returns the files written."""
    if not _NAME.match(name):
        raise UsageError(f"{name!r} is not a usable flow name",
                         hint="use letters, digits, - and _, starting with a letter")
    target = parent / name
    if target.exists() and any(target.iterdir()):
        raise UsageError(f"{target} already exists and is not empty",
                         hint="choose another NAME, or remove the folder")
    stem = source.path.name
    for suffix in (".yml", ".yaml"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    renames = {stem + s: name + s for s in _SUFFIXES}
    written: list[Path] = []
    folder = source.path.parent
    for src in sorted(folder.rglob("*")):
        rel = src.relative_to(folder)
        if any(part in _SKIP_DIRS for part in rel.parts) or src.is_dir():
            continue
        if src.name in _SKIP_FILES or src.suffix == ".pyc":
            continue
        dest = target / rel.parent / renames.get(src.name, src.name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.suffix in _TEXT:
            text = src.read_text(encoding="utf-8")
            for old in sorted(renames, key=len, reverse=True):
                text = re.sub(rf"(?<![\w.-]){re.escape(old)}(?![\w])", renames[old], text)
            if src.name == source.path.name:
                text = re.sub(r"^name:.*$", f"name: {name}", text, count=1, flags=re.M)
            dest.write_text(text, encoding="utf-8")
        else:
            shutil.copyfile(src, dest)
        written.append(dest)
    if not (target / f"{name}.yaml").is_file():
        raise UsageError(f"{source.name}: no flow file {source.path.name} was copied")
    return written
