"""A plain run (no dataset) takes the budget too: ``--rpm`` or the flow's
``rate_limits:`` keep a for_each fan-out under the emulator's quota, with no 429."""

from __future__ import annotations

from flowkit import write

from flowrun.emulator.quota import quotas, set_quota
from flowrun.launch import launch

FAN_OUT = """\
name: fan-out
rate_limits: {rpm: 570}
steps:
  each:
    for_each: "{{ range(30) | list }}"
    input: "Item {{ item }}"
"""


def test_a_plain_runs_fan_out_stays_under_the_quota(tmp_path, emu):
    set_quota(emu.server.emulator, rpm=600)  # 10 a second, at most 10 at once
    flow = write(tmp_path / "fan.yaml", FAN_OUT)
    result = launch(str(flow), (), None, "emulator", emu.base_url, True, 30, str(tmp_path / "runs"),
                    None, False)
    assert result.status == "succeeded", result.error
    posts = [e for e in emu.journal() if e["method"] == "POST"]
    assert len(posts) == 30 and [e for e in posts if e["status"] == 429] == []
    assert quotas(emu.server.emulator).refused == 0
    span = posts[-1]["time"] - posts[0]["time"]
    assert span >= (30 - 10) / 9.5 * 0.9, span  # paced by the budget, not by 429s


def test_without_a_budget_the_same_fan_out_meets_429s(tmp_path, emu):
    set_quota(emu.server.emulator, rpm=600)
    flow = write(tmp_path / "fan.yaml", FAN_OUT.replace("rate_limits: {rpm: 570}\n", "")
                 .replace("steps:", "defaults:\n  retries: {max: 30, initial_delay: 0.05, max_delay: 0.3}\nsteps:"))
    result = launch(str(flow), (), None, "emulator", emu.base_url, True, 30, str(tmp_path / "runs"),
                    None, False)
    assert result.status == "succeeded", result.error
    assert quotas(emu.server.emulator).refused > 0
