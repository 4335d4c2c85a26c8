"""Property-based tests: whatever the bytes, loading and planning a flow either succeeds
or raises SpecError with usable problems; nothing else ever escapes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from flowrun.errors import SpecError
from flowrun.loader import load_file, load_text
from flowrun.plan import build_plan

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,7}", fullmatch=True)
WORDS = st.sampled_from(["alpha", "beta", "the report", "ünïcode", "x: y", "{braces}", ""])
KEYS = st.sampled_from([
    "name", "steps", "input", "inputs", "tools", "needs", "continue", "for_each", "if",
    "computer_use", "task", "flow", "with", "python", "mcp", "command", "code_interpreter",
    "image_generation", "type", "default", "text", "image", "file", "detail", "retries",
    "timeout", "store", "mode", "step", "outputs", "defaults", "reasoning", "effort",
    "output_schema", "headers", "approve", "require_approval", "[key]", "list[...]", "inline",
])
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**20), st.floats(allow_nan=True),
    st.text(max_size=20), WORDS, KEYS,
    st.sampled_from(["{{ steps.a.text }}", "{{ item }}", "{{ inputs.x }}", "{% if %}", "{{",
                     "30s", "-5m", "tools:fn", "manual", "string", "file", "{{ (((1))) }}"]),
)
ANY_VALUE = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=4)),
    max_leaves=12,
)


@st.composite
def valid_flows(draw: st.DrawFn) -> dict[str, Any]:
    """A flow that must load and plan: references only point backwards."""
    inputs = draw(st.lists(NAMES, max_size=3, unique=True))
    types = st.sampled_from(["string", "integer", "number", "boolean", "list", "object", "file"])
    doc: dict[str, Any] = {"name": draw(NAMES)}
    if inputs:
        doc["inputs"] = {n: draw(st.one_of(types, st.builds(lambda t: {"type": t}, types)))
                         for n in inputs}
    tool_names = draw(st.lists(NAMES, max_size=3, unique=True))
    tool_kinds = [
        {"python": "json:dumps"},
        {"command": ["./run.sh"]},
        {"mcp": "https://example.com/mcp", "approve": "all"},
        {"code_interpreter": {}},
        {"image_generation": {"size": "1024x1024"}},
    ]
    if tool_names:
        doc["tools"] = {n: draw(st.sampled_from(tool_kinds)) for n in tool_names}
    step_ids = draw(st.lists(NAMES, min_size=1, max_size=6, unique=True))
    steps: dict[str, Any] = {}
    for i, sid in enumerate(step_ids):
        earlier = step_ids[:i]
        refs = [_text_of(s, steps) for s in draw(st.lists(st.sampled_from(earlier), max_size=2))] if earlier else []
        refs += [f"{{{{ inputs.{n} }}}}" for n in draw(st.lists(st.sampled_from(inputs), max_size=2))] if inputs else []
        step: dict[str, Any] = {"input": " ".join([draw(WORDS), *refs]) or "go"}
        if earlier and draw(st.booleans()):
            step["needs"] = draw(st.lists(st.sampled_from(earlier), max_size=2, unique=True))
        if draw(st.booleans()):
            step["for_each"] = draw(st.sampled_from([[1, 2], ["a"], "{{ [1, 2] }}"]))
            step["input"] += " {{ item }} {{ index }}"
        elif earlier and draw(st.booleans()):
            target = draw(st.sampled_from(earlier))
            if "for_each" not in steps[target]:
                step["continue"] = target
        if tool_names and draw(st.booleans()):
            step["tools"] = draw(st.lists(st.sampled_from(tool_names), max_size=2, unique=True))
        if draw(st.booleans()):
            step["output_schema"] = {"type": "object", "properties": {"x": {"type": "string"}}}
        if draw(st.booleans()):
            step["retries"] = draw(st.integers(0, 5))
            step["timeout"] = draw(st.sampled_from(["30s", "5m", "500ms", 10]))
        steps[sid] = step
    doc["steps"] = steps
    doc["outputs"] = {"last": _text_of(step_ids[-1], steps)}
    return doc


def _text_of(step: str, steps: dict[str, Any]) -> str:
    """A template reading a step's text: a for_each step is a list of results."""
    if "for_each" in steps[step]:
        return f"{{{{ steps.{step} | map(attribute='text') | join(' ') }}}}"
    return f"{{{{ steps.{step}.text }}}}"


def dump(doc: Any, flow_style: bool | None) -> str:
    return yaml.safe_dump(doc, default_flow_style=flow_style, allow_unicode=True, sort_keys=False)


def only_spec_errors(run: Callable[[], Any], text: str) -> None:
    """Run; any exception but SpecError fails the test. Problems must be usable."""
    try:
        run()
    except SpecError as exc:
        assert exc.problems
        lines = text.count("\n") + 1
        for p in exc.problems:
            assert isinstance(p.message, str) and p.message.strip()
            if p.line is not None:
                assert 1 <= p.line <= lines + 1, (p.format(), lines)
                assert p.column is None or p.column >= 1
            assert p.format()  # formatting never fails


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def load_and_plan(text: str, base: Path) -> Callable[[], Any]:
    return lambda: build_plan(load_text(text, "fuzz.yaml", base_dir=base))


# --------------------------------------------------------------------------- properties


@SETTINGS
@given(doc=valid_flows(), flow_style=st.sampled_from([None, True, False]))
def test_generated_valid_flows_plan(doc: dict[str, Any], flow_style: bool | None) -> None:
    plan = build_plan(load_text(dump(doc, flow_style), "gen.yaml"))
    assert set(plan.order) == set(doc["steps"])
    position = {sid: i for i, sid in enumerate(plan.order)}
    for sid, step in doc["steps"].items():
        expected = set(step.get("needs", []))
        expected |= {s for s in doc["steps"]
                     if f"steps.{s}." in step["input"] or f"steps.{s} |" in step["input"]}
        if "continue" in step:
            expected.add(step["continue"])
        assert plan.needs[sid] == expected
        assert all(position[d] < position[sid] for d in expected)


def _mutate(doc: Any, draw: st.DrawFn) -> Any:
    """Delete, rename or retype one key somewhere in the document."""
    path: list[Any] = []
    node = doc
    while isinstance(node, (dict, list)) and node and draw(st.booleans()):
        key = draw(st.sampled_from(list(node) if isinstance(node, dict) else range(len(node))))
        path.append(key)
        node = node[key]
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if not path:
        return draw(ANY_VALUE) if draw(st.booleans()) else doc
    last = path[-1]
    action = draw(st.sampled_from(["delete", "rename", "retype"]))
    if action == "delete" and isinstance(parent, dict):
        del parent[last]
    elif action == "rename" and isinstance(parent, dict):
        parent[draw(st.one_of(KEYS, st.text(max_size=8), st.integers()))] = parent.pop(last)
    else:
        parent[last] = draw(ANY_VALUE)
    return doc


@SETTINGS
@given(data=st.data())
def test_mutated_documents(data: st.DataObject, workdir: Path) -> None:
    doc = data.draw(valid_flows())
    for _ in range(data.draw(st.integers(1, 4))):
        doc = _mutate(doc, data.draw)
    flow_style = data.draw(st.sampled_from([None, True, False]))
    try:
        text = dump(doc, flow_style)
    except yaml.YAMLError:
        assume(False)
    only_spec_errors(load_and_plan(text, workdir), text)


@SETTINGS
@given(data=st.data())
def test_corrupted_text(data: st.DataObject, workdir: Path) -> None:
    text = dump(data.draw(valid_flows()), data.draw(st.sampled_from([None, True, False])))
    for _ in range(data.draw(st.integers(1, 5))):
        at = data.draw(st.integers(0, len(text)))
        op = data.draw(st.sampled_from(["insert", "delete", "truncate"]))
        if op == "insert":
            junk = data.draw(st.one_of(
                st.text(max_size=6),
                st.sampled_from(["\t", "\n", ":", "- ", "{", "}", "[", "'", '"', "&a ", "*a",
                                 "!!binary ", "<<: ", "? ", "\x00", "\ufeff", "{{", "%}", "|\n"]),
            ))
            text = text[:at] + junk + text[at:]
        elif op == "delete":
            text = text[:at] + text[at + data.draw(st.integers(1, 15)):]
        else:
            text = text[:at]
    only_spec_errors(load_and_plan(text, workdir), text)


@SETTINGS
@given(raw=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass"))),
       prefix=st.sampled_from([b"", b"name: t\nsteps:\n  a:\n    input: ", b"\xef\xbb\xbf"]))
def test_random_bytes_on_disk(raw: bytes, prefix: bytes, workdir: Path) -> None:
    path = workdir / "bytes.yaml"
    data = prefix + raw
    path.write_bytes(data)
    text = data.decode("utf-8", "replace")
    only_spec_errors(lambda: build_plan(load_file(path)), text)


@SETTINGS
@given(value=ANY_VALUE, style=st.sampled_from(["yaml", "yaml-flow", "json"]))
def test_random_documents(value: Any, style: str, workdir: Path) -> None:
    if style == "json":
        text = json.dumps(value, allow_nan=True, default=str)
    else:
        text = dump(value, style == "yaml-flow")
    only_spec_errors(load_and_plan(text, workdir), text)


@SETTINGS
@given(text=st.text(alphabet=st.sampled_from(list("ab:- \n\t{}[],'\"#&*!|>?%@`\\{}$x0.")), max_size=80))
def test_random_yaml_like_text(text: str, workdir: Path) -> None:
    only_spec_errors(load_and_plan(text, workdir), text)
