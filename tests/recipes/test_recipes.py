"""Recipes: a real package (a folder on PYTHONPATH with a real ``.dist-info`` whose
``entry_points.txt`` declares ``flowrun.recipes``) is listed, run by name, used as a
sub-flow and copied by ``flowrun new``; importlib.metadata finds it in the subprocess."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from flowkit import flowrun_cli, write

SECRET = "acme-secret-value-7f3e9b21c4"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """``acme-recipes 1.2.0``: two recipes, one a package folder, one a path attribute."""
    root = tmp_path / "site"
    write(root / "acme_recipes" / "__init__.py", '''
        from pathlib import Path
        SHOUT = Path(__file__).parent / "shout" / "shout.yaml"
    ''')
    write(root / "acme_recipes" / "summarize" / "__init__.py", "")
    write(root / "acme_recipes" / "summarize" / "summarize.yaml", '''
        name: summarize
        description: Count the words of a text, then summarise it.
        requires: {flowrun: ">=0.1"}
        secrets: [ACME_TOKEN]
        inputs:
          text: {type: string, description: The text to summarise.}
          style: {type: string, default: one line}
        steps:
          count:
            python: acme_tools:count_words
            with: {text: "{{ inputs.text }}"}
          summary:
            input: "Summarise in {{ inputs.style }} ({{ steps.count.output }} words): {{ inputs.text }}"
            metadata: {token_len: "{{ secrets.ACME_TOKEN | length }}"}
        outputs:
          words: "{{ steps.count.output }}"
          summary: "{{ steps.summary.text }}"
    ''')
    write(root / "acme_recipes" / "summarize" / "acme_tools.py", '''
        def count_words(text: str) -> int:
            return len(text.split())
    ''')
    write(root / "acme_recipes" / "summarize" / "summarize.emulator.yaml", '''
        steps:
          summary: ["A short summary."]
    ''')
    write(root / "acme_recipes" / "summarize" / "summarize.test.yaml", '''
        cases:
          counts and summarises:
            inputs: {text: "one two three"}
            env: {ACME_TOKEN: fake}
            expect:
              outputs:
                words: {equals: 3}
                summary: {equals: "A short summary."}
    ''')
    write(root / "acme_recipes" / "shout" / "shout.yaml", '''
        name: shout
        description: Say it louder.
        inputs: {text: string}
        steps:
          loud: {input: "SAY {{ inputs.text }}"}
        outputs: {text: "{{ steps.loud.text }}"}
    ''')
    info = root / "acme_recipes-1.2.0.dist-info"
    write(info / "METADATA", "Metadata-Version: 2.1\nName: acme-recipes\nVersion: 1.2.0\n")
    write(info / "entry_points.txt", '''
        [flowrun.recipes]
        summarize = acme_recipes.summarize
        shout = acme_recipes:SHOUT
    ''')
    return root


def _env(site: Path, **extra: str) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]), **extra}


def test_recipes_lists_installed_recipes(site: Path, tmp_path: Path) -> None:
    proc = flowrun_cli("recipes", "--json", cwd=tmp_path, env=_env(site))
    assert proc.returncode == 0, proc.stderr
    by_name = {r["name"]: r for r in json.loads(proc.stdout)["recipes"]}
    assert {"summarize", "shout", "starter"} <= set(by_name)
    s = by_name["summarize"]
    assert s["source"] == "acme-recipes 1.2.0"
    assert s["description"] == "Count the words of a text, then summarise it."
    assert s["inputs"]["text"] == {"type": "string", "required": True,
                                   "description": "The text to summarise."}
    assert s["inputs"]["style"]["default"] == "one line"
    assert s["secrets"] == ["ACME_TOKEN"]
    assert Path(by_name["shout"]["path"]) == site / "acme_recipes" / "shout" / "shout.yaml"
    text = flowrun_cli("recipes", cwd=tmp_path, env=_env(site))
    assert "summarize  (acme-recipes 1.2.0)" in text.stdout
    assert "reads secrets: ACME_TOKEN" in text.stdout


def test_run_recipe_by_name_lists_its_secrets_first(site: Path, tmp_path: Path) -> None:
    proc = flowrun_cli("run", "summarize", "--provider", "emulator", "--json",
                       "-i", "text=alpha beta gamma delta", cwd=tmp_path,
                       env=_env(site, ACME_TOKEN=SECRET))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    # the python step ran the package's tools module; the package's emulator script answered
    assert out["outputs"] == {"words": 4, "summary": "A short summary."}
    assert ("recipe summarize (acme-recipes 1.2.0) reads these secrets from the environment: "
            "ACME_TOKEN") in proc.stderr
    assert SECRET not in proc.stderr + proc.stdout
    # without the secret, the run stops before any request, naming it
    missing = flowrun_cli("run", "recipe:summarize", "--provider", "emulator",
                          "-i", "text=x", cwd=tmp_path, env=_env(site))
    assert missing.returncode == 2
    assert "ACME_TOKEN" in missing.stderr and "Traceback" not in missing.stderr


def test_recipe_as_subflow(site: Path, tmp_path: Path) -> None:
    flow = write(tmp_path / "caller.yaml", '''
        name: caller
        steps:
          loud:
            flow: recipe:shout
            with: {text: hello}
        outputs: {said: "{{ steps.loud.text }}"}
    ''')
    proc = flowrun_cli("run", str(flow), "--provider", "emulator", "--json", cwd=tmp_path,
                       env=_env(site))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["outputs"]["said"] == "[emulator] turn 1: SAY hello"


def test_unknown_recipe_is_a_positioned_error(site: Path, tmp_path: Path) -> None:
    flow = write(tmp_path / "caller.yaml", '''
        name: caller
        steps:
          loud:
            flow: recipe:shuot
            with: {text: hello}
    ''')
    proc = flowrun_cli("validate", str(flow), cwd=tmp_path, env=_env(site))
    assert proc.returncode == 2
    assert "caller.yaml:5:11: steps.loud.flow: no recipe named 'shuot' is installed" in proc.stderr
    assert "did you mean 'shout'?" in proc.stderr
    bare = flowrun_cli("run", "shuot", "--provider", "emulator", cwd=tmp_path, env=_env(site))
    assert bare.returncode == 2 and "no recipe named 'shuot'" in bare.stderr
    assert "Traceback" not in proc.stderr + bare.stderr


def test_new_from_recipe_passes_its_tests(site: Path, tmp_path: Path) -> None:
    made = flowrun_cli("new", "digest", "--from", "summarize", cwd=tmp_path, env=_env(site))
    assert made.returncode == 0, made.stderr
    folder = tmp_path / "digest"
    assert sorted(p.name for p in folder.iterdir()) == [
        "acme_tools.py", "digest.emulator.yaml", "digest.test.yaml", "digest.yaml"]
    assert "name: digest" in (folder / "digest.yaml").read_text()
    proc = flowrun_cli("test", "digest", cwd=tmp_path, env=_env(site))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed, 0 failed" in proc.stdout
    again = flowrun_cli("new", "digest", cwd=tmp_path, env=_env(site))
    assert again.returncode == 2 and "already exists" in again.stderr


def test_new_starter_validates_and_passes_its_tests(tmp_path: Path) -> None:
    made = flowrun_cli("new", "my-flow", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    folder = tmp_path / "my-flow"
    assert {p.name for p in folder.iterdir()} == {
        "my-flow.yaml", "tools.py", "my-flow.emulator.yaml", "my-flow.test.yaml"}
    valid = flowrun_cli("validate", "my-flow/my-flow.yaml", "my-flow/my-flow.emulator.yaml",
                        cwd=tmp_path)
    assert valid.returncode == 0, valid.stderr
    proc = flowrun_cli("test", "my-flow", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed, 0 failed" in proc.stdout
