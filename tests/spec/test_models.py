"""The flow models (flowrun.spec) as seen through load_text: shorthands, defaults,
durations, tool kinds, input parts, strictness."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from flowrun.errors import SpecError
from flowrun.loader import load_text
from flowrun.spec import (
    CodeInterpreterTool,
    CommandTool,
    FilePart,
    Flow,
    FlowTool,
    ImageGenerationTool,
    ImagePart,
    McpTool,
    PythonTool,
    RequireApprovalByName,
    SafetyAcknowledge,
    TextPart,
    parse_duration,
)

VALID = Path(__file__).parents[1] / "fixtures" / "valid"


def flow(text: str) -> Flow:
    return load_text(textwrap.dedent(text), "t.yaml").flow


def problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_text(textwrap.dedent(text), "t.yaml")
    return [p.message for p in info.value.problems]


def one_step(step_yaml: str, **top: str) -> Flow:
    extra = "".join(f"{k}: {v}\n" for k, v in top.items())
    body = textwrap.indent(textwrap.dedent(step_yaml), "    ")
    return load_text(f"name: t\n{extra}steps:\n  s:\n{body}", "t.yaml").flow


# --------------------------------------------------------------------------- inputs


def test_input_type_shorthand_equals_long_form() -> None:
    short = flow("""
        name: t
        inputs: {company: string, n: integer, doc: file}
        steps: {a: {input: x}}
    """)
    long = flow("""
        name: t
        inputs: {company: {type: string}, n: {type: integer}, doc: {type: file}}
        steps: {a: {input: x}}
    """)
    assert short.inputs == long.inputs
    assert short.inputs["n"].type == "integer"
    assert short.inputs["doc"].type == "file"


def test_input_defaults_and_required() -> None:
    f = flow("""
        name: t
        inputs:
          plain: {}
          with_default: {type: integer, default: 3}
          optional: {type: string, required: false}
          forced: {type: string, default: x, required: true}
        steps: {a: {input: x}}
    """)
    assert f.inputs["plain"].type == "string"  # the default type
    assert f.inputs["plain"].is_required
    assert not f.inputs["with_default"].is_required
    assert f.inputs["with_default"].default == 3
    assert not f.inputs["optional"].is_required
    assert f.inputs["forced"].is_required


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        ("string", "'x'", "3"),
        ("integer", "3", "3.5"),
        ("integer", "-1", "true"),
        ("number", "2.5", "'2.5'"),
        ("number", "2", "false"),
        ("boolean", "true", "'yes'"),
        ("list", "[1, 2]", "{a: 1}"),
        ("object", "{a: 1}", "[1]"),
        ("file", "report.pdf", "7"),
    ],
)
def test_input_default_must_match_type(kind: str, good: str, bad: str) -> None:
    template = "name: t\ninputs:\n  x: {{type: {kind}, default: {value}}}\nsteps: {{a: {{input: x}}}}\n"
    load_text(template.format(kind=kind, value=good))
    with pytest.raises(SpecError) as info:
        load_text(template.format(kind=kind, value=bad))
    assert f"is not of type {kind}" in info.value.problems[0].message


def test_input_default_must_be_in_enum() -> None:
    msgs = problems("""
        name: t
        inputs:
          tone: {enum: [formal, casual], default: rude}
        steps: {a: {input: x}}
    """)
    assert msgs == ["default 'rude' is not one of enum ['formal', 'casual']"]


# --------------------------------------------------------------------------- shorthands


def test_retries_shorthand_equals_policy() -> None:
    short = one_step("input: x\nretries: 5\n").steps["s"].retries
    long = one_step("input: x\nretries: {max: 5}\n").steps["s"].retries
    assert short == long
    assert (short.max, short.initial_delay, short.max_delay) == (5, 0.5, 60.0)  # the documented defaults


@pytest.mark.parametrize("bad", ["-1", "101", "true", "'3'", "[3]"])
def test_retries_rejects(bad: str) -> None:
    with pytest.raises(SpecError):
        one_step(f"input: x\nretries: {bad}\n")


def test_continue_shorthand_equals_mapping() -> None:
    text = "name: t\nsteps:\n  a: {{input: x}}\n  b: {{input: y, continue: {value}}}\n"
    short = load_text(text.format(value="a")).flow.steps["b"].continue_
    long = load_text(text.format(value="{step: a}")).flow.steps["b"].continue_
    assert short == long
    assert (short.step, short.mode) == ("a", "previous_response_id")
    manual = load_text(text.format(value="{step: a, mode: manual}")).flow.steps["b"].continue_
    assert manual.mode == "manual"


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30", 30.0),
        ("1.5", 1.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("500ms", 0.5),
        ("1h", 3600.0),
        ("2.5m", 150.0),
        (" 10 s ", 10.0),
    ],
)
def test_duration_parsing(text: str, seconds: float) -> None:
    value = text if not text.replace(".", "").isdigit() else float(text)
    assert parse_duration(value) == seconds
    step = one_step(f"input: x\ntimeout: '{text}'\n").steps["s"]
    assert step.timeout == seconds


@pytest.mark.parametrize("bad", ["soon", "5 minutes", "-5s", "0", "0s", "1d", "true", "[1]"])
def test_duration_rejects(bad: str) -> None:
    with pytest.raises(SpecError) as info:
        one_step(f"input: x\ntimeout: {bad}\n")
    (problem,) = info.value.problems
    assert problem.path == ("steps", "s", "timeout")


def test_durations_everywhere_they_are_used() -> None:
    f = flow("""
        name: t
        defaults: {timeout: 5m, retries: {initial_delay: 250ms, max_delay: 2m}}
        tools:
          t: {python: "m:f", timeout: 10s}
          sub: {flow: sub.yaml, timeout: 1m}
        steps: {a: {input: x, poll_interval: 500ms}}
    """)
    assert f.defaults.timeout == 300.0
    assert f.defaults.retries.initial_delay == 0.25
    assert f.defaults.retries.max_delay == 120.0
    assert f.tools["t"].timeout == 10.0
    assert f.tools["sub"].timeout == 60.0
    assert f.steps["a"].poll_interval == 0.5


# --------------------------------------------------------------------------- tools


def test_every_tool_kind_loads_as_its_class() -> None:
    f = load_text((VALID / "everything.yaml").read_text()).flow
    kinds = {name: type(tool) for name, tool in f.tools.items()}
    assert kinds == {
        "lookup": PythonTool,
        "shell_tool": CommandTool,
        "sub": FlowTool,
        "docs": McpTool,
        "ci": CodeInterpreterTool,
        "img": ImageGenerationTool,
    }
    docs = f.tools["docs"]
    assert isinstance(docs.require_approval, RequireApprovalByName)
    assert docs.require_approval.always == ["fetch"]
    assert docs.approve == ["search"]
    assert f.tools["ci"].code_interpreter.memory_limit == "4g"
    assert f.tools["img"].image_generation.partial_images == 2


def test_tool_defaults() -> None:
    f = flow("""
        name: t
        tools:
          fn: {python: "tools:fn"}
          docs: {mcp: "https://x/mcp"}
          ci: {code_interpreter: {}}
          img: {image_generation: null}
        steps: {a: {input: x, tools: [fn, docs, ci, img]}}
    """)
    assert f.tools["fn"].strict is True
    assert f.tools["fn"].bind == {}
    assert f.tools["docs"].require_approval == "always"
    assert f.tools["docs"].approve is None
    assert f.tools["ci"].code_interpreter.container == "auto"
    assert f.tools["img"].image_generation is None


def test_step_tools_mix_names_builtins_and_inline_definitions() -> None:
    f = flow("""
        name: t
        tools: {fn: {python: "tools:fn"}}
        steps:
          a:
            input: x
            tools: [fn, code_interpreter, {mcp: "https://x/mcp", approve: all}]
    """)
    tools = f.steps["a"].tools
    assert tools[:2] == ["fn", "code_interpreter"]
    assert isinstance(tools[2], McpTool) and tools[2].approve == "all"


@pytest.mark.parametrize(
    "tool",
    [
        "{description: no kind}",
        "{python: 'a:b', command: [x]}",
        "{mcp: 'https://x', flow: x.yaml}",
        "{}",
    ],
)
def test_tool_needs_exactly_one_kind(tool: str) -> None:
    msgs = problems(f"name: t\ntools: {{t: {tool}}}\nsteps: {{a: {{input: x}}}}\n")
    assert msgs and "exactly one of the keys" in msgs[0]


@pytest.mark.parametrize("ref", ["tools.lookup", "tools:", ":f", "a b:c", "1mod:f", "m:f.g"])
def test_python_reference_must_be_module_colon_function(ref: str) -> None:
    msgs = problems(f"name: t\ntools: {{t: {{python: '{ref}'}}}}\nsteps: {{a: {{input: x}}}}\n")
    assert msgs == [f"{ref!r} is not module:function (for example tools.finance:lookup)"]


def test_command_must_be_a_non_empty_list() -> None:
    assert problems("name: t\ntools: {t: {command: []}}\nsteps: {a: {input: x}}\n")
    assert problems("name: t\ntools: {t: {command: 'ls -l'}}\nsteps: {a: {input: x}}\n")


@pytest.mark.parametrize("name", ["ok", "with-dash", "a" * 64, "A_1-b"])
def test_tool_names_allow_dashes(name: str) -> None:
    f = flow(f"name: t\ntools: {{{name}: {{python: 'm:f'}}}}\nsteps: {{a: {{input: x, tools: [{name}]}}}}\n")
    assert name in f.tools


@pytest.mark.parametrize("name", ["'has space'", "a" * 65, "'dot.ted'"])
def test_bad_tool_names(name: str) -> None:
    msgs = problems(f"name: t\ntools: {{{name}: {{python: 'm:f'}}}}\nsteps: {{a: {{input: x}}}}\n")
    assert any("is not a valid tool name" in m for m in msgs)


@pytest.mark.parametrize("name", ["my-step", "1st", "'has space'", "é"])
def test_bad_step_and_input_names(name: str) -> None:
    assert any("is not a valid name" in m for m in problems(f"name: t\nsteps: {{{name}: {{input: x}}}}\n"))
    msgs = problems(f"name: t\ninputs: {{{name}: string}}\nsteps: {{a: {{input: x}}}}\n")
    assert any("is not a valid name" in m for m in msgs)


# --------------------------------------------------------------------------- input parts


def test_input_parts() -> None:
    step = one_step("""
        input:
          - text: hello
          - image: cat.png
          - image: file-abc123
            detail: low
          - file: report.pdf
          - file: file-xyz
            filename: r.pdf
            upload: true
    """).steps["s"]
    parts = step.input
    assert [type(p) for p in parts] == [TextPart, ImagePart, ImagePart, FilePart, FilePart]
    assert parts[1].detail == "auto"
    assert parts[2].detail == "low"
    assert parts[3].upload is False and parts[3].filename is None
    assert parts[4].upload is True and parts[4].filename == "r.pdf"


def test_input_string_stays_a_string() -> None:
    assert one_step("input: hello\n").steps["s"].input == "hello"


@pytest.mark.parametrize("part", ["{}", "{detail: low}", "5", "[text]", "hello"])
def test_input_part_needs_a_kind(part: str) -> None:
    with pytest.raises(SpecError) as info:
        one_step(f"input: [{part}]\n")
    assert info.value.problems[0].path[:4] == ("steps", "s", "input", 0)


# --------------------------------------------------------------------------- steps


def test_step_kinds() -> None:
    f = flow("""
        name: t
        steps:
          model: {input: x}
          agent: {computer_use: {task: look}}
          sub: {flow: other.yaml, with: {a: 1}}
    """)
    assert {sid: s.kind for sid, s in f.steps.items()} == {
        "model": "responses",
        "agent": "computer_use",
        "sub": "flow",
    }


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ("{input: x, flow: f.yaml}", "it has input and flow"),
        ("{computer_use: {task: t}, flow: f.yaml}", "it has computer_use and flow"),
        ("{input: x, computer_use: {task: t}, flow: f.yaml}", "it has input and computer_use and flow"),
        ("{model: m}", "a step needs exactly one of input"),
        ("{input: x, max_parallel: 2}", "max_parallel limits for_each runs; it needs for_each"),
        ("{input: x, with: {a: 1}}", "'with' gives inputs to a sub-flow; it needs 'flow'"),
    ],
)
def test_step_shape_rules(step: str, message: str) -> None:
    msgs = problems(f"name: t\nsteps: {{a: {step}}}\n")
    assert len(msgs) == 1 and message in msgs[0]


def test_computer_use_defaults() -> None:
    cu = one_step("computer_use: {task: look}\n").steps["s"].computer_use
    assert cu.model == "computer-use-preview"
    assert (cu.display.width, cu.display.height) == (1024, 768)
    assert cu.safety_checks == "ask"
    assert cu.max_turns == 20
    assert cu.headless is True
    assert cu.allowed_domains == []
    acked = one_step("computer_use: {task: t, safety_checks: {acknowledge: [x]}}\n")
    assert isinstance(acked.steps["s"].computer_use.safety_checks, SafetyAcknowledge)


@pytest.mark.parametrize(
    "field",
    [
        "temperature: 2.5",
        "temperature: -0.1",
        "top_p: 1.5",
        "max_output_tokens: 0",
        "max_tool_turns: 0",
        "reasoning: {effort: extreme}",
        "reasoning: {summary: long}",
        "truncation: sometimes",
        "on_skipped_needs: maybe",
        "store: 'false'",
        "background: 1",
        "needs: a",
        "metadata: {k: 1}",
    ],
)
def test_step_field_values_are_checked(field: str) -> None:
    with pytest.raises(SpecError) as info:
        one_step(f"input: x\n{field}\n")
    key = field.split(":")[0]
    assert info.value.problems[0].path[:3] == ("steps", "s", key)


def test_strict_no_coercion_between_types() -> None:
    # strict: an integer where a string belongs is an error, not "3"
    assert problems("name: 3\nsteps: {a: {input: x}}\n") == ["expected a string, found an integer"]
    assert problems("name: t\nsteps: {a: {input: x, store: 'true'}}\n") == [
        "expected true or false, found a string"
    ]


def test_numbers_accept_integers() -> None:
    assert one_step("input: x\ntemperature: 1\n").steps["s"].temperature == 1.0


def test_models_are_frozen() -> None:
    f = one_step("input: x\n")
    with pytest.raises(ValidationError):
        f.name = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        f.steps["s"].input = "y"  # type: ignore[misc]


def test_aliased_keys() -> None:
    f = flow("""
        name: t
        steps:
          a: {input: x}
          b: {input: y, if: "{{ true }}", continue: a}
          c: {flow: f.yaml, with: {k: v}}
    """)
    assert f.steps["b"].if_ == "{{ true }}"
    assert f.steps["b"].continue_.step == "a"
    assert f.steps["c"].with_ == {"k": "v"}
    # the Python names are not accepted in YAML
    assert problems("name: t\nsteps: {a: {input: x, if_: yes}}\n") == ["unknown key 'if_'"]


def test_given_lists_only_explicit_fields() -> None:
    step = one_step("input: x\ntemperature: 0.5\n").steps["s"]
    assert step.given() == {"input", "temperature"}


def test_yaml_anchors_and_merge_keys_are_plain_data() -> None:
    f = flow("""
        name: t
        defaults: &common {model: gpt-4.1, temperature: 0.1}
        steps:
          a:
            <<: *common
            input: x
    """)
    assert f.steps["a"].model == "gpt-4.1"
    assert f.steps["a"].temperature == 0.1
