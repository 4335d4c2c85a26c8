"""``requires: {flowrun: SPECIFIER}`` is checked when the flow loads, before the schema."""

from __future__ import annotations

import pytest

from flowrun import __version__
from flowrun.errors import SpecError
from flowrun.loader import load_text


def _problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_text(text, "f.yaml")
    return [p.format() for p in info.value.problems]


def test_too_new_requirement_names_both_versions() -> None:
    # `later_key` is unknown to this flowrun: the version is what the user must hear about
    text = 'name: f\nrequires: {flowrun: ">=99.0"}\nlater_key: 1\nsteps:\n  a: {input: hi}\n'
    (problem,) = _problems(text)
    assert problem.startswith("f.yaml:2:21: requires.flowrun: ")
    assert f"this flow requires flowrun >=99.0, but flowrun {__version__} is installed" in problem
    assert 'pip install "flowrun>=99.0"' in problem


def test_bad_specifier_is_explained() -> None:
    (problem,) = _problems('name: f\nrequires: {flowrun: "newest"}\nsteps:\n  a: {input: hi}\n')
    assert "f.yaml:2:21: requires.flowrun: 'newest' is not a version specifier" in problem


def test_satisfied_requirement_loads() -> None:
    ff = load_text(f'name: f\nrequires: {{flowrun: "=={__version__}"}}\nsteps:\n  a: {{input: hi}}\n')
    assert ff.flow.requires.flowrun == f"=={__version__}"


def test_requires_is_strict() -> None:
    (problem,) = _problems('name: f\nrequires: {flowrun: ">=0.1", python: ">=3"}\nsteps:\n  a: {input: hi}\n')
    assert "unknown key 'python'" in problem
