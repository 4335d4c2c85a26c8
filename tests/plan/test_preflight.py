"""validate's checks of what would otherwise fail only at run time (flowrun/preflight.py).
The broken corpus (tests/fixtures/broken/) holds the positioned errors; these tests check
that valid variants pass and that user code is never run to find out."""

from __future__ import annotations

import pytest
from flowkit import write, write_flow

from flowrun.errors import SpecError
from flowrun.plan import load_plan


def test_python_tools_that_exist_pass_without_running_their_code(tmp_path):
    marker = tmp_path / "imported"
    write(tmp_path / "local_tools.py", f"""
        open({str(marker)!r}, "w").close()

        def lookup(name: str) -> str:
            return name
    """)
    write(tmp_path / "pkg" / "__init__.py", f"open({str(marker)!r}, 'w').close()\n")
    write(tmp_path / "pkg" / "sub.py", "from json import dumps as encode\n")
    write(tmp_path / "nsp" / "inner.py", "def fn(): ...\n")
    flow = write_flow(tmp_path, """
        name: tools-ok
        tools:
          local: {python: "local_tools:lookup"}
          package: {python: "pkg.sub:encode"}
          namespace: {python: "nsp.inner:fn"}
          installed: {python: "json:dumps"}
          installed_sub: {python: "json.decoder:JSONDecoder"}
        steps:
          a: {input: go, tools: [local, package, namespace, installed, installed_sub]}
    """)
    load_plan(flow)
    assert not marker.exists()  # validate read the modules, it never imported them


def test_a_missing_submodule_of_an_installed_package_is_reported(tmp_path):
    flow = write_flow(tmp_path, """
        name: tools-bad
        tools:
          t: {python: "json.no_such_part:fn"}
        steps:
          a: {input: go, tools: [t]}
    """)
    with pytest.raises(SpecError) as info:
        load_plan(flow)
    (problem,) = info.value.problems
    assert problem.key_path == "tools.t.python"
    assert "no module 'json.no_such_part'" in problem.message
    assert (problem.line, problem.column) == (4, 15)


@pytest.mark.parametrize("options", [
    "{background: transparent}",
    "{background: transparent, output_format: webp}",
    "{output_format: jpeg, output_compression: 40, background: opaque}",
    "{output_format: png, output_compression: 100}",
])
def test_image_options_the_tool_accepts_pass(tmp_path, options):
    flow = write_flow(tmp_path, f"""
        name: images-ok
        steps:
          a: {{input: go, tools: [{{image_generation: {options}}}]}}
    """)
    load_plan(flow)


@pytest.mark.parametrize("schema", [
    "{type: object, properties: {a: {type: [string, 'null']}, b: {enum: [x, y]}}}",
    "{type: object, properties: {when: {type: string, format: date}}, required: [when]}",
    "{type: object, properties: {items: {type: array, items: {$ref: '#/$defs/item'}}},"
    " $defs: {item: {type: object, properties: {n: {type: integer}}}}}",
])
def test_valid_output_schemas_pass(tmp_path, schema):
    flow = write_flow(tmp_path, f"""
        name: schema-ok
        steps:
          a: {{input: go, output_schema: {schema}}}
    """)
    load_plan(flow)


def test_background_with_stored_responses_passes(tmp_path):
    flow = write_flow(tmp_path, """
        name: bg-ok
        defaults: {store: false}
        steps:
          a: {input: go, background: true, store: true}
          b: {input: go}
    """)
    load_plan(flow)


def test_invalid_parameters_of_a_function_tool_are_reported(tmp_path):
    write(tmp_path / "t.py", "def fn(x): ...\n")
    flow = write_flow(tmp_path, """
        name: params
        tools:
          t:
            python: "t:fn"
            parameters: {type: object, properties: {x: {type: text}}}
        steps:
          a: {input: go, tools: [t]}
    """)
    with pytest.raises(SpecError) as info:
        load_plan(flow)
    (problem,) = info.value.problems
    assert problem.key_path == "tools.t.parameters.properties.x.type"
    assert "'text' is not a JSON Schema type" in problem.message
