"""Render the collected data as one self-contained HTML page: the Jinja template shipped
with the package (autoescape on, in Jinja's sandbox), with its stylesheet and script
inlined, and a Content-Security-Policy that lets the page load nothing from anywhere
(images are ``data:`` URIs)."""

from __future__ import annotations

import time
from importlib import resources
from typing import Any

from jinja2 import FileSystemLoader, select_autoescape
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from .tree import tree_html

CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
       "script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'")
"""The page's policy: nothing is fetched, nothing is sent."""

_ENV: SandboxedEnvironment | None = None


def _templates() -> Any:
    return resources.files("flowrun.report") / "templates"


def environment() -> SandboxedEnvironment:
    global _ENV
    if _ENV is None:
        env = SandboxedEnvironment(loader=FileSystemLoader(str(_templates())),
                                   autoescape=select_autoescape(default=True, default_for_string=True),
                                   trim_blocks=True, lstrip_blocks=True)
        env.filters["when"] = lambda ts: time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"
        env.filters["secs"] = _secs
        env.filters["usd"] = lambda v: "" if v is None else (f"${v:,.4f}" if v < 1 else f"${v:,.2f}")
        env.filters["slug"] = lambda s: str(s).replace(" ", "-")
        env.filters["tree"] = tree_html
        # markup kept in a script element: an inner </script would end it (report.js undoes this)
        env.filters["unscript"] = lambda m: Markup(str(m).replace("</script", "<\\/script"))
        env.filters["num"] = lambda n: f"{int(n or 0):,}"
        _ENV = env
    return _ENV


def _secs(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(seconds), 60)
    return f"{minutes}m{sec:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def render_page(data: dict[str, Any]) -> str:
    """The page for ``data`` (see :func:`flowrun.report.build_report`); the SVG markup in it
    (``dag``, ``timeline``) was built with every text escaped, and ``rows_json`` is JSON
    made safe for a script element."""
    folder = _templates()
    page = dict(data)
    for name in ("dag", "timeline", "rows_json", "rows_meta"):
        if page.get(name) is not None:
            page[name] = Markup(page[name])
    page["css"] = Markup((folder / "report.css").read_text(encoding="utf-8"))
    page["script"] = Markup((folder / "report.js").read_text(encoding="utf-8"))
    page["csp"] = CSP
    return environment().get_template("report.html.j2").render(**page)
