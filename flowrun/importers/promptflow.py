"""``flowrun import promptflow DIR -o OUT``: a Prompt flow folder -> a flowrun flow.

- ``inputs`` / ``outputs`` carry over (``int`` -> integer, ``double`` -> number, ``image``
  -> file); ``${node.output}`` becomes ``steps.node.output`` (``.text`` for an llm node).
- ``llm`` nodes become model steps: the Jinja template carried over, ``# system:`` as
  ``instructions`` and ``# user:`` as ``input``, its variables set from the node's inputs
  (``{% set var = ... %}``); deployment / model, max_tokens, temperature, top_p kept.
- ``prompt`` nodes become templates, inlined where they are used (``{% set p %}...``).
- ``python`` nodes become ``python:`` steps calling their ``@tool`` function; the files
  are copied with their ``promptflow`` imports pointed at a stand-in module.
- ``activate: {when, is}`` becomes ``if:``; connections become a ``provider:`` block.

Anything else is listed in the report with its line in ``flow.dag.yaml``; a node that
cannot be converted becomes a step that fails saying so, never a silent gap.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from ..errors import SpecError, UsageError
from .pf_parts import (COMPAT, COMPAT_SOURCE, Report, jinja_literal, module_name, split_roles,
                       template_names, tool_function, without_promptflow)

_REF = re.compile(r"^\$\{(?P<root>[\w-]+)\.(?P<path>[\w.\-]+)\}$")
_ANY_REF = re.compile(r"\$\{([\w-]+)\.([\w.\-]+)\}")
_TYPES = {"string": "string", "int": "integer", "double": "number", "bool": "boolean",
          "list": "list", "object": "object", "image": "file"}
_MODEL_KEYS = {"deployment_name", "model"}
_KEPT_PARAMS = {"max_tokens": ("max_output_tokens", int), "temperature": ("temperature", float),
                "top_p": ("top_p", float)}
_DROPPED_PARAMS = {"stop", "presence_penalty", "frequency_penalty", "logit_bias", "n", "seed",
                   "response_format", "best_of", "echo", "suffix", "logprobs", "user",
                   "functions", "function_call", "tools", "tool_choice", "detail"}
_SKIP_COPY = {"flow.dag.yaml", "flow.dag.yml", "__pycache__", ".promptflow", ".runs"}


def import_promptflow(src: Path, out: Path, name: str | None = None) -> Report:
    """Convert the Prompt flow folder ``src`` into ``out``; returns the report."""
    from ..loader import parse_yaml

    dag = next((src / n for n in ("flow.dag.yaml", "flow.dag.yml") if (src / n).is_file()), None)
    if dag is None:
        raise UsageError(f"{src}: no flow.dag.yaml", hint="give a Prompt flow folder (DAG flow)")
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"{out} already exists and is not empty", hint="choose an empty -o folder")
    text = dag.read_text(encoding="utf-8")
    try:
        data, source = parse_yaml(text, str(dag))
    except SpecError as exc:
        raise UsageError(f"cannot read {dag}:\n{exc.format()}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{dag}: not a Prompt flow DAG (expected a mapping)")
    name = name or re.sub(r"[^\w-]", "-", src.resolve().name) or "imported"
    report = Report(source=str(src), flow_file=str(out / f"{name}.yaml"))
    conv = _Converter(src, out, data, source, report)
    flow = conv.convert(name)
    out.mkdir(parents=True, exist_ok=True)
    conv.copy_files()
    path = out / f"{name}.yaml"
    path.write_text(_header(report, conv) + _dump(flow), encoding="utf-8")
    try:
        from ..plan import load_plan

        load_plan(path)
    except SpecError as exc:
        report.problems = [p.format() for p in exc.problems]
    (out / "IMPORT-REPORT.md").write_text(report.format(), encoding="utf-8")
    return report


class _Converter:
    def __init__(self, src: Path, out: Path, data: dict[str, Any], source: Any, report: Report):
        self.src, self.out, self.data, self.source, self.report = src, out, data, source, report
        raw_nodes = data.get("nodes") or []
        self.nodes: dict[str, dict[str, Any]] = {}
        self.index: dict[str, int] = {}
        self.ids: dict[str, str] = {}
        for i, node in enumerate(raw_nodes):
            if isinstance(node, dict) and node.get("name"):
                node = self._variant(i, node)
                self.nodes[node["name"]] = node
                self.index[node["name"]] = i
                self.ids[node["name"]] = re.sub(r"\W", "_", node["name"])
        self.connections: set[str] = set()
        self.azure = False
        self.modules: dict[str, str] = {}  # node file (relative) -> module name
        self.steps: dict[str, dict[str, Any]] = {}
        self.pending_if: list[str] = []
        self.includes: dict[str, Path] = {}
        for item in data.get("additional_includes") or []:
            path = (src / str(item)).resolve()
            if path.exists():
                self.includes[path.name] = path
            else:
                report.lose(self.line("additional_includes"), None, f"additional include {item} not found")

    def find(self, rel: str | None) -> Path | None:
        """A node's file: in the folder, or among the additional includes."""
        if not rel:
            return None
        if (self.src / rel).is_file():
            return self.src / rel
        return self.includes.get(Path(rel).name)

    # -- positions -------------------------------------------------------------------
    def line(self, *path: Any) -> int | None:
        return self.source.locate(path)[0]

    def node_line(self, name: str, *path: Any) -> int | None:
        return self.line("nodes", self.index[name], *path)

    def _variant(self, i: int, node: dict[str, Any]) -> dict[str, Any]:
        if not node.get("use_variants"):
            return node
        variants = (self.data.get("node_variants") or {}).get(node["name"]) or {}
        default = variants.get("default_variant_id")
        chosen = (variants.get("variants") or {}).get(default, {}).get("node")
        if not chosen:
            self.report.lose(self.line("nodes", i), node["name"], "use_variants without a "
                             "default variant in node_variants")
            return node
        others = sorted(set(variants.get("variants") or {}) - {default})
        if others:
            self.report.lose(self.line("node_variants", node["name"]), node["name"],
                             f"variants {', '.join(others)} dropped; {default} (the default) kept")
        return {**chosen, "name": node["name"], **{k: v for k, v in node.items()
                                                   if k in ("activate", "aggregation")}}

    # -- references ------------------------------------------------------------------
    def expr(self, ref: str, node: str | None) -> tuple[str, list[str]]:
        """A ``${...}`` reference as a Jinja expression, plus the blocks it needs first
        (the inlined prompt templates)."""
        m = _REF.match(ref.strip())
        if not m:
            return jinja_literal(ref), []
        root, path = m.group("root"), m.group("path").split(".")
        if root == "inputs":
            return "inputs." + ".".join(path), []
        if root not in self.nodes:
            self.report.lose(None, node, f"reference {ref} names no node; left as text")
            return jinja_literal(ref), []
        target = self.nodes[root]
        rest = path[1:] if path and path[0] == "output" else path
        kind = target.get("type")
        if kind == "prompt":
            var = f"_{self.ids[root]}"
            return var + "".join(f".{p}" for p in rest), self.prompt_block(root, var)
        sid = self.ids[root]
        if kind in ("llm", "custom_llm") and not rest:
            return f"steps.{sid}.text", []
        return f"steps.{sid}.output" + "".join(f".{p}" for p in rest), []

    def value(self, v: Any, node: str | None) -> tuple[Any, list[str]]:
        """A node input or output reference as a flowrun value (a template when it refers)."""
        if isinstance(v, str) and _REF.match(v.strip()):
            e, blocks = self.expr(v, node)
            if not blocks:
                return "{{ " + e + " }}", []
            return "".join(blocks) + "{{ " + e + " }}", blocks
        if isinstance(v, str) and _ANY_REF.search(v):
            self.report.lose(None, node, f"'{v}': a reference inside text is kept as text")
        return v, []

    def prompt_block(self, name: str, var: str) -> list[str]:
        """``{% set _p %}...{% endset %}``: a prompt node rendered where it is used."""
        node = self.nodes[name]
        body = self.template_text(name)
        if body is None:
            return [f"{{% set {var} = '' %}}"]
        blocks: list[str] = []
        sets = []
        for key, v in (node.get("inputs") or {}).items():
            e, more = self.expr(v, name) if isinstance(v, str) else (jinja_literal(v), [])
            blocks += more
            sets.append(f"{{% set {key} = {e} %}}")
        sets += self.missing_vars(name, body, set(node.get("inputs") or {}))
        cond = self.condition(name, node)
        if cond:
            self.pending_if.append(cond)
        return blocks + [f"{{% set {var} %}}{''.join(sets)}{body}{{% endset %}}"]

    def missing_vars(self, name: str, body: str, given: set[str]) -> list[str]:
        names = template_names(body) or set()
        missing = sorted(names - given - {"inputs", "steps", "secrets", "env"})
        if missing:
            self.report.lose(self.node_line(name, "inputs"), name, "template variables without "
                             f"an input render empty: {', '.join(missing)}")
        return [f"{{% set {m} = '' %}}" for m in missing]

    def template_text(self, name: str) -> str | None:
        node = self.nodes[name]
        rel = (node.get("source") or {}).get("path")
        path = self.find(rel)
        if path is None:
            self.report.lose(self.node_line(name, "source"), name,
                             f"template file {rel!r} not found")
            return None
        return path.read_text(encoding="utf-8").rstrip("\n")

    # -- the flow --------------------------------------------------------------------
    def convert(self, name: str) -> dict[str, Any]:
        flow: dict[str, Any] = {"name": name, "description": f"Imported from Prompt flow ({self.src.name})."}
        inputs = {}
        for key, spec in (self.data.get("inputs") or {}).items():
            spec = spec if isinstance(spec, dict) else {"type": spec}
            kind = _TYPES.get(str(spec.get("type", "string")))
            if kind is None:
                self.report.lose(self.line("inputs", key), None, f"input {key}: type "
                                 f"{spec.get('type')!r} has no flowrun type; string used")
                kind = "string"
            decl: dict[str, Any] = {"type": kind}
            for k in ("default", "description", "enum"):
                if spec.get(k) is not None:
                    decl[k] = spec[k]
            if kind == "file" and isinstance(decl.get("default"), str) and "://" in decl["default"]:
                self.report.lose(self.line("inputs", key, "default"), None, f"input {key}: a "
                                 "URL default for an image; a file input takes a path, so it was dropped")
                decl.pop("default")
            if spec.get("is_chat_input") or spec.get("is_chat_history"):
                self.report.notes.append(f"input {key} was a chat input; flowrun flows have no chat mode")
            inputs[key] = decl
        if inputs:
            flow["inputs"] = inputs
        for key in ("additional_includes", "environment"):
            if key == "environment" and self.data.get(key):
                self.report.notes.append("environment (python_requirements_txt): install those "
                                         "packages yourself; the file was copied")
        for node in self.nodes:
            self.node(node)
        self.skipped_needs()
        models = {s.get("model") for s in self.steps.values() if "input" in s}
        if len(models) == 1 and None not in models:
            flow["defaults"] = {"model": models.pop()}
            for s in self.steps.values():
                s.pop("model", None)
        if self.connections:
            flow["provider"] = {"kind": "azure" if self.azure else "openai"}
            self.report.notes.append(
                f"connections {', '.join(sorted(self.connections))} became the provider block "
                f"(kind {flow['provider']['kind']}); set AZURE_OPENAI_ENDPOINT and "
                "AZURE_OPENAI_API_KEY (or OPENAI_API_KEY), or pass --provider")
        flow["steps"] = self.steps or {"empty": {"input": "This Prompt flow had no nodes."}}
        outputs = {}
        for key, spec in (self.data.get("outputs") or {}).items():
            ref = spec.get("reference") if isinstance(spec, dict) else spec
            outputs[key], _ = self.value(ref, None) if ref is not None else ("", [])
        if outputs:
            flow["outputs"] = outputs
        for key in self.data:
            if key not in ("$schema", "inputs", "outputs", "nodes", "node_variants",
                           "environment", "additional_includes"):
                self.report.lose(self.line(key), None, f"top-level {key!r} is not converted")
        return flow

    def node(self, name: str) -> None:
        node = self.nodes[name]
        kind = node.get("type")
        sid = self.ids[name]
        if kind == "prompt":
            self.report.steps[f"({name})"] = "prompt -> template, inlined where used" + (
                " (its activate becomes their if:)" if node.get("activate") else "")
            return
        self.pending_if: list[str] = []
        if node.get("connection"):
            self.connections.add(str(node["connection"]))
            self.azure |= "azure" in str(node.get("provider", "")).lower() or "deployment_name" in (node.get("inputs") or {})
        if kind == "llm" or (kind == "custom_llm" and str((node.get("source") or {}).get("path", "")).endswith((".jinja2", ".j2"))):
            step = self.llm(name, node)
            self.report.steps[sid] = f"{kind} -> model step"
        elif kind == "python":
            step = self.python(name, node)
        else:
            tool = (node.get("source") or {}).get("tool") or kind
            step = self.stub(name, f"node type {kind!r} ({tool})")
        if sid != name:
            self.report.notes.append(f"node {name} is step {sid} (step ids are identifiers)")
        self.activate(name, node, step)
        if node.get("aggregation"):
            self.report.lose(self.node_line(name, "aggregation"), name, "aggregation (runs over "
                             "all lines of a batch) is a plain step here")
        self.steps[sid] = step

    def stub(self, name: str, reason: str) -> dict[str, Any]:
        self.report.lose(self.node_line(name), name, f"{reason}: not converted; its step fails, saying so (steps that need it skip)")
        self.report.steps[self.ids[name]] = "NOT CONVERTED -> failing placeholder step"
        return {"python": f"{COMPAT}:not_converted", "with": {"node": name, "reason": reason},
                "continue_on_error": True}

    def llm(self, name: str, node: dict[str, Any]) -> dict[str, Any]:
        step: dict[str, Any] = {}
        body = self.template_text(name)
        params = node.get("inputs") or {}
        variables = {k: v for k, v in params.items()
                     if k not in _MODEL_KEYS and k not in _KEPT_PARAMS and k not in _DROPPED_PARAMS
                     and k != "connection"}
        model = params.get("deployment_name") or params.get("model")
        if model:
            step["model"] = str(model)
        for key, (target, cast) in _KEPT_PARAMS.items():
            if key in params and not (isinstance(params[key], str) and params[key].startswith("${")):
                try:
                    step[target] = cast(params[key])
                except (TypeError, ValueError):
                    self.report.lose(self.node_line(name, "inputs", key), name, f"{key}: {params[key]!r} is not a number")
        for key in sorted(set(params) & _DROPPED_PARAMS):
            self.report.lose(self.node_line(name, "inputs", key), name,
                             f"{key} has no Responses API equivalent; dropped")
        if node.get("api") == "completion":
            self.report.notes.append(f"node {name}: the completion API became a Responses call")
        if body is None:
            step["input"] = "(template not found)"
            return step
        if re.search(r"!\[[^\]]*\]\(\s*\{\{", body):
            self.report.lose(self.node_line(name, "source"), name, "images in the template "
                             "(![image]({{...}})) are sent as text, not as image parts")
        instructions, user, note = split_roles(body)
        if note:
            self.report.lose(self.node_line(name, "source"), name, note)
        for key, text in (("instructions", instructions), ("input", user)):
            if text is None:
                continue
            used = template_names(text) or set()
            prelude: list[str] = []
            for var in sorted(used & set(variables)):
                v = variables[var]
                e, blocks = self.expr(v, name) if isinstance(v, str) else (jinja_literal(v), [])
                prelude += blocks + [f"{{% set {var} = {e} %}}"]
            prelude += self.missing_vars(name, text, set(variables)) if key == "input" else [
                f"{{% set {m} = '' %}}" for m in sorted(used - set(variables) - {"inputs", "steps"})]
            step[key] = "".join(prelude) + text if prelude else text
        if not step.get("input", "").strip():
            step["input"] = step.pop("instructions", "") or "(empty prompt)"
        return step

    def python(self, name: str, node: dict[str, Any]) -> dict[str, Any]:
        source = node.get("source") or {}
        if source.get("type") == "package" or source.get("tool"):
            return self.stub(name, f"package tool {source.get('tool')}")
        rel = source.get("path")
        path = self.find(rel)
        if path is None:
            return self.stub(name, f"Python file {rel!r} not found")
        fn, why = tool_function(path.read_text(encoding="utf-8"))
        if fn is None:
            return self.stub(name, why or "no tool function")
        module = module_name(Path(rel))
        self.modules[rel] = module
        args: dict[str, Any] = {}
        for key, v in (node.get("inputs") or {}).items():
            if key == "connection" or (isinstance(v, str) and v in self._connection_names()):
                self.connections.add(str(v))
                self.report.lose(self.node_line(name, "inputs", key), name, f"argument {key}: "
                                 f"connection {v!r} is not passed; have the code read "
                                 "{{ secrets.NAME }} or the environment instead")
                continue
            args[key], _ = self.value(v, name)
        self.report.steps[self.ids[name]] = f"python -> python step ({module}:{fn})"
        step: dict[str, Any] = {"python": f"{module}:{fn}"}
        if args:
            step["with"] = args
        return step

    def _connection_names(self) -> set[str]:
        return {str(n.get("connection")) for n in self.nodes.values() if n.get("connection")}

    def condition(self, name: str, node: dict[str, Any]) -> str | None:
        act = node.get("activate")
        if isinstance(act, dict) and "when" in act:
            e, _ = self.expr(str(act["when"]), name)
            return f"{e} == {jinja_literal(act.get('is'))}"
        return None

    def activate(self, name: str, node: dict[str, Any], step: dict[str, Any]) -> None:
        """``activate`` -> ``if:``, with the conditions of the prompt nodes inlined here."""
        conds = [c for c in (self.condition(name, node), *self.pending_if) if c]
        if conds:
            step["if"] = "{{ " + " and ".join(dict.fromkeys(conds)) + " }}"

    def skipped_needs(self) -> None:
        """Prompt flow runs a node when only some of the nodes it reads were bypassed."""
        for name, node in self.nodes.items():
            step = self.steps.get(self.ids[name])
            deps = self.deps(node)
            conditional = [d for d in deps if "if" in self.steps.get(self.ids[d], {})]
            if step is not None and conditional and len(deps) > 1:
                step["on_skipped_needs"] = "run"
                self.report.notes.append(f"step {self.ids[name]} runs when some of "
                                         f"{', '.join(conditional)} were skipped (their output is empty)")

    def deps(self, node: dict[str, Any]) -> list[str]:
        found = set()
        for v in (node.get("inputs") or {}).values():
            for m in _ANY_REF.finditer(str(v)):
                if m.group(1) in self.nodes and self.nodes[m.group(1)].get("type") != "prompt":
                    found.add(m.group(1))
        return sorted(found)

    # -- files -----------------------------------------------------------------------
    def copy_files(self) -> None:
        """Copy the folder (and additional_includes) into ``out``; Python files lose their
        promptflow imports."""
        for path in self.includes.values():
            self._copy(path, self.out / path.name)
        for path in sorted(self.src.iterdir()):
            if path.name not in _SKIP_COPY:
                self._copy(path, self.out / path.name)
        (self.out / f"{COMPAT}.py").write_text(COMPAT_SOURCE, encoding="utf-8")

    def _copy(self, path: Path, dest: Path) -> None:
        if path.is_dir():
            for child in sorted(path.iterdir()):
                if child.name not in _SKIP_COPY:
                    self._copy(child, dest / child.name)
            return
        if path.is_symlink() and not path.exists():
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".py":
            text, _ = without_promptflow(path.read_text(encoding="utf-8", errors="replace"))
            dest.with_name(re.sub(r"[^\w.]", "_", dest.name)).write_text(text, encoding="utf-8")
        else:
            shutil.copyfile(path, dest)


def _header(report: Report, conv: _Converter) -> str:
    lines = [f"# Imported from Prompt flow: {conv.src}/flow.dag.yaml by `flowrun import promptflow`.",
             "# What did not carry over is listed in IMPORT-REPORT.md beside this file."]
    if report.lost:
        lines.append(f"# Not converted: {len(report.lost)} item(s) - read the report before running.")
    return "\n".join(lines) + "\n"


def _dump(flow: dict[str, Any]) -> str:
    import io

    from ruamel.yaml import YAML
    from ruamel.yaml.scalarstring import LiteralScalarString

    def literal(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: literal(x) for k, x in v.items()}
        if isinstance(v, list):
            return [literal(x) for x in v]
        if isinstance(v, str) and "\n" in v:
            return LiteralScalarString(re.sub(r"[ \t]+\n", "\n", v))
        return v

    yaml = YAML()
    yaml.default_flow_style = False
    yaml.width = 100
    buf = io.StringIO()
    yaml.dump(literal(flow), buf)
    return buf.getvalue()
