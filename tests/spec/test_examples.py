"""examples/flows/ is teaching material: every flow validates, and together they show
every kind of step, tool, input part and option of the flow language."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flowrun.plan import Plan, load_plan
from flowrun.spec import BUILTIN_TOOLS, tool_kind
from flowkit import example_flows

EXAMPLES = Path(__file__).parents[2] / "examples" / "flows"
FLOWS = example_flows()


@pytest.fixture(scope="module")
def plans() -> dict[str, Plan]:
    return {p.name: load_plan(p) for p in FLOWS}


def _features(plan: Plan) -> set[str]:
    flow = plan.flow
    found: set[str] = set()
    found |= {f"input type {spec.type}" for spec in flow.inputs.values()}
    if flow.secrets:
        found.add("secrets")
    if flow.outputs:
        found.add("outputs")
    for tool in flow.tools.values():
        found.add(f"tool {tool_kind(tool)}")
    for step in flow.steps.values():
        found.add(f"step {step.kind}")
        for ref in step.tools:
            kind = ref if isinstance(ref, str) and ref in BUILTIN_TOOLS else (
                tool_kind(flow.tools[ref]) if isinstance(ref, str) else tool_kind(ref))
            found.add(f"tool {kind}")
            if not isinstance(ref, str):
                found.add("inline tool")
        if isinstance(step.input, list):
            found |= {f"part {type(part).__name__}" for part in step.input}
        given = step.given()
        for key in ("output_schema", "for_each", "if_", "needs", "files", "background", "stream",
                    "reasoning", "include", "continue_on_error", "on_skipped_needs",
                    "max_parallel", "tool_choice", "parallel_tool_calls", "max_tool_turns",
                    "retries", "timeout", "metadata", "store"):
            if key in given:
                found.add(key.rstrip("_"))
        if step.continue_ is not None:
            found.add(f"continue {step.continue_.mode}")
        if step.with_ is not None:
            found.add("with")
        if step.reasoning is not None and step.reasoning.summary:
            found.add("reasoning summary")
        if step.computer_use is not None:
            found.add(f"safety_checks {step.computer_use.safety_checks}")
        for part in step.input if isinstance(step.input, list) else []:
            if getattr(part, "upload", False):
                found.add("upload")
    for name, tool in flow.tools.items():
        if getattr(tool, "bind", None):
            found.add("bind")
        if getattr(tool, "headers", None):
            found.add("mcp headers")
        if getattr(tool, "approve", None) is not None:
            found.add("mcp approve")
    return found


def test_there_are_enough_examples() -> None:
    assert len(FLOWS) >= 6


@pytest.mark.parametrize("path", FLOWS, ids=lambda p: p.name)
def test_example_is_commented_teaching_material(path: Path, plans: dict[str, Plan]) -> None:
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[0] == "# yaml-language-server: $schema=../../schemas/flow.schema.json"
    comments = [line for line in lines if line.strip().startswith("#")]
    assert len(comments) >= 5, "explain what the keys do and why"
    assert plans[path.name].flow.description


def test_examples_cover_the_language(plans: dict[str, Plan]) -> None:
    found: set[str] = set()
    for plan in plans.values():
        found |= _features(plan)
    required = {
        "step responses", "step computer_use", "step flow",
        "tool python", "tool command", "tool flow", "tool mcp", "tool code_interpreter",
        "tool image_generation", "tool web_search", "tool file_search", "inline tool",
        "part TextPart", "part ImagePart", "part FilePart", "upload",
        "input type string", "input type integer", "input type file",
        "continue previous_response_id", "continue manual", "store", "include",
        "output_schema", "for_each", "max_parallel", "if", "needs", "with", "outputs",
        "files", "background", "stream", "reasoning", "reasoning summary",
        "retries", "timeout", "continue_on_error", "on_skipped_needs",
        "tool_choice", "parallel_tool_calls", "max_tool_turns", "metadata",
        "secrets", "bind", "mcp headers", "mcp approve", "safety_checks ask",
    }
    assert required - found == set()


def test_python_tools_of_the_examples_exist_with_docs_and_hints() -> None:
    import importlib.util
    import inspect

    for plan in [load_plan(p) for p in FLOWS]:
        for tool in plan.flow.tools.values():
            if tool_kind(tool) != "python":
                continue
            module_name, func_name = tool.python.split(":")
            file = EXAMPLES / (module_name.replace(".", "/") + ".py")
            spec = importlib.util.spec_from_file_location(f"example_{module_name}", file)
            assert spec is not None and spec.loader is not None, file
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            func: Any = getattr(module, func_name)
            assert inspect.getdoc(func)
            hints = inspect.signature(func).parameters
            assert all(p.annotation is not inspect.Parameter.empty for p in hints.values())


def test_command_tools_of_the_examples_exist() -> None:
    for plan in [load_plan(p) for p in FLOWS]:
        for tool in plan.flow.tools.values():
            if tool_kind(tool) == "command":
                scripts = [a for a in tool.command if a.endswith(".py")]
                assert all((EXAMPLES / s).is_file() for s in scripts)


def test_example_data_files_exist() -> None:
    """A file input's default is relative to its flow file, so recipes run from anywhere."""
    for plan in [load_plan(p) for p in FLOWS]:
        for name, spec in plan.flow.inputs.items():
            if spec.type == "file" and spec.default is not None:
                assert (plan.base_dir / spec.default).is_file(), (plan.flow.name, name)
