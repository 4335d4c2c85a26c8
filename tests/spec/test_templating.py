"""Templates: reference extraction (what the plan checks) and evaluation (what runs)."""

from __future__ import annotations

import pytest

from flowrun.templating import (
    TemplateError,
    analyze,
    evaluate,
    is_template,
    iter_templates,
    render,
    render_deep,
)

CTX = {
    "inputs": {"company": "Contoso", "n": 3},
    "steps": {
        "risks": {"text": '{"risks": ["fx", "supply"]}', "output": {"risks": ["fx", "supply"]},
                  "images": []},
        "explain": [{"text": "one"}, {"text": "two"}],
    },
    "secrets": {},
    "env": {},
}


def test_is_template() -> None:
    assert is_template("{{ x }}") and is_template("a {% if x %}b{% endif %}")
    assert not is_template("plain {x}") and not is_template(3) and not is_template(None)


def test_iter_templates_finds_nested_strings_with_paths() -> None:
    value = {"a": "{{ x }}", "b": ["plain", {"c": "{% if y %}{% endif %}"}], "d": 5}
    assert list(iter_templates(value, ("root",))) == [
        (("root", "a"), "{{ x }}"),
        (("root", "b", 1, "c"), "{% if y %}{% endif %}"),
    ]


# --------------------------------------------------------------------------- analyze


def test_references() -> None:
    info = analyze("{{ steps.a.text }} {{ steps['b'].output }} {{ inputs.x }} {{ secrets.K }} {{ env.HOME }}")
    assert info.error is None
    assert info.names("steps") == {"a", "b"}
    assert info.names("inputs") == {"x"}
    assert info.names("secrets") == {"K"}
    assert info.names("env") == {"HOME"}
    assert info.unknown == [] and info.dynamic == []


def test_references_inside_blocks_filters_and_tests() -> None:
    info = analyze(
        "{% for r in steps.risks.output.risks %}{{ r | upper }}{% endfor %}"
        "{% if steps.check is defined and inputs.flag %}x{% endif %}"
        "{{ steps.explain | map(attribute='text') | join(', ') }}"
    )
    assert info.names("steps") == {"risks", "check", "explain"}
    assert info.names("inputs") == {"flag"}
    assert info.unknown == []


def test_unknown_and_loop_variables() -> None:
    info = analyze("{{ user }} {{ item }} {{ index }}")
    assert [name for name, _ in info.unknown] == ["user"]
    assert info.loop_vars == {"item", "index"}


def test_locals_are_not_unknown() -> None:
    info = analyze("{% set x = 1 %}{% for y in [1] %}{{ x + y + loop.index }}{% endfor %}")
    assert info.unknown == []


def test_dynamic_reference() -> None:
    info = analyze("{{ steps[inputs.which].text }}")
    assert info.dynamic == [("steps", 1)]


def test_line_numbers_inside_a_template() -> None:
    info = analyze("line one\nline two {{ steps.a.text }}\n{{ mystery }}")
    assert [(r.name, r.line) for r in info.refs if r.root == "steps"] == [("a", 2)]
    assert info.unknown == [("mystery", 3)]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ x", "unexpected end of template"),
        ("{{ x | }}", "expected token 'name'"),
        ("{% if x %}", "'if'"),
        ("{% endfor %}", "endfor"),
        ("{{ x | no_such_filter }}", "No filter named 'no_such_filter'"),
        ("{{ x is no_such_test }}", "No test named 'no_such_test'"),
        ("{{ " + "(" * 200 + "1" + ")" * 200 + " }}", "nested too deeply"),
    ],
)
def test_syntax_errors_are_reported_not_raised(source: str, message: str) -> None:
    info = analyze(source)
    assert info.error is not None and message in info.error
    assert info.refs == []


def test_error_line() -> None:
    assert analyze("ok\nok\n{{ broken").error_line == 3


# --------------------------------------------------------------------------- evaluate


def test_single_expression_gives_the_native_value() -> None:
    assert evaluate("{{ steps.risks.output.risks }}", CTX) == ["fx", "supply"]
    assert evaluate("  {{ inputs.n * 2 }}  ", CTX) == 6
    assert evaluate("{{ steps.explain | length > 1 }}", CTX) is True
    assert evaluate("{{ steps.risks.text | fromjson }}", CTX) == {"risks": ["fx", "supply"]}


def test_anything_else_renders_to_text() -> None:
    assert evaluate("Hi {{ inputs.company }}", CTX) == "Hi Contoso"
    assert evaluate("{{ inputs.n }}{{ inputs.n }}", CTX) == "33"
    assert evaluate("{% if inputs.n > 2 %}big{% endif %}", CTX) == "big"
    assert evaluate("no template", CTX) == "no template"
    assert evaluate(42, CTX) == 42


def test_render_gives_text_and_json() -> None:
    assert render("{{ steps.risks.output }}", CTX) == '{"risks": ["fx", "supply"]}'
    assert render("{{ inputs.n }}", CTX) == "3"
    assert render("{{ none }}", {"none": None}) == ""
    assert render("{{ steps.risks.output | tojson }}", CTX) == '{"risks": ["fx", "supply"]}'


def test_render_deep() -> None:
    value = {"a": "{{ inputs.n }}", "b": ["x {{ inputs.company }}", 1], "c": None}
    assert render_deep(value, CTX) == {"a": 3, "b": ["x Contoso", 1], "c": None}


@pytest.mark.parametrize(
    "source",
    [
        "{{ steps.missing.text }}",
        "{{ steps.risks.nope }}",
        "text {{ steps.risks.nope }}",
        "{{ steps.risks.images[-1] }}",  # an empty list: must raise, not return Undefined
        "{{ steps.risks.images[0] }} and more",
        "{{ undefined_name }}",
    ],
)
def test_undefined_values_raise_template_error(source: str) -> None:
    with pytest.raises(TemplateError) as info:
        evaluate(source, CTX)
    assert str(info.value).startswith("undefined value:")


@pytest.mark.parametrize(
    "source",
    [
        "{{ ().__class__.__bases__ }}",
        "{{ inputs.__class__ }}",
        "{{ steps.explain.append(1) }}",
        "{{ inputs.update({'n': 4}) }}",
        "{{ steps.explain.pop() }}",
    ],
)
def test_sandbox_forbids_escapes_and_mutation(source: str) -> None:
    with pytest.raises(TemplateError) as info:
        evaluate(source, CTX)
    assert str(info.value).startswith("not allowed in a template:")
    assert len(CTX["steps"]["explain"]) == 2 and CTX["inputs"]["n"] == 3


@pytest.mark.parametrize(
    "source",
    ["{% if steps.a.text | lenght > 0 %}x{% endif %}", "{% if x is evn %}x{% endif %}"],
)
def test_unknown_filters_and_tests_inside_conditions(source: str) -> None:
    # Jinja defers these names to run time inside {% if %}; validate must still catch them
    # (known bug: analyze() accepts both, and the run fails later)
    info = analyze(source)
    assert info.error is not None and ("lenght" in info.error or "evn" in info.error)


# --------------------------------------------------------------------------- local names


@pytest.mark.parametrize(
    "source",
    [
        "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet(inputs.company) }}",
        "{% macro row(x) %}[{{ caller(x) }}{{ varargs | length }}{{ kwargs | length }}]{% endmacro %}"
        "{% call(v) row(inputs.n) %}{{ v }}{% endcall %}",
        "{% macro down(n) %}{{ n }}{% if n %}{{ down(n - 1) }}{% endif %}{% endmacro %}{{ down(inputs.n) }}",
        "{% with total = inputs.n * 2 %}{{ total }}{% endwith %}",
        "{% set ns = namespace(k=0) %}{% for a, b in [(1, 2)] %}{% set ns.k = a + b %}{% endfor %}{{ ns.k }}",
        "{% set block %}{{ inputs.company }}{% endset %}{{ block | upper }}",
    ],
)
def test_macros_and_other_locals_are_not_unknown(source: str) -> None:
    info = analyze(source)
    assert info.error is None and info.unknown == [], info.unknown
    assert info.names("inputs") <= {"company", "n"}
    evaluate(source, CTX)  # and they really render


@pytest.mark.parametrize(
    ("source", "unknown"),
    [
        ("{{ later }}{% set later = 1 %}", "later"),  # used before it is set
        ("{% for x in [1] %}{% set inner = x %}{% endfor %}{{ inner }}", "inner"),  # loop scope
        ("{% with w = 1 %}{% endwith %}{{ w }}", "w"),
        ("{% macro m(p) %}{% endmacro %}{{ p }}", "p"),  # a parameter is the macro's own
        ("{{ helper() }}{% macro helper() %}{% endmacro %}", "helper"),  # called before it exists
    ],
)
def test_local_names_only_count_where_jinja_binds_them(source: str, unknown: str) -> None:
    assert [name for name, _ in analyze(source).unknown] == [unknown]
    with pytest.raises(TemplateError, match="undefined value"):
        evaluate(source, CTX)


def test_a_local_name_shadows_a_root() -> None:
    info = analyze("{% for steps in inputs.lists %}{{ steps.x }}{% endfor %}{{ steps.a.text }}")
    assert info.names("steps") == {"a"} and info.names("inputs") == {"lists"}


def test_a_flow_with_macros_validates() -> None:
    # the plan checks every template: a macro name is not an "unknown template variable"
    from flowrun.loader import load_text
    from flowrun.plan import build_plan

    text = (
        "name: macros\n"
        "inputs:\n"
        "  items: {type: list, default: [a, b]}\n"
        "steps:\n"
        "  a:\n"
        "    input: |\n"
        "      {% macro bullet(text, mark='-') %}{{ mark }} {{ text }}{% endmacro %}\n"
        "      {% for i in inputs.items %}{{ bullet(i) }}\n"
        "      {% endfor %}\n"
    )
    assert build_plan(load_text(text, "macros.yaml")).order == ("a",)
