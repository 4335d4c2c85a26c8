"""Commands for sharing flows: ``flowrun recipes``, ``flowrun new``, ``flowrun import``.
Registered on the main group by :func:`register` (from :mod:`flowrun.cli`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable

import click


@click.command("recipes")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: {recipes: [...]}.")
def recipes_command(as_json: bool) -> None:
    """List installed recipes: name, description, inputs, secrets, package.

    A recipe is a flow shipped in a Python package through the 'flowrun.recipes' entry
    point group. Run one with `flowrun run NAME`, use it as `flow: recipe:NAME`, or copy
    it with `flowrun new MYFLOW --from NAME`.
    """
    from .errors import FlowrunError
    from .recipes import all_recipes, describe, find_recipe

    found, broken = all_recipes()
    items: list[dict[str, Any]] = []
    for name in sorted(found):
        try:
            items.append(describe(find_recipe(name)))
        except FlowrunError as exc:  # a missing flow file, a name claimed twice
            items.append({"name": name, "error": str(exc),
                          "source": ", ".join(r.source for r in found[name])})
    if as_json:
        click.echo(json.dumps({"recipes": items, "broken": broken}, indent=2, default=str))
        return
    for item in items:
        click.echo(f"{item['name']}  ({item['source']})")
        if item.get("error"):
            click.echo(f"    error: {item['error']}")
            continue
        if item.get("description"):
            click.echo(f"    {item['description']}")
        for k, v in item.get("inputs", {}).items():
            extra = " required" if v["required"] else f" default {v.get('default')!r}"
            click.echo(f"    input  {k}: {v['type']}{extra}")
        if item.get("secrets"):
            click.echo(f"    reads secrets: {', '.join(item['secrets'])}")
    for line in broken:
        click.echo(f"warning: {line}", err=True)
    if not items:
        click.echo("no recipes installed", err=True)


@click.command("new")
@click.argument("name")
@click.option("--from", "source", metavar="RECIPE",
              help="A recipe name (see `flowrun recipes`) or a flow file; default: starter.")
@click.option("--dir", "parent", type=click.Path(file_okay=False), default=".",
              show_default=True, help="Where to create the NAME folder.")
def new_command(name: str, source: str | None, parent: str) -> None:
    """Create a flow folder NAME/ (flow, tools module, emulator script, test file) that
    validates and passes `flowrun test NAME` as generated."""
    from .scaffold import scaffold, source_of

    recipe = source_of(source)
    written = scaffold(name, recipe, Path(parent))
    click.echo(f"created {Path(parent) / name}/ from {recipe.name} ({recipe.source}):")
    for path in written:
        click.echo(f"  {path}")
    flow = Path(parent) / name / f"{name}.yaml"
    click.echo(f"next: flowrun test {Path(parent) / name}   |   "
               f"flowrun run {flow} --provider emulator")


@click.group("import")
def import_group() -> None:
    """Convert flows from other tools into flowrun flows."""


@import_group.command("promptflow")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for the converted flow (created; must be empty).")
@click.option("--name", help="Flow name (default: the folder's name).")
@click.option("--json", "as_json", is_flag=True, help="Print the conversion report as JSON.")
def import_promptflow(directory: str, out_dir: str, name: str | None, as_json: bool) -> None:
    """Convert a Prompt flow folder (flow.dag.yaml, Jinja prompts, Python nodes).

    Writes OUTPUT/NAME.yaml, copies the folder's files (Python nodes without their
    promptflow imports) and writes IMPORT-REPORT.md, then validates the result (exit 2 if
    it does not validate). What could not be converted is listed with its line.
    """
    from .importers.promptflow import import_promptflow as convert

    report = convert(Path(directory), Path(out_dir), name=name)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(report.format())
    sys.exit(0 if report.valid else 2)


def register(main: click.Group, handle_errors: Callable[..., Any]) -> None:
    """Add these commands to ``main``, with flowrun's error handling."""
    for cmd in (recipes_command, new_command, import_promptflow):
        cmd.callback = handle_errors(cmd.callback)
    main.add_command(recipes_command)
    main.add_command(new_command)
    main.add_command(import_group)
