"""Flow -> NetworkX DAG -> immutable :class:`Plan`.

Checks every template (syntax, variables, references), ``needs``, ``continue``, tool
names and sub-flow files, then orders the steps. A cycle is reported with its whole
path (``a -> b -> c -> a``) at the position of the step that closes it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from .errors import PlanError, Problem, SpecError, UsageError
from .loader import FlowFile, display_path, load_file
from .preflight import (Finding, background_findings, image_findings, python_tool_findings,
                        schema_findings)
from .option_checks import conversation_deps, conversation_findings, defaults_findings
from .recipes import PREFIX as RECIPE_PREFIX, resolve_flow_ref
from .results import RESULT_FIELDS
from .secrets import looks_like_credential, undeclared_credential
from .spec import (BUILTIN_TOOLS, Flow, FlowTool, ImageGenerationTool, McpTool, PythonTool,
                   Step, tool_kind)
from .templating import analyze, is_template, iter_templates

# keys whose string values are data, not templates
_NOT_TEMPLATES = {"output_schema", "parameters", "description", "needs", "continue"}


@dataclass(frozen=True)
class Plan:
    """A checked flow, ready to run: steps, their dependencies and a topological order."""

    file: FlowFile
    order: tuple[str, ...]
    generations: tuple[tuple[str, ...], ...]
    needs: Mapping[str, frozenset[str]]
    dependents: Mapping[str, frozenset[str]]
    subflows: Mapping[str, "Plan"] = field(default_factory=dict)

    @property
    def flow(self) -> Flow:
        return self.file.flow

    @property
    def base_dir(self) -> Path:
        return self.file.base_dir

    def step(self, step_id: str) -> Step:
        return self.flow.steps[step_id]

    def graph(self) -> Any:
        """A frozen NetworkX DiGraph (edge ``a -> b``: b needs a)."""
        import networkx as nx

        g = nx.DiGraph()
        g.add_nodes_from(self.order)
        for step, deps in self.needs.items():
            g.add_edges_from((d, step) for d in deps)
        return nx.freeze(g)

    def subflow(self, rel: str) -> "Plan":
        return self.subflows[str(resolve_flow_ref(self.base_dir, rel))]


def _suggest(name: str, options: list[str] | set[str] | tuple[str, ...]) -> str | None:
    close = difflib.get_close_matches(name, sorted(options), n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"known: {', '.join(sorted(options))}" if options else None


class _Checker:
    def __init__(self, ff: FlowFile, stack: tuple[str, ...]):
        self.ff = ff
        self.flow: Flow = ff.flow
        self.src = ff.source
        self.lines = ff.text.splitlines()  # once: _offset runs for every reference
        self.problems: list[Problem] = []
        self.deps: dict[str, set[str]] = {sid: set() for sid in self.flow.steps}
        self.stack = stack
        self.subflows: dict[str, Plan] = {}

    def add(self, path: tuple[Any, ...], msg: str, hint: str | None = None, **kw: Any) -> None:
        self.problems.append(self.src.problem(path, msg, hint, **kw))

    def found(self, base: tuple[Any, ...], findings: list[Finding]) -> None:
        for f in findings:
            self.add(base + f.path, f.message, f.hint, key=f.key)

    def tool_def(self, path: tuple[Any, ...], tool: Any) -> None:
        """What only the run would find out about one tool definition."""
        if isinstance(tool, PythonTool):
            self.found(path + ("python",), python_tool_findings(tool.python, self.ff.base_dir))
        if getattr(tool, "parameters", None) is not None:
            self.found(path + ("parameters",), schema_findings(tool.parameters, "parameters"))
        if isinstance(tool, ImageGenerationTool):
            self.found(path + ("image_generation",), image_findings(tool.image_generation))

    # -- templates -------------------------------------------------------------------
    def template(self, path: tuple[Any, ...], text: str, step: str | None,
                 allow: tuple[str, ...] = ("inputs", "steps", "secrets", "env"),
                 loop: bool = False) -> None:
        info = analyze(text)
        offset = self._offset(path, info.error_line or 1)
        if info.error:
            self.add(path, f"template syntax error: {info.error}",
                     "check the {{ }} and {% %} pairs and filter names", offset=offset)
            return
        for name, line in info.unknown:
            self.add(path, f"unknown template variable {name!r}",
                     "templates can use inputs, steps, secrets, env" + (", item, index" if loop else ""),
                     offset=self._offset(path, line))
        for var, line in info.loop_uses:
            if not loop:
                self.add(path, f"{var!r} is only defined in a step with for_each",
                         "add for_each to the step, or refer to a value by its full name",
                         offset=self._offset(path, line))
        for root, line in info.dynamic:
            self.add(path, f"{root}[...] needs a literal name",
                     f"write {root}.NAME so flowrun can see the dependency",
                     offset=self._offset(path, line))
        for target, name, line in info.step_fields:
            other = self.flow.steps.get(target)
            if other is None:
                continue  # reported as an unknown step below
            off = self._offset(path, line)
            if other.for_each is not None:
                self.add(path, f"steps.{target} is a list (one result per for_each item); "
                               f"it has no field {name!r}",
                         f"use steps.{target} | map(attribute='{name}') | join(', '), or "
                         f"steps.{target}[0].{name}", offset=off)
            elif name not in RESULT_FIELDS:
                self.add(path, f"a step result has no field {name!r}",
                         _suggest(name, RESULT_FIELDS), offset=off)
        for ref in info.refs:
            off = self._offset(path, ref.line)
            if ref.root not in allow:
                self.add(path, f"{ref.root} cannot be used here",
                         f"only {', '.join(allow)} are available here", offset=off)
                continue
            if ref.name is None:
                if ref.root == "steps":
                    self.add(path, "refer to one step at a time (steps.ID)",
                             "flowrun infers dependencies from steps.ID", offset=off)
                continue
            if ref.root == "inputs" and ref.name not in self.flow.inputs:
                self.add(path, f"unknown input {ref.name!r}",
                         _suggest(ref.name, list(self.flow.inputs)) or "declare it under inputs:",
                         offset=off)
            elif ref.root == "steps":
                if ref.name not in self.flow.steps:
                    self.add(path, f"unknown step {ref.name!r}",
                             _suggest(ref.name, list(self.flow.steps)), offset=off)
                elif step is not None:
                    self.deps[step].add(ref.name)
            elif (ref.root == "env" and looks_like_credential(ref.name)
                  and ref.name not in self.flow.secrets):
                self.add(path, undeclared_credential(ref.name),
                         f"declare it: secrets: [{ref.name}], then write secrets.{ref.name}",
                         offset=off)
            elif ref.root == "secrets" and self.flow.secrets and ref.name not in self.flow.secrets:
                self.add(path, f"secret {ref.name!r} is not declared in secrets:",
                         _suggest(ref.name, self.flow.secrets) or "add it to secrets:", offset=off)

    def _offset(self, path: tuple[Any, ...], line: int) -> tuple[int, int] | None:
        """Jinja line numbers are relative to the template; block scalars start a line later."""
        block = 0
        pos = self.src.values.get(tuple(path))
        if pos:
            lines = self.lines
            if 0 < pos[0] <= len(lines):
                rest = lines[pos[0] - 1][pos[1] - 1:].lstrip()
                block = 1 if rest[:1] in ("|", ">") else 0
        dline = line - 1 + block
        return (dline, 1) if dline else None

    # -- steps -----------------------------------------------------------------------
    def steps(self) -> None:
        raw_steps = self.ff.data.get("steps", {})
        for sid, step in self.flow.steps.items():
            raw = raw_steps.get(sid, {})
            base = ("steps", sid)
            loop = step.for_each is not None
            for key, value in raw.items():
                if key in _NOT_TEMPLATES:
                    continue
                for sub, text in iter_templates(value, base + (key,)):
                    is_loop_expr = key == "for_each"
                    self.template(sub, text, sid, loop=loop and not is_loop_expr)
            self._tools(sid, step, raw)
            if step.output_schema is not None:
                self.found(base + ("output_schema",), schema_findings(step.output_schema))
            self.found(base, background_findings(step, self.flow.defaults))
            self.found(base, conversation_findings(sid, step, self.flow))
            self.deps[sid] |= conversation_deps(step) & set(self.flow.steps) - {sid}
            if isinstance(step.if_, str) and not is_template(step.if_):
                self.add(base + ("if",), f"if: {step.if_!r} is plain text, which is always true",
                         f'write a template: if: "{{{{ {step.if_} }}}}"')
            for i, need in enumerate(step.needs):
                if need not in self.flow.steps:
                    self.add(base + ("needs", i), f"unknown step {need!r} in needs",
                             _suggest(need, list(self.flow.steps)))
                else:
                    self.deps[sid].add(need)
            if step.continue_ is not None:
                self._continue(sid, step)
            if step.flow is not None:
                self._subflow(base + ("flow",), step.flow, step.with_ or {}, base + ("with",))
            if step.python is not None:
                self.found(base + ("python",), python_tool_findings(step.python, self.ff.base_dir))

    def _continue(self, sid: str, step: Step) -> None:
        target = step.continue_.step
        path = ("steps", sid, "continue")
        if target not in self.flow.steps:
            self.add(path, f"unknown step {target!r} in continue",
                     _suggest(target, list(self.flow.steps)))
            return
        self.deps[sid].add(target)
        other = self.flow.steps[target]
        if other.kind != "responses":
            self.add(path, f"cannot continue {target!r}: it is a {other.kind} step",
                     "continue works between steps that call the model with input:")
        elif other.for_each is not None:
            self.add(path, f"cannot continue {target!r}: it runs once per item (for_each)",
                     "continue a step that has a single conversation")
        store = step.store if step.store is not None else self.flow.defaults.store
        target_store = other.store if other.store is not None else self.flow.defaults.store
        if step.continue_.mode == "previous_response_id" and False in (store, target_store):
            self.add(path, "continue by previous_response_id needs stored responses, "
                           "but store is false",
                     f"use `continue: {{step: {target}, mode: manual}}` to resend the items")

    def _tools(self, sid: str, step: Step, raw: dict[str, Any]) -> None:
        for i, ref in enumerate(step.tools):
            if isinstance(ref, str) and ref not in self.flow.tools and ref not in BUILTIN_TOOLS:
                self.add(("steps", sid, "tools", i), f"unknown tool {ref!r}",
                         _suggest(ref, [*self.flow.tools, *BUILTIN_TOOLS]))
            elif isinstance(ref, FlowTool):
                self._subflow(("steps", sid, "tools", i, "flow"), ref.flow, None, None)
            elif not isinstance(ref, str):
                self.tool_def(("steps", sid, "tools", i), ref)
        if step.kind != "responses":
            for key in ("tools", "output_schema", "files", "continue", "tool_choice"):
                if key in raw:
                    self.add(("steps", sid, key), f"{key!r} applies to model steps (input:), "
                             f"not to a {step.kind} step", key=True)
        else:
            self._tool_choice(sid, step)

    def _tool_choice(self, sid: str, step: Step) -> None:
        """``tool_choice: NAME`` must name one of the step's tools (when all are named)."""
        choice = step.tool_choice
        if choice is None or choice in ("auto", "none", "required"):
            return
        if not step.tools or not all(isinstance(r, str) for r in step.tools):
            if not step.tools:
                self.add(("steps", sid, "tool_choice"), f"tool_choice {choice!r} but the step has "
                         "no tools", "add the tool to the step's tools:")
            return
        names: set[str] = set()
        for ref in step.tools:
            names.add(ref)
            tool = self.flow.tools.get(ref)
            if tool is not None:
                if tool_kind(tool) in BUILTIN_TOOLS:
                    names.add(tool_kind(tool) or ref)
                if isinstance(tool, McpTool):
                    names.add(tool.server_label or ref)
        if choice not in names:
            self.add(("steps", sid, "tool_choice"), f"tool_choice {choice!r} is not one of the "
                     "step's tools", _suggest(choice, sorted(names)))

    def defaults(self) -> None:
        self.found(("defaults",), defaults_findings(self.flow.defaults))

    def tool_defs(self) -> None:
        raw_tools = self.ff.data.get("tools", {})
        for name, tool in self.flow.tools.items():
            raw = raw_tools.get(name, {})
            for key, value in raw.items():
                if key in _NOT_TEMPLATES:
                    continue
                for sub, text in iter_templates(value, ("tools", name, key)):
                    if key in ("headers", "bind", "mcp", "file_search") or sub[2:4] == ("shell", "env"):
                        self.template(sub, text, None, allow=("inputs", "secrets", "env"))
                    else:
                        self.add(sub, f"templates are not allowed in {key!r}",
                                 "use templates in headers, bind, the mcp URL, file_search or shell.env")
            target = getattr(tool, "flow", None)
            if isinstance(target, str):
                self._subflow(("tools", name, "flow"), target, None, None)
            self.tool_def(("tools", name), tool)

    def outputs(self) -> None:
        for key, value in self.ff.data.get("outputs", {}).items():
            for sub, text in iter_templates(value, ("outputs", key)):
                self.template(sub, text, None)

    # -- sub-flows -------------------------------------------------------------------
    def _subflow(self, path: tuple[Any, ...], rel: str, given: dict[str, Any],
                 with_path: tuple[Any, ...] | None) -> None:
        try:
            target = resolve_flow_ref(self.ff.base_dir, rel)
        except UsageError as exc:
            self.add(path, str(exc), exc.hint)
            return
        key = str(target)
        if key in self.stack:
            chain = " -> ".join(display_path(p) for p in (*self.stack, key))
            self.add(path, f"sub-flow cycle: {chain}", "a flow cannot include itself")
            return
        if not target.is_file():
            self.add(path, f"sub-flow file not found: {rel}",
                     f"looked for {display_path(target)}, relative to this flow file")
            return
        if key not in self.subflows:
            try:
                self.subflows[key] = _plan(load_file(target), (*self.stack, key))
            except SpecError as exc:
                self.problems.extend(exc.problems)
                return
        sub = self.subflows[key].flow
        if with_path is None:
            return
        for name in given:
            if name not in sub.inputs:
                self.add(with_path + (name,), f"sub-flow {rel} has no input {name!r}",
                         _suggest(name, list(sub.inputs)), key=True)
        for name, spec in sub.inputs.items():
            if spec.is_required and name not in given:
                self.add(with_path if given else path,
                         f"sub-flow {rel} needs input {name!r}", f"add `with: {{{name}: ...}}`")

    # -- graph -----------------------------------------------------------------------
    def graph(self) -> Plan | None:
        import networkx as nx

        g = nx.DiGraph()
        g.add_nodes_from(self.flow.steps)
        for sid, deps in self.deps.items():
            g.add_edges_from((d, sid) for d in deps)
        cyclic = False
        for comp in nx.strongly_connected_components(g):
            node = min(comp)
            if len(comp) == 1 and not g.has_edge(node, node):
                continue
            cyclic = True
            cycle = nx.find_cycle(g.subgraph(comp), source=node)
            names = [u for u, _ in cycle] + [cycle[0][0]]
            # edges point from dependency to dependent; show "a needs b" order
            names.reverse()
            self.add(("steps", names[0]), "dependency cycle: " + " -> ".join(names),
                     "each arrow reads 'needs'; remove one of these references or needs",
                     key=True)
        if cyclic or self.problems:
            return None
        gens = tuple(tuple(sorted(gen)) for gen in nx.topological_generations(g))
        order = tuple(s for gen in gens for s in gen)
        needs = {s: frozenset(self.deps[s]) for s in self.flow.steps}
        dependents: dict[str, set[str]] = {s: set() for s in self.flow.steps}
        for s, deps in needs.items():
            for d in deps:
                dependents[d].add(s)
        return Plan(
            file=self.ff,
            order=order,
            generations=gens,
            needs=MappingProxyType(needs),
            dependents=MappingProxyType({k: frozenset(v) for k, v in dependents.items()}),
            subflows=MappingProxyType(dict(self.subflows)),
        )


def _plan(ff: FlowFile, stack: tuple[str, ...]) -> Plan:
    checker = _Checker(ff, stack)
    checker.defaults()
    checker.tool_defs()
    checker.steps()
    checker.outputs()
    plan = checker.graph()
    if plan is None:
        problems = sorted(checker.problems, key=lambda p: (p.file or "", p.line or 0, p.column or 0))
        raise PlanError(problems)
    return plan


def build_plan(ff: FlowFile) -> Plan:
    """Check a loaded flow's references and order its steps."""
    stack = (str(ff.path.resolve()),) if ff.path else ()
    return _plan(ff, stack)


def load_plan(path: str | Path) -> Plan:
    """Load, validate and plan a flow file (or ``recipe:NAME``); raises SpecError /
    PlanError with every problem."""
    if str(path).startswith(RECIPE_PREFIX):
        path = resolve_flow_ref(Path.cwd(), str(path))
    return build_plan(load_file(path))
