"""A JSON value as nested, collapsible HTML (``<details>`` per object and list): what
the report shows for structured output, tool arguments and raw items. Every key and
value is escaped; each level shows at most :data:`MAX_ENTRIES` entries."""

from __future__ import annotations

from html import escape
from typing import Any

from markupsafe import Markup

MAX_ENTRIES = 300
LONG = 160


def _scalar(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        if "\n" in value or len(value) > LONG:
            out.append(f'<pre class="v-str">{escape(value)}</pre>')
        else:
            out.append(f'<span class="v-str">"{escape(value)}"</span>')
    elif value is True or value is False:
        out.append(f'<span class="v-bool">{"true" if value else "false"}</span>')
    elif value is None:
        out.append('<span class="v-null">null</span>')
    elif isinstance(value, (int, float)):
        out.append(f'<span class="v-num">{value!r}</span>')
    else:
        out.append(f"<span>{escape(str(value))}</span>")


def _walk(value: Any, open_levels: int, out: list[str]) -> None:
    if isinstance(value, dict):
        if not value:
            out.append('<span class="v-empty">{}</span>')
            return
        n = len(value)
        out.append(f'<details class="tree"{" open" if open_levels > 0 else ""}><summary>'
                   f'{{{n} key{"s" if n != 1 else ""}}}</summary><ul>')
        for i, (k, v) in enumerate(value.items()):
            if i >= MAX_ENTRIES:
                out.append(f'<li class="muted">... {n - MAX_ENTRIES} more</li>')
                break
            out.append(f'<li><span class="k">{escape(str(k))}</span>: ')
            _walk(v, open_levels - 1, out)
            out.append("</li>")
        out.append("</ul></details>")
    elif isinstance(value, (list, tuple)):
        if not value:
            out.append('<span class="v-empty">[]</span>')
            return
        n = len(value)
        out.append(f'<details class="tree"{" open" if open_levels > 0 else ""}><summary>'
                   f'[{n} item{"s" if n != 1 else ""}]</summary><ol start="0">')
        for i, v in enumerate(value):
            if i >= MAX_ENTRIES:
                out.append(f'<li class="muted">... {n - MAX_ENTRIES} more</li>')
                break
            out.append("<li>")
            _walk(v, open_levels - 1, out)
            out.append("</li>")
        out.append("</ol></details>")
    else:
        _scalar(value, out)


def tree_html(value: Any, open: bool = False) -> Markup:
    """The markup of ``value``; ``open``: its first two levels start expanded."""
    out: list[str] = []
    _walk(value, 2 if open else 0, out)
    return Markup("".join(out))
