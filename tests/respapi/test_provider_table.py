"""Provider differences in one place: ``validate --provider azure`` warns, with positions,
about what Azure's Responses API does not offer; the exit code stays 0."""

from __future__ import annotations

import json

from flowkit import flowrun_cli, write_flow

from flowrun.capabilities import UNSUPPORTED, provider_warnings
from flowrun.plan import load_plan

FLOW = """\
name: az
defaults: {model: gpt-4.1, service_tier: flex}
steps:
  a:
    input: [{image: pic.png, upload: true}]
    conversation: new
  b:
    prompt: {id: pmpt_1}
    tools: [image_generation]
    stream: true
"""


def test_validate_warns_for_azure_only(tmp_path):
    path = write_flow(tmp_path, FLOW)
    proc = flowrun_cli("validate", str(path), "--provider", "azure")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert any(line.startswith(f"{path}:2:") and "service_tier" in line for line in lines), lines
    assert any(":6:5: steps.a.conversation: warning: Conversations" in line for line in lines), lines
    assert any("steps.a.input[0].upload" in line and "uploaded as a file" in line for line in lines)
    assert any("steps.b.tools[0]" in line and "streaming" in line for line in lines), lines
    assert any("steps.b.prompt" in line for line in lines), lines
    quiet = flowrun_cli("validate", str(path), "--provider", "openai")
    assert quiet.returncode == 0 and "warning" not in quiet.stderr
    as_json = json.loads(flowrun_cli("validate", str(path), "--provider", "azure", "--json").stdout)
    assert len(as_json[str(path)]["warnings"]) == 5


def test_table_rows_are_features_the_walker_knows(tmp_path):
    plan = load_plan(write_flow(tmp_path, FLOW))
    found = {w.message for w in provider_warnings(plan, "azure")}
    assert all(m.startswith("warning: ") for m in found)
    assert set(UNSUPPORTED) == {"azure", "openai", "compatible", "emulator"}
    assert provider_warnings(plan, "emulator") == []
