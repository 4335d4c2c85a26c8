"""The run's timeline as SVG: a row per step from its start to its end (``for_each``
items as thin bars inside it), a tick per model turn, a red mark per retry (with the
backoff it waited) and an amber band per wait on the rate budget. Times are relative to
the run's start; every text is escaped."""

from __future__ import annotations

from html import escape
from typing import Any, Sequence

WIDTH = 960
LABEL_W = 170
ROW_H = 20
AXIS_H = 22
MAX_ITEM_BARS = 200
"""Items drawn per step row (more are summed up in the row's title)."""


def _fmt(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def _span(view: dict[str, Any]) -> tuple[float | None, float | None]:
    return view.get("started"), view.get("ended")


def timeline_svg(steps: Sequence[dict[str, Any]], run_start: float | None, run_end: float | None) -> str:
    times = [t for s in steps for t in (*_span(s), *(x for i in s.get("items") or [] for x in _span(i))) if t]
    times += [e["time"] + (e.get("seconds") or 0) for s in steps for e in _events(s)]
    if run_start:
        times.append(run_start)
    if run_end:
        times.append(run_end)
    if not times:
        return '<p class="muted">No step has started.</p>'
    t0, t1 = min(times), max(times)
    span = max(t1 - t0, 1e-3)
    plot_w = WIDTH - LABEL_W - 10

    def x(t: float) -> float:
        return LABEL_W + (t - t0) / span * plot_w

    height = AXIS_H + len(steps) * ROW_H + 6
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{WIDTH}" height="{height}" '
           f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="timeline">',
           '<defs><pattern id="wait" width="6" height="6" patternUnits="userSpaceOnUse" '
           'patternTransform="rotate(45)"><rect width="3" height="6" class="waitfill"/></pattern></defs>']
    for i in range(6):  # the axis
        t = t0 + span * i / 5
        anchor = "end" if i == 5 else "middle"
        out.append(f'<line class="grid" x1="{x(t):.1f}" y1="{AXIS_H - 4}" x2="{x(t):.1f}" y2="{height}"/>'
                   f'<text class="axis" x="{x(t):.1f}" y="{AXIS_H - 8}" text-anchor="{anchor}">'
                   f'{escape(_fmt(t - t0))}</text>')
    for row, s in enumerate(steps):
        y = AXIS_H + row * ROW_H
        st = escape(str(s.get("status", "")).replace(" ", "-"))
        out.append(f'<a href="#{escape(s["anchor"])}"><text class="rowlabel" x="4" y="{y + 14}">'
                   f'{escape(s["key"][:24])}</text></a>')
        start, end = _span(s)
        if start:
            end = end or t1
            tip = f"{s['key']}: {s.get('status')}, {_fmt(end - start)}"
            out.append(f'<rect class="bar st-{st}" x="{x(start):.1f}" y="{y + 4}" '
                       f'width="{max(x(end) - x(start), 1.5):.1f}" height="{ROW_H - 8}" rx="2">'
                       f'<title>{escape(tip)}</title></rect>')
        items = s.get("items") or []
        for item in items[:MAX_ITEM_BARS]:
            a, b = _span(item)
            if not a:
                continue
            b = b or t1
            ist = escape(str(item.get("status", "")).replace(" ", "-"))
            out.append(f'<rect class="item st-{ist}" x="{x(a):.1f}" y="{y + ROW_H - 7}" '
                       f'width="{max(x(b) - x(a), 1):.1f}" height="3"><title>'
                       f'{escape(item["key"])}: {escape(str(item.get("status")))}, {escape(_fmt(b - a))}'
                       f'</title></rect>')
        for turn in [t for t in s.get("turns") or [] if t.get("time")]:
            out.append(f'<line class="turn" x1="{x(turn["time"]):.1f}" y1="{y + 3}" '
                       f'x2="{x(turn["time"]):.1f}" y2="{y + ROW_H - 3}"><title>turn {turn["turn"]} answered'
                       f'</title></line>')
        for e in _events(s):
            a = e["time"]
            secs = e.get("seconds") or 0
            detail = escape(f"{e.get('key', '')} {e['kind']}: {e.get('detail') or ''} ({_fmt(secs)})")
            if e["kind"] == "budget":
                out.append(f'<rect class="wait" x="{x(a):.1f}" y="{y + 2}" width="{max(x(a + secs) - x(a), 2):.1f}" '
                           f'height="{ROW_H - 4}"><title>waited on the rate budget: {detail}</title></rect>')
            else:
                out.append(f'<g class="retry"><title>{detail}</title>'
                           f'<rect x="{x(a):.1f}" y="{y + ROW_H / 2 - 1:.1f}" width="{max(x(a + secs) - x(a), 1):.1f}" height="2"/>'
                           f'<circle cx="{x(a):.1f}" cy="{y + ROW_H / 2:.1f}" r="3.5"/></g>')
    out.append("</svg>")
    return "".join(out)


def _events(s: dict[str, Any]) -> list[dict[str, Any]]:
    evs = list(s.get("events") or [])
    for item in s.get("items") or []:
        evs.extend(item.get("events") or [])
    return [e for e in evs if e.get("time")]


def rows_timeline_svg(ended: Sequence[tuple[float, str]], run_start: float | None,
                      buckets: int = 60) -> str:
    """A dataset run's rows finishing over time: per time slice, a bar of the rows that
    succeeded stacked under those that failed."""
    if not ended:
        return '<p class="muted">No row has finished.</p>'
    t0 = min([t for t, _ in ended] + ([run_start] if run_start else []))
    t1 = max(t for t, _ in ended)
    span = max(t1 - t0, 1e-3)
    ok = [0] * buckets
    bad = [0] * buckets
    for t, status in ended:
        i = min(buckets - 1, int((t - t0) / span * buckets))
        (ok if status == "succeeded" else bad)[i] += 1
    top = max(max(a + b for a, b in zip(ok, bad)), 1)
    plot_h, plot_w = 120, WIDTH - LABEL_W - 10
    height = AXIS_H + plot_h + 6
    w = plot_w / buckets
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline rows-timeline" width="{WIDTH}" '
           f'height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="rows finished over time">',
           f'<text class="rowlabel" x="4" y="{AXIS_H + 14}">rows finished</text>',
           f'<text class="axis" x="4" y="{AXIS_H + 30}">(max {top} per slice)</text>']
    for i in range(6):
        t = span * i / 5
        out.append(f'<text class="axis" x="{LABEL_W + plot_w * i / 5:.1f}" y="{AXIS_H - 8}" '
                   f'text-anchor="{"end" if i == 5 else "middle"}">{escape(_fmt(t))}</text>')
    for i in range(buckets):
        x0 = LABEL_W + i * w
        h_ok = ok[i] / top * plot_h
        h_bad = bad[i] / top * plot_h
        base = AXIS_H + plot_h
        slice_t = f"{_fmt(span * i / buckets)}-{_fmt(span * (i + 1) / buckets)}"
        if ok[i]:
            out.append(f'<rect class="bar st-succeeded" x="{x0:.1f}" y="{base - h_ok:.1f}" width="{max(w - 1, 1):.1f}" '
                       f'height="{h_ok:.1f}"><title>{slice_t}: {ok[i]} rows succeeded</title></rect>')
        if bad[i]:
            out.append(f'<rect class="bar st-failed" x="{x0:.1f}" y="{base - h_ok - h_bad:.1f}" '
                       f'width="{max(w - 1, 1):.1f}" height="{h_bad:.1f}"><title>{slice_t}: {bad[i]} rows failed'
                       f'</title></rect>')
    out.append("</svg>")
    return "".join(out)
