"""Render a plan's DAG as text, Mermaid or Graphviz dot."""

from __future__ import annotations

from .plan import Plan


def _label(plan: Plan, sid: str) -> str:
    step = plan.step(sid)
    extra = []
    if step.kind != "responses":
        extra.append(step.kind)
    if step.for_each is not None:
        extra.append("for_each")
    if step.if_ is not None:
        extra.append("if")
    if step.continue_ is not None:
        extra.append(f"continues {step.continue_.step}")
    return sid + (f" [{', '.join(extra)}]" if extra else "")


def render_graph(plan: Plan, fmt: str = "text") -> str:
    if fmt == "mermaid":
        lines = ["flowchart TD"]
        for sid in plan.order:
            lines.append(f'    s_{sid}["{_label(plan, sid)}"]')  # s_: `end` is a keyword
        for sid in plan.order:
            for dep in sorted(plan.needs[sid]):
                lines.append(f"    s_{dep} --> s_{sid}")
        return "\n".join(lines)
    if fmt == "dot":
        name = plan.flow.name.replace('"', "'")
        lines = [f'digraph "{name}" {{', "  rankdir=TB;", "  node [shape=box];"]
        for sid in plan.order:
            lines.append(f'  "{sid}" [label="{_label(plan, sid)}"];')
        for sid in plan.order:
            for dep in sorted(plan.needs[sid]):
                lines.append(f'  "{dep}" -> "{sid}";')
        lines.append("}")
        return "\n".join(lines)
    lines = [f"{plan.flow.name}: {len(plan.order)} steps in {len(plan.generations)} stages"]
    for i, gen in enumerate(plan.generations, 1):
        lines.append(f"stage {i}:")
        for sid in gen:
            deps = sorted(plan.needs[sid])
            after = f"  <- {', '.join(deps)}" if deps else ""
            lines.append(f"  {_label(plan, sid)}{after}")
    return "\n".join(lines)
