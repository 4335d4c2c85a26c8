"""The flow's DAG as SVG, drawn from the plan: steps in layers (a step sits one layer
right of the deepest step it needs), an edge that skips layers routed through a
placeholder in each layer it crosses (so it runs between the steps, not through them),
each layer ordered by the mean position of what its nodes need (a few barycenter
sweeps), edges as curves from a step to what needs it, each node coloured by status and
linked to its step's section. Long layers wrap into several columns, so a 1,000-step
flow stays a page one can scroll."""

from __future__ import annotations

from html import escape
from typing import Mapping, Sequence

NODE_W, NODE_H = 168, 30
GAP_X, GAP_Y = 56, 10
MAX_COLUMN = 40
"""Nodes per column before a layer wraps into another column."""
MAX_DUMMIES = 2000
"""Placeholders for routed edges at most; past that, long edges are drawn straight."""
PAD = 8


def _label(text: str, limit: int = 22) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _depths(order: Sequence[str], needs: Mapping[str, Sequence[str]]) -> dict[str, int]:
    depth: dict[str, int] = {}
    for sid in order:  # order is topological
        depth[sid] = 1 + max((depth[d] for d in needs.get(sid, ()) if d in depth), default=-1)
    return depth


def layers_of(order: Sequence[str], needs: Mapping[str, Sequence[str]],
              chains: dict[tuple[str, str], list[str]] | None = None) -> list[list[str]]:
    """Layers of step ids (and, when ``chains`` is given, of the placeholders an edge
    ``(dep, sid)`` that skips layers passes through, recorded in ``chains``)."""
    depth = _depths(order, needs)
    layers: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for sid in order:
        layers[depth[sid]].append(sid)
    ups: dict[str, list[str]] = {sid: [d for d in needs.get(sid, ()) if d in depth] for sid in order}
    if chains is not None:
        budget = MAX_DUMMIES
        for sid in order:
            for dep in needs.get(sid, ()):
                if dep not in depth:
                    continue
                span = depth[sid] - depth[dep]
                if 1 < span <= budget:
                    budget -= span - 1
                    prev, chain = dep, []
                    for layer in range(depth[dep] + 1, depth[sid]):
                        name = f"\x00{dep}\x00{sid}\x00{layer}"
                        layers[layer].append(name)
                        ups[name] = [prev]
                        chain.append(name)
                        prev = name
                    ups[sid] = [prev if d == dep else d for d in ups[sid]]
                    chains[(dep, sid)] = chain
    pos = {n: i for layer in layers for i, n in enumerate(layer)}
    for _ in range(3):  # barycenter sweeps, left to right
        for layer in layers[1:]:
            def key(n: str) -> float:
                ds = [pos[d] for d in ups.get(n, ()) if d in pos]
                return sum(ds) / len(ds) if ds else pos[n]
            layer.sort(key=key)
            pos.update({n: i for i, n in enumerate(layer)})
    return layers


def dag_svg(order: Sequence[str], needs: Mapping[str, Sequence[str]], status: Mapping[str, str],
            anchors: Mapping[str, str], titles: Mapping[str, str] | None = None) -> str:
    """The SVG markup (every text escaped)."""
    titles = titles or {}
    chains: dict[tuple[str, str], list[str]] = {}
    layers = layers_of(order, needs, chains)
    xy: dict[str, tuple[float, float]] = {}
    col = 0
    tallest = 0
    for layer in layers:
        chunks = [layer[i:i + MAX_COLUMN] for i in range(0, len(layer), MAX_COLUMN)] or [[]]
        for chunk in chunks:
            for row, n in enumerate(chunk):
                xy[n] = (PAD + col * (NODE_W + GAP_X), PAD + row * (NODE_H + GAP_Y))
            tallest = max(tallest, len(chunk))
            col += 1
    width = PAD * 2 + max(col, 1) * (NODE_W + GAP_X) - GAP_X
    height = PAD * 2 + max(tallest, 1) * (NODE_H + GAP_Y) - GAP_Y
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="dag" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="flow graph">',
           '<defs><marker id="arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" '
           'markerHeight="7" orient="auto"><path d="M0,0 L8,4 L0,8 z" class="arrowhead"/></marker></defs>']
    for sid in order:
        for dep in needs.get(sid, ()):
            if dep not in xy:
                continue
            hops = [dep, *chains.get((dep, sid), []), sid]
            d = []
            for a, b in zip(hops, hops[1:]):
                x1, y1 = xy[a]
                x2, y2 = xy[b]
                sx, ex = x1 + NODE_W, x2  # a placeholder is crossed straight, left to right
                sy, ey = y1 + NODE_H / 2, y2 + NODE_H / 2
                mid = (sx + ex) / 2 if ex > sx else sx + GAP_X / 2
                if not d:
                    d.append(f"M{sx:g},{sy:g}")
                if a.startswith("\x00"):
                    d.append(f"L{sx:g},{sy:g}")  # across the placeholder's column
                d.append(f"C{mid:g},{sy:g} {mid:g},{ey:g} {ex:g},{ey:g}")
            out.append(f'<path class="edge" marker-end="url(#arrow)" d="{" ".join(d)}"/>')
    for sid in order:
        x, y = xy[sid]
        st = status.get(sid, "not run")
        tip = titles.get(sid) or f"{sid}: {st}"
        out.append(f'<a href="#{escape(anchors.get(sid, sid))}" class="node st-{escape(st.replace(" ", "-"))}" '
                   f'data-step="{escape(sid)}"><title>{escape(tip)}</title>'
                   f'<rect x="{x:g}" y="{y:g}" width="{NODE_W}" height="{NODE_H}" rx="6"/>'
                   f'<text x="{x + 10:g}" y="{y + NODE_H / 2 + 4:g}">{escape(_label(sid))}</text></a>')
    out.append("</svg>")
    return "".join(out)
