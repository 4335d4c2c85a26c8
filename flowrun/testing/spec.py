"""The test-file language: ``FLOW.test.yaml`` (or any ``*.test.yaml`` naming its ``flow:``).

A test file holds cases; each case runs the flow once on the in-process emulator with its
inputs and a model script (or a recorded cassette), then checks what came out::

    flow: quickstart.yaml            # default: the FLOW.yaml beside FLOW.test.yaml
    cases:
      brief mentions the company:
        inputs: {company: Contoso}
        script: {steps: {overview: [{text: "Contoso makes widgets."}]}}
        expect:
          outputs:
            brief: {contains: Contoso}
            risk_count: {equals: 2}
          steps:
            summary: {status: succeeded, attempts: 1}
          requests:
            - {step: summary, previous_response_of: overview}
          cost: {max_requests: 3}

Models are strict (unknown keys are errors with "did you mean"), like flow files.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ValueCheck(_Strict):
    """Checks on one value (an output, a step's text or output). Every check given must hold."""

    equals: Any = Field(None, description="The value equals this (deep equality). `--update` rewrites it.")
    contains: Any = Field(
        None, description="Text contains this substring; a list contains this element; a mapping has this key.")
    matches: str | None = Field(None, description="Text matches this regular expression (re.search).")
    json_schema: dict[str, Any] | None = Field(None, description="The value is valid against this JSON Schema.")
    approx: float | None = Field(None, description="A number within `tolerance` of this.")
    tolerance: float = Field(1e-6, description="Absolute tolerance for `approx`.")
    expr: str | None = Field(
        None, description="A sandboxed Jinja expression that must be true; `value` is the checked value.")
    length: int | None = Field(None, description="The value (text, list or mapping) has exactly this length.")

    @model_validator(mode="after")
    def _one_check(self) -> "ValueCheck":
        if not (self.model_fields_set - {"tolerance"}):
            raise ValueError("give at least one check: equals, contains, matches, json_schema, approx, "
                             "expr or length")
        return self


class ToolCallCheck(_Strict):
    """A tool call the step made: its name and a subset of its arguments."""

    name: str = Field(description="The tool (function, MCP tool or command tool) name.")
    arguments: dict[str, Any] = Field(default_factory=dict,
                                      description="These arguments, with these values (others may be present).")


class StepCheck(_Strict):
    """Checks on one step's result."""

    status: Literal["succeeded", "failed", "skipped", "cancelled"] | None = Field(
        None, description="The step's final status.")
    skipped: bool | None = Field(None, description="Shorthand: true means status skipped, false anything else.")
    attempts: int | None = Field(None, ge=0, description="How many attempts the step took (retries + 1).")
    tool_calls: list[ToolCallCheck] | None = Field(
        None, description="Tool calls the step made: each must match a call (name, argument subset).")
    tool_calls_order: Literal["exact", "in_order", "any"] = Field(
        "in_order",
        description="exact: the calls are exactly these, in this order; in_order: these appear in this "
                    "order (others may be between); any: each appears somewhere.")
    text: ValueCheck | None = Field(None, description="Checks on the step's text.")
    output: ValueCheck | None = Field(None, description="Checks on the step's structured output.")


class RequestCheck(_Strict):
    """Checks on the requests a step sent, read from the emulator's journal."""

    step: str = Field(description="The step whose requests are checked (metadata.flowrun_step).")
    item: int | None = Field(None, ge=0, description="Only this for_each item's requests.")
    turn: int | None = Field(
        None, ge=0, description="Only the Nth request of the step (0 = first); default: checks hold for one of them.")
    previous_response_of: str | None = Field(
        None, description="The request sent previous_response_id of this step's response.")
    tools: list[str] | None = Field(
        None, description="These tools were offered (function names, MCP server labels or hosted tool types).")
    has: list[str] | None = Field(None, description="These body fields are present (dotted paths, e.g. text.format).")
    lacks: list[str] | None = Field(None, description="These body fields are absent (dotted paths).")
    count: int | None = Field(None, ge=0, description="The step sent exactly this many requests.")


class CostCheck(_Strict):
    """Upper bounds on what the run cost."""

    max_tokens: int | None = Field(None, ge=0, description="Total tokens over every step at most this.")
    max_requests: int | None = Field(None, ge=0, description="Model requests (POST /responses) at most this.")


class Expect(_Strict):
    """What a successful run must show."""

    outputs: dict[str, ValueCheck] = Field(default_factory=dict, description="Checks per flow output.")
    steps: dict[str, StepCheck] = Field(default_factory=dict, description="Checks per step.")
    requests: list[RequestCheck] = Field(default_factory=list, description="Checks on the requests sent.")
    cost: CostCheck | None = Field(None, description="Token and request budgets.")
    expr: list[str] = Field(
        default_factory=list,
        description="Sandboxed Jinja expressions that must be true; they see `outputs` and `steps`.")


class ExpectError(_Strict):
    """The run must fail like this."""

    status: Literal["failed", "cancelled"] = Field("failed", description="The run's status.")
    step: str | None = Field(None, description="This step failed.")
    message: str | None = Field(None, description="A regular expression searched in the step's (or run's) error.")


class Case(_Strict):
    """One run of the flow and what it must show."""

    inputs: dict[str, Any] = Field(default_factory=dict, description="The flow's inputs (defaults apply).")
    script: dict[str, Any] | None = Field(
        None, description="The emulator's model script for this case (the FLOW.emulator.yaml format).")
    script_file: str | None = Field(
        None, description="A script file, relative to the test file (default: FLOW.emulator.yaml if present).")
    recording: str | None = Field(
        None, description="A cassette recorded with `flowrun run --record`, relative to the test file; "
                          "the case replays it offline.")
    serve: str | None = Field(
        None, description="A folder (relative to the test file) served over HTTP on a free loopback port "
                          "during the case; inputs may use `{{ serve.url }}` (e.g. a computer-use start_url).")
    env: dict[str, str] = Field(default_factory=dict,
                                description="Environment for the run, e.g. fake values of the flow's secrets.")
    expect: Expect = Field(default_factory=Expect, description="What the run must show.")
    expect_error: ExpectError | None = Field(None, description="The run must fail (instead of succeed).")

    @model_validator(mode="after")
    def _one_source(self) -> "Case":
        given = [k for k in ("script", "script_file", "recording") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of script, script_file and recording, not {' and '.join(given)}")
        return self


class TestFile(_Strict):
    """A flow's test file."""

    __test__ = False  # not a pytest class

    flow: str | None = Field(None, description="The flow file, relative to this file "
                                               "(default: NAME.yaml beside NAME.test.yaml).")
    cases: dict[str, Case] = Field(description="The cases, by name.", min_length=1)
