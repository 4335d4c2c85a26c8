"""The ``flowrun cache`` commands: ``stats`` and ``clear``. Registered on the ``flowrun``
group by :func:`register`; heavy imports stay inside the commands."""

from __future__ import annotations

import json
import time
from typing import Any, Callable

import click

DIR_HELP = "The cache directory (default: $FLOWRUN_CACHE_DIR, else the user cache dir)."


class TtlType(click.ParamType):
    """A time span: seconds, or 90s, 30m, 12h, 7d, 2w."""

    name = "DURATION"

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        from .spec import parse_ttl

        try:
            seconds = parse_ttl(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if not isinstance(seconds, float) or seconds <= 0:
            self.fail(f"{value!r} is not a positive time span", param, ctx)
        return seconds


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "-"


def _open(cache_dir: str | None) -> Any:
    from pathlib import Path

    from .cache_store import CacheStore, default_cache_dir

    return CacheStore(Path(cache_dir) if cache_dir else default_cache_dir())


@click.group()
def cache() -> None:
    """The step cache: what it holds, and clearing it."""


@cache.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--cache-dir", type=click.Path(file_okay=False), help=DIR_HELP)
def stats(as_json: bool, cache_dir: str | None) -> None:
    """Show the cache's place, entries, hits, size and ages, per flow."""
    store = _open(cache_dir)
    try:
        info = store.stats()
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(info))
        return
    lines = [f"cache     {info['dir']}",
             f"entries   {info['entries']} ({info['hits']} hits), {info['blobs']} artifact files",
             f"size      {_size(info['disk_bytes'])} on disk",
             f"oldest    {_when(info['oldest'])}",
             f"newest    {_when(info['newest'])}"]
    for flow in info["flows"]:
        lines.append(f"  {flow['flow'] or '-'}: {flow['entries']} entries, {flow['hits']} hits, "
                     f"{_size(flow['bytes'])}")
    click.echo("\n".join(lines))


@cache.command()
@click.option("--older-than", type=TtlType(), metavar="DURATION",
              help="Only entries stored more than this long ago (90s, 30m, 12h, 7d, 2w).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--cache-dir", type=click.Path(file_okay=False), help=DIR_HELP)
def clear(older_than: float | None, as_json: bool, cache_dir: str | None) -> None:
    """Remove cached answers (all, or those older than --older-than) and the artifacts
    no remaining entry needs. Safe while runs use the cache."""
    store = _open(cache_dir)
    try:
        removed = store.clear(older_than)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(removed))
    else:
        click.echo(f"removed {removed['entries']} entries and {removed['blobs']} artifact files")


def register(group: click.Group, wrap: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    """Add ``flowrun cache`` to ``group``, its commands' callbacks wrapped by ``wrap``."""
    for command in cache.commands.values():
        command.callback = wrap(command.callback)  # type: ignore[arg-type]
    group.add_command(cache)
