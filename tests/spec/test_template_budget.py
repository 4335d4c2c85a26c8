"""The render budget: hostile templates fail fast with a clear error, in both ways a
template is evaluated (text, and a single expression's native value), and at run time
the error names the template's place in the flow; ordinary templates are unaffected."""

from __future__ import annotations

import time

import pytest
from flowkit import run_flow, step_error

from flowrun.loader import load_text
from flowrun.templating import TemplateError, evaluate, render

HOSTILE = {
    "nested range loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "tower of powers": "{{ ((9**999)**999)**999 }}",
    "repeated big products": "{% set ns = namespace(x=9**999) %}"
                             "{% for i in range(40) %}{% set ns.x = ns.x * ns.x %}{% endfor %}{{ ns.x }}",
    "lipsum": "{{ lipsum(100000, false, 100, 1000) }}",
    "format width": "{{ '{:>1000000000}'.format(1) }}",
    "nested format width": "{{ '{0:{1}}'.format(1, 1000000000) }}",
    "format precision": "{{ '{:.1000000000f}'.format(1.5) }}",
    "format repeats": "{{ ('{0}' * 1000).format('x' * 1000000) }}",
    "center filter": "{{ 'a' | center(1000000000) }}",
    "center method": "{{ 'a'.center(1000000000) }}",
    "ljust method": "{{ 'a'.ljust(1000000000) }}",
    "zfill method": "{{ '1'.zfill(1000000000) }}",
    "to_bytes": "{{ (1).to_bytes(1000000000, 'big') }}",
    "tilde doubling": "{% set ns = namespace(x='a') %}"
                      "{% for i in range(40) %}{% set ns.x = ns.x ~ ns.x %}{% endfor %}{{ ns.x | length }}",
    "plus doubling": "{% set ns = namespace(x='a') %}"
                     "{% for i in range(40) %}{% set ns.x = ns.x + ns.x %}{% endfor %}{{ ns.x | length }}",
    "tilde doubling in a macro": "{% macro d(x, n) %}{% if n %}{{ d(x ~ x, n - 1) }}{% else %}"
                                 "{{ x | length }}{% endif %}{% endmacro %}{{ d('a', 40) }}",
    "percent width": "{{ '%01000000000d' % 1 }}",
    "percent precision": "{{ '%.1000000000f' % 1.0 }}",
    "percent star width": "{{ '%*d' % (1000000000, 1) }}",
    "percent repeats": "{{ ('%s' * 1000) % (('x' * 1000000,) * 1000) }}",
    "format filter": "{{ '%01000000000d' | format(1) }}",
    "replace method": "{{ 'ab'.replace('', 'x' * 4000000) }}",
    "replace filter": "{{ 'ab' | replace('', 'x' * 4000000) }}",
    "join method": "{{ ('x' * 4000000).join(['a'] * 1000) }}",
    "join filter": "{{ (['a'] * 1000) | join('x' * 4000000) }}",
    "indent filter": "{{ ('a\\n' * 1000) | indent(1000000) }}",
    "wordwrap filter": "{{ ('a ' * 100000) | wordwrap(1, wrapstring='x' * 1000) }}",
    "batch fill": "{{ [1] | batch(1000000000, fill_with=0) | list }}",
    "tojson indent": "{{ [1, [2, [3]]] | tojson(1000000000) }}",
    "exponential macro calls": "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}"
                               "{% endmacro %}{{ f(60) }}",
    "long output": "{% for i in range(100000) %}{{ 'x' * 100000 }}{% endfor %}",
}


@pytest.mark.parametrize("source", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_templates_fail_fast_with_a_clear_error(source: str) -> None:
    start = time.process_time()  # CPU time: other processes' load does not count
    with pytest.raises(TemplateError) as info:
        evaluate(source, {})
    assert time.process_time() - start < 1.0
    assert str(info.value).startswith("not allowed in a template:"), str(info.value)
    assert any(w in str(info.value) for w in ("longer than", "over", "more than")), str(info.value)


EXPRESSIONS = [
    "((9**999)**999)**999",
    "'{:>1000000000}'.format(1)",
    "'%01000000000d' % 1",
    "'a'.ljust(1000000000)",
    "'a' | center(1000000000)",
    "lipsum(100000, false, 100, 1000)",
    "('x' * 3000000) ~ ('x' * 3000000)",
    "range(100000) | map('string') | map('center', 1000000000) | list",
    "([range(100000) | list] * 100) | sum(start=[])",
]


@pytest.mark.parametrize("expr", EXPRESSIONS)
@pytest.mark.parametrize("form", ["{{ %s }}", "text {{ %s }}", "{%% set v = %s %%}{{ v }}"],
                         ids=["native", "text", "set"])
def test_the_budget_holds_in_every_evaluation_path(expr: str, form: str) -> None:
    start = time.process_time()
    with pytest.raises(TemplateError, match="not allowed in a template"):
        render(form % expr, {})
    assert time.process_time() - start < 1.0


def test_the_budget_is_per_render_not_per_process() -> None:
    # each render gets a fresh allowance: many large-but-allowed renders in a row pass
    source = "{% for i in range(60000) %}{% endfor %}ok"
    assert [evaluate(source, {}) for _ in range(3)] == ["ok"] * 3


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ 9 ** 999 > 10 ** 900 }}", True),
        ("{{ ('%05d' % 42) ~ '|' ~ '{:>6}'.format('ab') ~ '|' ~ ('x' | center(5)) }}", "00042|    ab|  x  "),
        ("{{ 'ab'.ljust(4, '.') ~ 'a,b'.replace(',', ';') ~ '-'.join(['x', 'y']) }}", "ab..a;bx-y"),
        ("{% for i in range(3) %}{% for j in range(2) %}{{ i * j }}{% endfor %}{% endfor %}", "000102"),
        ("{{ (range(1000) | list | sum) + [1, 2] | sum(start=10) }}", 499513),
        ("{{ [[1], [2, 3]] | sum(start=[]) }}", [1, 2, 3]),
        ("{{ lipsum(2, false, 20, 30).split() | length >= 40 }}", True),
        ("{{ 'line\nline' | indent(2) }}", "line\n  line"),
        ("{{ [1, 2, 3] | batch(2, fill_with=0) | list }}", [[1, 2], [3, 0]]),
        ("{{ {'a': 1} | tojson(2) }}", '{\n  "a": 1\n}'),
        ("{% for x in [1, 2, 3] %}{{ loop.index }}/{{ loop.length }}{{ ',' if not loop.last }}{% endfor %}",
         "1/3,2/3,3/3"),
        ("{% for x in [] %}a{% else %}empty{% endfor %}", "empty"),
        ("{% for x in [[1, [2]]] recursive %}{{ x if x is number else loop(x) }}{% endfor %}", "12"),
        ("{{ ('x' * 1000) | length + ('ab' ~ 3 ~ none) | length }}", 1007),
    ],
)
def test_ordinary_templates_are_unaffected(source: str, expected: object) -> None:
    assert evaluate(source, {}) == expected


FLOW = """\
name: limits
inputs:
  n: {type: integer, default: 3}
steps:
  a:
    input: "{{ '%01000000000d' % inputs.n }}"
  b:
    input: |
      Line one is fine: {{ inputs.n }}
      {% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}
outputs:
  x: "{{ lipsum(100000, false, 100, 1000) }}"
"""


def test_a_render_error_names_the_template_position_in_the_flow() -> None:
    ff = load_text(FLOW, "flows/limits.yaml")
    ctx = {"inputs": {"n": 3}, "steps": {}, "secrets": {}, "env": {}}
    raw = ff.data["steps"]
    with pytest.raises(TemplateError) as a:
        evaluate(raw["a"]["input"], ctx, ff)
    assert str(a.value).startswith("flows/limits.yaml:6:12: not allowed in a template:")
    with pytest.raises(TemplateError) as b:  # line 2 of a block scalar that starts on line 8
        evaluate(raw["b"]["input"], ctx, ff)
    assert str(b.value).startswith("flows/limits.yaml:10:1: not allowed in a template:")
    assert b.value.line == 2
    with pytest.raises(TemplateError) as x:
        render(ff.data["outputs"]["x"], ctx, ff)
    assert str(x.value).startswith("flows/limits.yaml:12:6: ")


def test_a_hostile_template_fails_its_step_fast_with_its_position(tmp_path, emu) -> None:
    start = time.monotonic()
    result = run_flow(tmp_path, emu, FLOW)
    assert time.monotonic() - start < 10  # the renders are instant; the rest is the run
    assert result.status == "failed"
    flow = str(tmp_path / "flow.yaml")
    assert step_error(result, "a").startswith(f"{flow}:6:12: not allowed in a template: a '%' width")
    assert step_error(result, "b").startswith(f"{flow}:10:1: not allowed in a template: more than 100,000")
    assert emu.posts() == []  # nothing hostile reached the model
