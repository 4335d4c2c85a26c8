"""Plans: dependencies inferred from templates, needs and continue; stages; immutability;
for_each; sub-flows; every problem reported at once."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from flowrun.errors import PlanError, Problem
from flowrun.loader import load_text
from flowrun.plan import Plan, build_plan, load_plan

VALID = Path(__file__).parents[1] / "fixtures" / "valid"


def plan_of(text: str) -> Plan:
    return build_plan(load_text(textwrap.dedent(text).lstrip("\n"), "t.yaml"))


def problems(text: str) -> list[Problem]:
    with pytest.raises(PlanError) as info:
        plan_of(text)
    return info.value.problems


def only(text: str) -> Problem:
    found = problems(text)
    assert len(found) == 1, [p.format() for p in found]
    return found[0]


# --------------------------------------------------------------------------- dependencies


def test_diamond_generations_and_order() -> None:
    plan = load_plan(VALID / "diamond.yaml")
    assert plan.generations == (("top",), ("left", "right"), ("bottom",))
    assert plan.order == ("top", "left", "right", "bottom")
    assert plan.needs == {
        "top": frozenset(),
        "left": frozenset({"top"}),
        "right": frozenset({"top"}),
        "bottom": frozenset({"left", "right"}),
    }
    assert plan.dependents == {
        "top": frozenset({"left", "right"}),
        "left": frozenset({"bottom"}),
        "right": frozenset({"bottom"}),
        "bottom": frozenset(),
    }


def test_every_template_bearing_key_adds_dependencies() -> None:
    plan = plan_of("""
        name: deps
        steps:
          a: {input: x}
          b: {input: x}
          c: {input: x}
          d: {input: x}
          e: {input: x}
          f: {input: x}
          g: {input: x}
          h: {input: x}
          via_instructions:
            instructions: "Use {{ steps.a.text }}"
            input: x
          via_if:
            if: "{{ steps.b.output.ok }}"
            input: x
          via_for_each:
            for_each: "{{ steps.c.output.items }}"
            input: "{{ item }}"
          via_parts:
            input: [{text: "{{ steps.d.text }}"}, {image: "{{ steps.e.images[0] }}"}]
          via_files:
            input: x
            files: ["{{ steps.f.files[0] }}"]
            tools: [code_interpreter]
          via_computer_use:
            computer_use: {task: "Check {{ steps.g.text }}", start_url: "{{ steps.h.text }}"}
          via_needs:
            input: x
            needs: [a, b]
          via_continue:
            continue: a
            input: x
          via_metadata:
            input: x
            metadata: {source: "{{ steps.h.response_id }}"}
    """)
    assert plan.needs["via_instructions"] == {"a"}
    assert plan.needs["via_if"] == {"b"}
    assert plan.needs["via_for_each"] == {"c"}
    assert plan.needs["via_parts"] == {"d", "e"}
    assert plan.needs["via_files"] == {"f"}
    assert plan.needs["via_computer_use"] == {"g", "h"}
    assert plan.needs["via_needs"] == {"a", "b"}
    assert plan.needs["via_continue"] == {"a"}
    assert plan.needs["via_metadata"] == {"h"}
    assert plan.generations[0] == ("a", "b", "c", "d", "e", "f", "g", "h")


def test_needs_and_references_merge_without_duplicates() -> None:
    plan = plan_of("""
        name: t
        steps:
          a: {input: x}
          b: {input: "{{ steps.a.text }} {{ steps.a.output }}", needs: [a], continue: a}
    """)
    assert plan.needs["b"] == {"a"}


def test_outputs_and_non_template_keys_add_no_dependencies() -> None:
    plan = plan_of("""
        name: t
        steps:
          a:
            input: x
            description: "Mentions {{ steps.b.text }} but only as prose"
            output_schema:
              type: object
              description: "{{ steps.b.text }} is not a template here"
          b: {input: y}
        outputs:
          both: "{{ steps.a.text }} {{ steps.b.text }}"
    """)
    assert plan.needs == {"a": frozenset(), "b": frozenset()}
    assert plan.generations == (("a", "b"),)


def test_order_is_topological_and_deterministic() -> None:
    text = """
        name: t
        steps:
          zeta: {input: "{{ steps.alpha.text }}"}
          alpha: {input: x}
          mid: {input: "{{ steps.zeta.text }}", needs: [alpha]}
          beta: {input: x}
    """
    first = plan_of(text)
    assert first.order == ("alpha", "beta", "zeta", "mid")
    assert plan_of(text).order == first.order
    for sid in first.order:
        assert all(first.order.index(dep) < first.order.index(sid) for dep in first.needs[sid])


def test_graph_is_a_frozen_networkx_digraph() -> None:
    import networkx as nx

    plan = load_plan(VALID / "diamond.yaml")
    g = plan.graph()
    assert set(g.edges) == {("top", "left"), ("top", "right"), ("left", "bottom"), ("right", "bottom")}
    assert nx.is_frozen(g)
    with pytest.raises(nx.NetworkXError):
        g.add_edge("bottom", "top")


# --------------------------------------------------------------------------- immutability


def test_plan_is_immutable() -> None:
    plan = load_plan(VALID / "diamond.yaml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.order = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        plan.needs["top"] = frozenset({"bottom"})  # type: ignore[index]
    with pytest.raises(TypeError):
        plan.dependents["top"] = frozenset()  # type: ignore[index]
    with pytest.raises(TypeError):
        del plan.needs["top"]  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        plan.needs["left"].add("bottom")  # type: ignore[attr-defined]
    assert isinstance(plan.order, tuple)
    assert all(isinstance(gen, tuple) for gen in plan.generations)
    with pytest.raises(TypeError):
        plan.subflows["x"] = plan  # type: ignore[index]


def test_plan_exposes_flow_and_steps() -> None:
    plan = load_plan(VALID / "diamond.yaml")
    assert plan.flow.name == "diamond"
    assert plan.step("left").input.startswith("Argue for")
    assert plan.base_dir == VALID.resolve()


# --------------------------------------------------------------------------- for_each


def test_item_and_index_inside_for_each() -> None:
    plan = load_plan(VALID / "for-each.yaml")
    assert plan.needs["expand"] == {"ideas"}
    assert plan.needs["merge"] == {"expand"}
    assert plan.step("colours").for_each == ["red", "green", "blue"]


@pytest.mark.parametrize("var", ["item", "index"])
def test_loop_names_outside_for_each(var: str) -> None:
    p = only(f"""
        name: t
        steps:
          a: {{input: "Do {{{{ {var} }}}}"}}
    """)
    assert p.message == f"{var!r} is only defined in a step with for_each"
    assert p.path == ("steps", "a", "input")


def test_item_in_the_for_each_expression_itself() -> None:
    p = only("""
        name: t
        steps:
          a: {for_each: "{{ item }}", input: x}
    """)
    assert p.path == ("steps", "a", "for_each")
    assert "'item' is only defined" in p.message


def test_loop_names_not_allowed_in_outputs() -> None:
    p = only("""
        name: t
        steps:
          a: {for_each: [1, 2], input: "{{ item }}"}
        outputs:
          x: "{{ item }}"
    """)
    assert p.path == ("outputs", "x")


# --------------------------------------------------------------------------- templates


def test_jinja_locals_are_not_unknown_variables() -> None:
    plan_of("""
        name: t
        steps:
          a: {input: x}
          b:
            input: |
              {% set n = steps.a.text | length %}
              {% for word in steps.a.text.split() %}{{ loop.index }} {{ word }} {{ n }}{% endfor %}
    """)


def test_secrets_and_env() -> None:
    # without a secrets: list any name may be used; with one, names are checked
    plan_of('name: t\nsteps: {a: {input: "{{ secrets.ANY }} {{ env.HOME }}"}}\n')
    p = only('name: t\nsecrets: [TOKEN]\nsteps: {a: {input: "{{ secrets.TOKN }}"}}\n')
    assert p.message == "secret 'TOKN' is not declared in secrets:"
    assert p.hint == "did you mean 'TOKEN'?"


def test_tool_templates_may_not_use_steps() -> None:
    p = only("""
        name: t
        tools:
          docs: {mcp: "https://x/mcp", headers: {X-Step: "{{ steps.a.text }}"}}
        steps:
          a: {input: x, tools: [docs]}
    """)
    assert p.message == "steps cannot be used here"
    assert p.path == ("tools", "docs", "headers", "X-Step")


def test_templates_only_in_some_tool_keys() -> None:
    p = only("""
        name: t
        tools:
          run: {command: ["./run.sh", "{{ inputs.x }}"]}
        inputs: {x: string}
        steps:
          a: {input: x, tools: [run]}
    """)
    assert p.message == "templates are not allowed in 'command'"


def test_line_of_a_problem_inside_a_block_scalar() -> None:
    p = only("""
        name: t
        steps:
          a: {input: x}
          b:
            input: |
              first line
              second line {{ steps.nope.text }}
    """)
    assert (p.line, p.message) == (7, "unknown step 'nope'")


def test_line_of_item_inside_a_block_scalar() -> None:
    # known bug: the loop-variable check ignores the template line (reports line 4)
    p = only("""
        name: t
        steps:
          a:
            input: |
              first line
              second line {{ item }}
    """)
    assert p.line == 6


def test_dynamic_step_reference_is_one_problem() -> None:
    # known bug: also reports "refer to one step at a time (steps.ID)"
    p = only("""
        name: t
        inputs: {which: string}
        steps:
          a: {input: "{{ steps[inputs.which].text }}"}
    """)
    assert p.message == "steps[...] needs a literal name"


def test_bare_steps_root() -> None:
    p = only('name: t\nsteps: {a: {input: x}, b: {input: "{{ steps }}"}}\n')
    assert p.message == "refer to one step at a time (steps.ID)"


# --------------------------------------------------------------------------- continue / tools


def test_continue_rules() -> None:
    plan = load_plan(VALID / "continue-chain.yaml")
    assert plan.needs["second"] == {"first"}
    assert plan.needs["private_second"] == {"private_first"}
    # store: false on the continuing step (not only the defaults) also needs mode: manual
    p = only("""
        name: t
        steps:
          a: {input: x}
          b: {input: y, continue: a, store: false}
    """)
    assert "store is false" in p.message
    # ... and so does store: false on the step being continued
    p = only("""
        name: t
        steps:
          a: {input: x, store: false}
          b: {input: y, continue: a}
    """)
    assert "store is false" in p.message


def test_continue_of_a_sub_flow_step(tmp_path: Path) -> None:
    (tmp_path / "child.yaml").write_text("name: c\nsteps: {s: {input: x}}\n")
    (tmp_path / "main.yaml").write_text(
        "name: m\nsteps:\n  a: {flow: child.yaml}\n  b: {input: y, continue: a}\n"
    )
    with pytest.raises(PlanError) as info:
        load_plan(tmp_path / "main.yaml")
    assert [p.message for p in info.value.problems] == ["cannot continue 'a': it is a flow step"]


def test_builtin_tool_names_need_no_definition() -> None:
    plan_of("name: t\nsteps: {a: {input: x, tools: [code_interpreter, image_generation]}}\n")


@pytest.mark.parametrize("key", ["tools: [code_interpreter]", "output_schema: {type: object}",
                                 "files: [a.csv]", "tool_choice: auto"])
def test_model_only_keys_on_other_step_kinds(key: str) -> None:
    p = only(f"name: t\nsteps:\n  a:\n    computer_use: {{task: t}}\n    {key}\n")
    assert "applies to model steps (input:), not to a computer_use step" in p.message
    assert (p.line, p.column) == (5, 5)


# --------------------------------------------------------------------------- sub-flows


def test_sub_flow_plans_are_loaded_once_and_reachable() -> None:
    plan = load_plan(VALID / "subflow-parent.yaml")
    child = plan.subflow("subflow-child.yaml")
    assert child.flow.name == "subflow-child"
    assert child.order == ("summary",)
    assert len(plan.subflows) == 1  # the step and the tool share one plan


def test_sub_flow_inputs_are_checked(tmp_path: Path) -> None:
    (tmp_path / "child.yaml").write_text(
        "name: c\ninputs: {text: string, style: {default: short}}\nsteps: {s: {input: x}}\n"
    )
    (tmp_path / "ok.yaml").write_text("name: m\nsteps: {a: {flow: child.yaml, with: {text: t}}}\n")
    load_plan(tmp_path / "ok.yaml")
    (tmp_path / "bad.yaml").write_text(
        "name: m\nsteps: {a: {flow: child.yaml, with: {style: s, txt: t}}}\n"
    )
    with pytest.raises(PlanError) as info:
        load_plan(tmp_path / "bad.yaml")
    assert [p.message for p in info.value.problems] == [
        "sub-flow child.yaml needs input 'text'",
        "sub-flow child.yaml has no input 'txt'",
    ]


def test_problems_of_a_broken_sub_flow_name_the_sub_flow_file(tmp_path: Path) -> None:
    (tmp_path / "child.yaml").write_text("name: c\nsteps: {s: {input: '{{ steps.nope.text }}'}}\n")
    (tmp_path / "main.yaml").write_text("name: m\nsteps: {a: {flow: child.yaml}}\n")
    with pytest.raises(PlanError) as info:
        load_plan(tmp_path / "main.yaml")
    (p,) = info.value.problems
    assert p.file is not None and p.file.endswith("child.yaml")
    assert p.message == "unknown step 'nope'"


def test_mutual_sub_flow_cycle(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: a\nsteps: {s: {flow: b.yaml}}\n")
    (tmp_path / "b.yaml").write_text("name: b\nsteps: {s: {flow: a.yaml}}\n")
    with pytest.raises(PlanError) as info:
        load_plan(tmp_path / "a.yaml")
    messages = [p.message for p in info.value.problems]
    assert any(m.startswith("sub-flow cycle:") and "a.yaml -> " in m for m in messages)


# --------------------------------------------------------------------------- cycles


def test_cycle_is_reported_with_every_other_problem() -> None:
    found = problems("""
        name: t
        steps:
          a: {input: "{{ steps.b.text }}"}
          b: {input: "{{ steps.a.text }} {{ steps.zz.text }}"}
    """)
    assert [p.message for p in found] == ["dependency cycle: a -> b -> a", "unknown step 'zz'"]


def test_two_separate_cycles_are_both_reported() -> None:
    found = problems("""
        name: t
        steps:
          a: {input: x, needs: [b]}
          b: {input: x, needs: [a]}
          c: {input: x, needs: [d]}
          d: {input: x, needs: [c]}
          free: {input: x}
    """)
    assert sorted(p.message for p in found) == [
        "dependency cycle: a -> b -> a",
        "dependency cycle: c -> d -> c",
    ]


def test_cycle_path_reads_as_needs() -> None:
    p = only("""
        name: t
        steps:
          a: {input: x, needs: [b]}
          b: {input: x, needs: [c]}
          c: {input: x, needs: [a]}
    """)
    # a needs b, b needs c, c needs a
    assert p.message == "dependency cycle: a -> b -> c -> a"
    assert (p.line, p.column) == (3, 3)
