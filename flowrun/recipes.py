"""Recipes: flows shipped in Python packages, found through the ``flowrun.recipes`` entry
point group (``importlib.metadata``), run by name and used as ``flow: recipe:NAME``.

A package declares each recipe in its ``pyproject.toml``::

    [project.entry-points."flowrun.recipes"]
    summarize = "acme_recipes.summarize"            # a package folder: summarize.yaml in it
    triage = "acme_recipes:TRIAGE_FLOW"              # a str / Path naming the flow file

The flow file, its tools module, ``FLOW.emulator.yaml`` and ``FLOW.test.yaml`` sit in that
folder as package data; tools are found beside the flow file, as for any flow. Built-in
recipes register the same way, in :data:`BUILTIN_RECIPES` (a dict read before the
installed ones), so ``flowrun new`` works on a fresh install.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UsageError

GROUP = "flowrun.recipes"
PREFIX = "recipe:"
_DATA = Path(__file__).resolve().parent / "recipe_data"

BUILTIN_RECIPES: dict[str, Path] = {"starter": _DATA / "starter" / "starter.yaml"}
"""Recipes that ship with flowrun: name -> flow file."""


@dataclass(frozen=True)
class Recipe:
    """One recipe: its name, its flow file and where it came from."""

    name: str
    path: Path
    source: str  # "flowrun (built-in)" or "DIST VERSION"
    entry_point: str | None = None

    @property
    def folder(self) -> Path:
        return self.path.parent


def _module_dir(module: str) -> Path | None:
    """The folder of ``module`` (a package's own folder), found without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin).parent if spec.origin else None


def _flow_in(folder: Path, name: str) -> Path:
    for candidate in (f"{name}.yaml", f"{name}.yml", "flow.yaml", "flow.yml"):
        if (folder / candidate).is_file():
            return folder / candidate
    return folder / f"{name}.yaml"


def _entry_point_path(ep: Any) -> Path:
    """The flow file an entry point names: a module (its folder holds NAME.yaml or
    flow.yaml) or a ``module:ATTR`` whose value is a path (relative to the module)."""
    if not ep.attr:
        folder = _module_dir(ep.module)
        if folder is None:
            raise UsageError(f"recipe {ep.name!r}: module {ep.module!r} is not installed",
                             hint="reinstall the package that declares it")
        return _flow_in(folder, ep.name)
    try:
        value = ep.load()
    except Exception as exc:  # a broken package must not break `flowrun recipes`
        raise UsageError(f"recipe {ep.name!r}: loading {ep.value} failed: "
                         f"{type(exc).__name__}: {exc}") from None
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        if not path.is_absolute():
            path = (_module_dir(ep.module) or Path.cwd()) / path
        return path
    folder = getattr(value, "__path__", None)
    if folder:
        return _flow_in(Path(next(iter(folder))), ep.name)
    raise UsageError(f"recipe {ep.name!r}: {ep.value} is {type(value).__name__}, "
                     "not a path to a flow file or a package",
                     hint="point the entry point at a package folder or a str/Path")


def all_recipes() -> tuple[dict[str, list[Recipe]], list[str]]:
    """Every recipe by name (a name may be claimed twice), and the entry points that
    could not be read (as messages)."""
    from importlib.metadata import distributions

    found: dict[str, list[Recipe]] = {}
    broken: list[str] = []
    for name, path in BUILTIN_RECIPES.items():
        found.setdefault(name, []).append(Recipe(name, path, "flowrun (built-in)"))
    seen: set[tuple[str, str]] = set()
    for dist in distributions():
        for ep in dist.entry_points:
            if ep.group != GROUP or (ep.name, ep.value) in seen:
                continue
            seen.add((ep.name, ep.value))
            source = f"{dist.metadata['Name']} {dist.version}"
            try:
                path = _entry_point_path(ep)
            except UsageError as exc:
                broken.append(f"{source}: {exc}")
                continue
            found.setdefault(ep.name, []).append(Recipe(ep.name, path.resolve(), source, ep.value))
    return found, broken


def find_recipe(name: str) -> Recipe:
    """The recipe called ``name`` (an installed one wins over a built-in of that name)."""
    found, _ = all_recipes()
    candidates = found.get(name)
    if not candidates:
        close = difflib.get_close_matches(name, sorted(found), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UsageError(f"no recipe named {name!r} is installed",
                         hint=hint + "`flowrun recipes` lists them; a recipe is a package "
                         f"declaring the {GROUP!r} entry point group")
    installed = [r for r in candidates if r.entry_point is not None]
    if len(installed) > 1:
        raise UsageError(f"recipe {name!r} is declared by several packages: "
                         + ", ".join(r.source for r in installed),
                         hint="uninstall one of them")
    recipe = (installed or candidates)[0]
    if not recipe.path.is_file():
        raise UsageError(f"recipe {name!r} ({recipe.source}): its flow file {recipe.path} "
                         "is missing", hint="the package must ship the flow file as package data")
    return recipe


def resolve_flow_ref(base_dir: Path, ref: str) -> Path:
    """Where a sub-flow reference points: ``recipe:NAME`` or a path relative to ``base_dir``."""
    if ref.startswith(PREFIX):
        return find_recipe(ref[len(PREFIX):].strip()).path.resolve()
    return (base_dir / ref).resolve()


def flow_argument(flow: str) -> tuple[str, Recipe | None]:
    """The command line's FLOW: a file, ``recipe:NAME``, or a bare recipe name when no
    such file exists. Returns the flow file and the recipe, if it was one."""
    if flow.startswith(PREFIX):
        recipe = find_recipe(flow[len(PREFIX):].strip())
        return str(recipe.path), recipe
    if Path(flow).exists() or any(c in flow for c in "/\\") or flow.endswith((".yaml", ".yml")):
        return flow, None
    recipe = find_recipe(flow)
    return str(recipe.path), recipe


def describe(recipe: Recipe) -> dict[str, Any]:
    """What ``flowrun recipes`` shows: name, description, inputs, secrets, where from."""
    from .errors import SpecError
    from .loader import load_file

    out: dict[str, Any] = {"name": recipe.name, "source": recipe.source, "path": str(recipe.path)}
    try:
        flow = load_file(recipe.path).flow
    except SpecError as exc:
        out["error"] = exc.format().splitlines()[0]
        return out
    out["description"] = flow.description
    out["inputs"] = {
        k: {"type": v.type, "required": v.is_required,
            **({"default": v.default} if v.default is not None else {}),
            **({"description": v.description} if v.description else {})}
        for k, v in flow.inputs.items()
    }
    out["secrets"] = list(flow.secrets)
    return out


def secrets_notice(recipe: Recipe, names: set[str]) -> str | None:
    """The line printed before a recipe runs, naming every secret it may read."""
    if not names:
        return None
    return (f"recipe {recipe.name} ({recipe.source}) reads these secrets from the "
            f"environment: {', '.join(sorted(names))}")
