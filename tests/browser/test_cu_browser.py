"""Computer-use steps end to end: real headless Chromium on loopback test pages, driven by
scripted action sequences from the emulator through the real openai SDK."""

from __future__ import annotations

import base64
import io
import json
import sys
from pathlib import Path
from typing import Any

from flowkit import record

from flowrun.emulator.computer import png_size

W, H = 400, 300


def flow(step: str = "browse", path: str = "/form", extra: str = "", task: str = "Do the task.") -> str:
    return f"""
    name: cu-test
    inputs:
      site: {{type: string}}
    steps:
      {step}:
        computer_use:
          task: "{task}"
          start_url: "{{{{ inputs.site }}}}{path}"
          display: {{width: {W}, height: {H}}}
          max_turns: 10
          {extra}
    outputs:
      said: "{{{{ steps.{step}.text }}}}"
    """


def computer(action: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"computer": {"action": action, **more}}


def step_record(result: Any, step: str = "browse") -> dict[str, Any]:
    return record(result)["steps"][step]


def decode(output: dict[str, Any]) -> bytes:
    url = output["output"]["image_url"]
    assert url.startswith("data:image/png;base64,")
    return base64.b64decode(url.split(",", 1)[1])


# ---------------------------------------------------------------- the loop


def test_form_is_filled_and_submitted(driver, emu, site, tmp_path):
    emu.script({"steps": {"browse": [
        computer({"type": "click", "x": 100, "y": 25}, reasoning="I click the name field."),
        computer({"type": "type", "text": "Ada Lovelace"}),
        computer({"type": "click", "x": 60, "y": 75}),
        {"text": "Signed up as Ada Lovelace."},
    ]}})
    result = driver.run(tmp_path, emu, flow(task="Sign up as Ada Lovelace."), {"site": site.origin})

    assert result.status == "succeeded", result.error
    assert result.outputs["said"] == "Signed up as Ada Lovelace."
    assert site.posts == [{"path": "/submit", "fields": {"name": "Ada Lovelace"}}]

    posts = emu.bodies("browse")
    assert len(posts) == 4
    first = posts[0]
    assert first["model"] == "computer-use-preview"
    assert first["tools"] == [{"type": "computer_use_preview", "display_width": W,
                               "display_height": H, "environment": "browser"}]
    assert first["truncation"] == "auto"
    assert first["reasoning"] == {"summary": "concise"}
    text, image = first["input"][0]["content"]
    assert text == {"type": "input_text", "text": "Sign up as Ada Lovelace."}
    assert png_size(base64.b64decode(image["image_url"].split(",", 1)[1])) == (W, H)
    # each later turn answers the previous call, chained by previous_response_id
    for before, after in zip(posts, posts[1:]):
        assert after.get("previous_response_id")
        assert [i["type"] for i in after["input"]] == ["computer_call_output"]
    outputs = emu.outputs("browse")
    assert [o["current_url"] for o in outputs] == [site.origin + "/form", site.origin + "/form",
                                                   site.origin + "/thanks"]
    assert all(png_size(decode(o)) == (W, H) for o in outputs)
    assert [e["current_url"] for e in emu.log()] == [o["current_url"] for o in outputs]

    # the timeline: every screenshot saved with the action before it
    rec = step_record(result)
    cu = rec["computer_use"]
    assert cu["turns"] == 3 and cu["final_url"] == site.origin + "/thanks"
    names = [Path(e["screenshot"]).name for e in cu["timeline"]]
    assert names == ["0000-start.png", "0001-click.png", "0002-type.png", "0003-click.png"]
    for entry in cu["timeline"]:
        assert png_size((result.run_dir / entry["screenshot"]).read_bytes()) == (W, H)
    assert cu["timeline"][1]["performed"] == {"at": [100, 25], "button": "left"}
    assert cu["timeline"][1]["reasoning"] == "I click the name field."
    assert cu["timeline"][2]["action"] == {"type": "type", "text": "Ada Lovelace"}
    assert cu["timeline"][3]["url"] == site.origin + "/thanks"
    on_disk = json.loads((result.run_dir / cu["timeline_file"]).read_text())
    assert on_disk == cu["timeline"]
    assert rec["images"] == [str(result.run_dir / e["screenshot"]) for e in cu["timeline"]]
    assert rec["reasoning_summary"] == "I click the name field."


def test_click_opening_a_new_tab_switches_to_it(driver, emu, site, tmp_path):
    emu.script({"steps": {"browse": [
        computer({"type": "click", "x": 60, "y": 25}),
        computer({"type": "screenshot"}),
        {"text": "done"},
    ]}})
    result = driver.run(tmp_path, emu, flow(path="/tabs"), {"site": site.origin})
    assert result.status == "succeeded", result.error
    outputs = emu.outputs("browse")
    assert [o["current_url"] for o in outputs] == [site.origin + "/second"] * 2
    posts = emu.bodies("browse")
    note = posts[1]["input"][1]["content"][0]["text"]
    assert note.startswith("[flowrun] ") and "switched to another tab" in note
    assert step_record(result)["computer_use"]["timeline"][1]["events"][0]["kind"] == "tab"


def test_wheel_button_click_opens_the_link_in_a_new_tab(driver, emu, site, tmp_path):
    emu.script({"steps": {"browse": [computer({"type": "click", "button": "wheel", "x": 60, "y": 25}),
                                     {"text": "done"}]}})
    result = driver.run(tmp_path, emu, flow(path="/plain"), {"site": site.origin})
    assert result.status == "succeeded", result.error
    assert emu.outputs("browse")[0]["current_url"] == site.origin + "/second"
    entry = step_record(result)["computer_use"]["timeline"][1]
    assert entry["performed"]["button"] == "wheel"
    assert [e["kind"] for e in entry["events"]] == ["tab"]  # a new tab, not the same one navigating


def test_window_open_from_script_is_followed(driver, emu, site, tmp_path):
    emu.script({"steps": {"browse": [computer({"type": "click", "x": 50, "y": 25}), {"text": "done"}]}})
    result = driver.run(tmp_path, emu, flow(path="/popup"), {"site": site.origin})
    assert result.status == "succeeded", result.error
    assert emu.outputs("browse")[0]["current_url"] == site.origin + "/second"


def test_scroll_moves_the_page(driver, emu, site, tmp_path):
    emu.script({"steps": {"browse": [
        computer({"type": "scroll", "x": 200, "y": 150, "scroll_x": 0, "scroll_y": 600}),
        computer({"type": "scroll", "x": 200, "y": 150, "scroll_x": 0, "scroll_y": -200}),
        {"text": "done"},
    ]}})
    result = driver.run(tmp_path, emu, flow(path="/long"), {"site": site.origin})
    assert result.status == "succeeded", result.error
    urls = [o["current_url"] for o in emu.outputs("browse")]
    assert urls == [site.origin + "/long#y=600", site.origin + "/long#y=400"]
    shots = [decode(o) for o in emu.outputs("browse")]
    assert shots[0] != shots[1]


def test_key_combination_then_typing_replaces_the_text(driver, emu, site, tmp_path):
    emu.script({"steps": {"browse": [
        computer({"type": "click", "x": 100, "y": 25}),
        computer({"type": "keypress", "keys": ["CTRL", "A"]}),
        computer({"type": "type", "text": "new value"}),
        computer({"type": "keypress", "keys": ["ENTER"]}),
        {"text": "done"},
    ]}})
    result = driver.run(tmp_path, emu, flow(path="/keys"), {"site": site.origin})
    assert result.status == "succeeded", result.error
    assert site.posts == [{"path": "/submit", "fields": {"q": "new value"}}]
    assert emu.outputs("browse")[-1]["current_url"] == site.origin + "/thanks"
    timeline = step_record(result)["computer_use"]["timeline"]
    assert timeline[2]["performed"] == {"keys": ["Control", "a"]}


def test_double_click_selects_a_word(driver, emu, site, tmp_path):
    emu.script({"steps": {"browse": [
        computer({"type": "double_click", "x": 20, "y": 25}),   # on "old"
        computer({"type": "type", "text": "new"}),
        computer({"type": "keypress", "keys": ["Return"]}),
        {"text": "done"},
    ]}})
    result = driver.run(tmp_path, emu, flow(path="/keys"), {"site": site.origin})
    assert result.status == "succeeded", result.error
    assert site.posts == [{"path": "/submit", "fields": {"q": "new value"}}]


def test_drag_moves_a_slider(driver, emu, site, tmp_path):
    emu.script({"steps": {"browse": [
        computer({"type": "drag", "path": [{"x": 28, "y": 30}, {"x": 120, "y": 30}, {"x": 390, "y": 30}]}),
        computer({"type": "click", "x": 60, "y": 95}),
        {"text": "done"},
    ]}})
    result = driver.run(tmp_path, emu, flow(path="/slider"), {"site": site.origin})
    assert result.status == "succeeded", result.error
    assert emu.outputs("browse")[0]["current_url"] == site.origin + "/slider#level=100"
    assert site.posts == [{"path": "/submit", "fields": {"level": "100"}}]


def test_coordinates_are_clamped_to_the_display(driver, emu, site, tmp_path):
    emu.script({"steps": {"browse": [computer({"type": "click", "x": 5000, "y": 9000}), {"text": "done"}]}})
    result = driver.run(tmp_path, emu, flow(path="/corner"), {"site": site.origin})
    assert result.status == "succeeded", result.error
    assert site.posts == [{"path": "/submit", "fields": {"corner": "clicked"}}]
    assert step_record(result)["computer_use"]["timeline"][1]["performed"]["at"] == [W - 1, H - 1]


def test_back_button_goes_back_in_history(driver, emu, site, tmp_path):
    emu.script({"steps": {"browse": [
        computer({"type": "click", "x": 60, "y": 75}),      # submit -> /thanks
        computer({"type": "click", "button": "back", "x": 0, "y": 0}),
        {"text": "done"},
    ]}})
    result = driver.run(tmp_path, emu, flow(path="/form"), {"site": site.origin})
    assert result.status == "succeeded", result.error
    assert [o["current_url"] for o in emu.outputs("browse")] == [site.origin + "/thanks", site.origin + "/form"]


def test_download_is_saved_in_the_run_directory(driver, emu, site, tmp_path):
    emu.script({"steps": {"browse": [computer({"type": "click", "x": 60, "y": 25}), {"text": "done"}]}})
    result = driver.run(tmp_path, emu, flow(path="/download"), {"site": site.origin})
    assert result.status == "succeeded", result.error
    rec = step_record(result)
    [download] = rec["computer_use"]["downloads"]
    saved = Path(download["path"])
    assert saved.read_text() == "quarterly numbers\n"
    assert saved.parent == result.run_dir / "artifacts" / "browse"
    assert rec["files"] == [str(saved)]
    note = emu.bodies("browse")[1]["input"][1]["content"][0]["text"]
    assert "report.txt was downloaded" in note


# ---------------------------------------------------------------- the guard


def test_navigation_outside_allowed_domains_is_blocked(driver, emu, site, other_site, tmp_path):
    emu.script({"steps": {"browse": [
        computer({"type": "click", "x": 60, "y": 25}),    # link to 127.0.0.2
        computer({"type": "click", "x": 60, "y": 75}),    # link to localhost (same server)
        computer({"type": "click", "x": 60, "y": 125}),   # allowed page that redirects out
        {"text": "done"},
    ]}})
    result = driver.run(tmp_path, emu, flow(path="/links", extra="allowed_domains: [127.0.0.1]"),
                        {"site": site.origin})
    assert result.status == "succeeded", result.error
    assert other_site.requests == []  # not the links, not the image, not the redirect target
    assert [r for r in site.requests if not r["host"].startswith("127.0.0.1")] == []
    assert [r["path"] for r in site.requests] == ["/links", "/hop"]
    # the browser stayed on the allowed page, and the model was told
    outputs = emu.outputs("browse")
    assert [o["current_url"] for o in outputs] == [site.origin + "/links"] * 3
    posts = emu.bodies("browse")
    notes = [p["input"][1]["content"][0]["text"] for p in posts[1:]]
    assert f"Navigation to {other_site.origin} was blocked" in notes[0]
    assert f"Navigation to http://localhost:{site.port} was blocked" in notes[1]
    assert f"Navigation to {other_site.origin} was blocked" in notes[2]
    assert all(p["input"][1]["role"] == "user" for p in posts[1:])
    blocked = step_record(result)["computer_use"]["blocked"]
    assert {(b["url"], b["navigation"]) for b in blocked} >= {
        (other_site.origin + "/secret", True), (f"http://localhost:{site.port}/secret", True),
        (other_site.origin + "/landing", True), (other_site.origin + "/pixel.png", False)}
    assert [b for b in blocked if b["url"].endswith("/landing")][0]["redirected_from"] == site.origin + "/hop"


def test_subresource_redirects_and_websockets_to_other_hosts_are_refused(driver, emu, site, other_site,
                                                                        tmp_path):
    emu.script({"steps": {"browse": [computer({"type": "wait", "ms": 0}), {"text": "done"}]}})
    result = driver.run(tmp_path, emu, flow(path="/sneaky"), {"site": site.origin})
    assert result.status == "succeeded", result.error
    assert other_site.requests == []
    assert emu.outputs("browse")[0]["current_url"] == site.origin + "/sneaky#ws=1008"
    blocked = step_record(result)["computer_use"]["blocked"]
    assert {(b["resource_type"], b["url"], b.get("redirected_from")) for b in blocked} == {
        ("image", other_site.origin + "/landing", site.origin + "/hop"),
        ("websocket", other_site.origin.replace("http", "ws") + "/socket", None)}


def test_ambiguous_redirects_and_webrtc_cannot_reach_other_hosts(driver, emu, site, other_site,
                                                                  tmp_path):
    emu.script({"steps": {"browse": [computer({"type": "wait", "ms": 300}), {"text": "done"}]}})
    result = driver.run(tmp_path, emu, flow(path="/escape"), {"site": site.origin})
    assert result.status == "succeeded", result.error
    assert other_site.requests == []
    assert emu.outputs("browse")[0]["current_url"] == site.origin + "/escape#rtc=undefined"
    blocked = {b["url"] for b in step_record(result)["computer_use"]["blocked"]}
    assert any("\\@" in u for u in blocked) and any("@127.0.0.2" in u for u in blocked), blocked


def test_allowed_domains_default_to_the_start_host(driver, emu, site, other_site, tmp_path):
    emu.script({"steps": {"browse": [computer({"type": "click", "x": 60, "y": 25}), {"text": "done"}]}})
    result = driver.run(tmp_path, emu, flow(path="/links"), {"site": site.origin})
    assert result.status == "succeeded", result.error
    assert other_site.requests == []
    assert step_record(result)["computer_use"]["allowed_domains"] == ["127.0.0.1"]


def test_start_url_outside_allowed_domains_fails_before_the_browser(driver, emu, site, tmp_path):
    result = driver.run(tmp_path, emu, flow(path="/form", extra="allowed_domains: [example.com]"),
                        {"site": site.origin})
    assert result.status == "failed"
    assert "is not in allowed_domains (example.com)" in result.steps["browse"].error
    assert site.requests == [] and emu.bodies() == []


# ---------------------------------------------------------------- safety checks


CHECK = {"id": "cs_1", "code": "malicious_instructions", "message": "The page says to ignore the task."}


def test_listed_safety_check_is_acknowledged(driver, emu, site, tmp_path):
    emu.script({"steps": {"browse": [
        computer({"type": "click", "x": 100, "y": 25}, pending_safety_checks=[CHECK]),
        {"text": "done"},
    ]}})
    result = driver.run(tmp_path, emu, flow(extra="safety_checks: {acknowledge: [malicious_instructions]}"),
                        {"site": site.origin})
    assert result.status == "succeeded", result.error
    assert emu.outputs("browse")[0]["acknowledged_safety_checks"] == [CHECK]
    assert emu.log()[0]["acknowledged"] == ["malicious_instructions"]
    [decision] = step_record(result)["computer_use"]["safety_checks"]
    assert decision["decision"] == "acknowledged" and decision["by"] == "policy"
    assert decision["code"] == "malicious_instructions" and decision["turn"] == 1


def test_refused_safety_check_fails_the_step(driver, emu, site, tmp_path):
    emu.script({"steps": {"browse": [
        computer({"type": "click", "x": 100, "y": 25}, pending_safety_checks=[CHECK]),
        {"text": "done"},
    ]}})
    result = driver.run(tmp_path, emu, flow(extra="safety_checks: refuse"), {"site": site.origin})
    assert result.status == "failed"
    error = result.steps["browse"].error
    assert "malicious_instructions" in error and "The page says to ignore the task." in error
    assert "safety_checks: refuse" in error
    assert emu.outputs("browse") == []  # the action was never carried out nor answered
    rec = step_record(result)
    assert rec["error_type"] == "SafetyRefused"
    assert rec["computer_use"]["safety_checks"][0]["decision"] == "refused"
    assert [Path(e["screenshot"]).name for e in rec["computer_use"]["timeline"]] == ["0000-start.png"]


def test_unlisted_safety_check_is_refused(driver, emu, site, tmp_path):
    emu.script({"steps": {"browse": [
        computer({"type": "click", "x": 100, "y": 25},
                 pending_safety_checks=[{"code": "irrelevant_domain", "message": "Off task."}]),
        {"text": "done"},
    ]}})
    result = driver.run(tmp_path, emu, flow(extra="safety_checks: {acknowledge: [malicious_instructions]}"),
                        {"site": site.origin})
    assert result.status == "failed"
    assert "irrelevant_domain" in result.steps["browse"].error
    assert "acknowledges only malicious_instructions" in result.steps["browse"].error


def test_ask_refuses_when_not_interactive_and_asks_when_interactive(driver, emu, site, tmp_path, monkeypatch):
    script = {"steps": {"browse": [
        computer({"type": "click", "x": 100, "y": 25}, pending_safety_checks=[CHECK]), {"text": "done"}]}}
    emu.script(script)
    (tmp_path / "a").mkdir()
    result = driver.run(tmp_path / "a", emu, flow(), {"site": site.origin})
    assert result.status == "failed"
    assert "not interactive" in result.steps["browse"].error

    emu.reset()
    emu.script(script)
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    (tmp_path / "b").mkdir()
    result = driver.run(tmp_path / "b", emu, flow(), {"site": site.origin}, interactive=True)
    assert result.status == "succeeded", result.error
    assert emu.outputs("browse")[0]["acknowledged_safety_checks"] == [CHECK]
    assert step_record(result)["computer_use"]["safety_checks"][0]["by"] == "user"


# ---------------------------------------------------------------- limits and errors


def test_max_turns_reached_fails_the_step(driver, emu, site, tmp_path):
    emu.script({"steps": {"browse": [computer({"type": "move", "x": 10, "y": 10})]}})  # repeats forever
    result = driver.run(tmp_path, emu, flow().replace("max_turns: 10", "max_turns: 3"), {"site": site.origin})
    assert result.status == "failed"
    assert "max_turns=3" in result.steps["browse"].error
    assert len(emu.outputs("browse")) == 3
    rec = step_record(result)
    assert rec["error_type"] == "ToolLoopLimit"
    assert rec["computer_use"]["turns"] == 3 and len(rec["computer_use"]["timeline"]) == 4


def test_unsupported_action_is_reported_to_the_model(driver, emu, site, tmp_path):
    emu.script({"steps": {"browse": [computer({"type": "drag", "path": [{"x": 1, "y": 1}]}), {"text": "ok"}]}})
    result = driver.run(tmp_path, emu, flow(), {"site": site.origin})
    assert result.status == "succeeded", result.error
    note = emu.bodies("browse")[1]["input"][1]["content"][0]["text"]
    assert "drag" in note and "failed" in note and "at least two points" in note


def test_the_step_launches_its_own_browser_when_none_is_shared(driver, emu, site, tmp_path):
    emu.script({"steps": {"browse": [computer({"type": "click", "x": 100, "y": 25}), {"text": "done"}]}})
    result = driver.run(tmp_path, emu, flow(), {"site": site.origin}, own_browser=True)
    assert result.status == "succeeded", result.error
    assert emu.outputs("browse")[0]["current_url"] == site.origin + "/form"


# ---------------------------------------------------------------- modes


def test_streamed_turns(driver, emu, site, tmp_path):
    emu.script({"steps": {"browse": [computer({"type": "click", "x": 100, "y": 25}), {"text": "streamed"}]}})
    result = driver.run(tmp_path, emu, flow(extra="").replace("    computer_use:", "    stream: true\n        computer_use:"),
                        {"site": site.origin})
    assert result.status == "succeeded", result.error
    assert result.outputs["said"] == "streamed"
    assert all(p.get("stream") is True for p in emu.bodies("browse"))


def test_store_false_resends_the_conversation(driver, emu, site, tmp_path):
    emu.script({"steps": {"browse": [
        computer({"type": "click", "x": 100, "y": 25}, reasoning="first"),
        computer({"type": "type", "text": "x"}),
        {"text": "done"},
    ]}})
    result = driver.run(tmp_path, emu, flow().replace("    computer_use:", "    store: false\n        computer_use:"),
                        {"site": site.origin})
    assert result.status == "succeeded", result.error
    posts = emu.bodies("browse")
    assert all("previous_response_id" not in p and p["store"] is False for p in posts)
    assert posts[0]["include"] == ["reasoning.encrypted_content"]
    assert [i.get("type", "message") for i in posts[2]["input"]] == [
        "message", "computer_call", "computer_call_output", "computer_call", "computer_call_output"]


def test_for_each_runs_browsers_side_by_side(driver, emu, site, tmp_path):
    emu.script({"steps": {"browse[0]": [computer({"type": "click", "x": 60, "y": 25}), {"text": "tabs"}],
                          "browse[1]": [computer({"type": "click", "x": 60, "y": 75}), {"text": "form"}]}})
    text = f"""
    name: cu-fan
    inputs:
      site: {{type: string}}
    steps:
      browse:
        for_each: ["/tabs", "/form"]
        computer_use:
          task: "Visit {{{{ item }}}}"
          start_url: "{{{{ inputs.site }}}}{{{{ item }}}}"
          display: {{width: {W}, height: {H}}}
    outputs:
      said: "{{{{ steps.browse | map(attribute='text') | join(',') }}}}"
    """
    result = driver.run(tmp_path, emu, text, {"site": site.origin})
    assert result.status == "succeeded", result.error
    assert result.outputs["said"] == "tabs,form"
    assert sorted(o["current_url"] for o in emu.outputs("browse")) == [site.origin + "/second",
                                                                      site.origin + "/thanks"]
    shots = sorted(p.name for p in (result.run_dir / "artifacts").rglob("*.png"))
    assert shots == ["0000-start.png", "0000-start.png", "0001-click.png", "0001-click.png"]
    assert {p.parent.name for p in (result.run_dir / "artifacts").rglob("*.png")} == {"browse.0", "browse.1"}


def test_step_timeout_stops_the_browser(driver, emu, site, tmp_path):
    # 6 s: room for the browser to start and take its first screenshot on a busy machine
    emu.script({"steps": {"browse": [computer({"type": "wait", "ms": 30000}), {"text": "late"}]}})
    result = driver.run(tmp_path, emu, flow().replace("    computer_use:", "    timeout: 6s\n        computer_use:"),
                        {"site": site.origin})
    assert result.status == "failed"
    assert "timed out after 6s" in result.steps["browse"].error
    # the driver checks that the step's context was closed; the record keeps the start
    assert step_record(result)["computer_use"]["timeline"][0]["turn"] == 0


def test_secrets_are_masked_before_typed_text_and_dialogs_are_cut(driver, emu, site, tmp_path, monkeypatch):
    """A description keeps 40 typed characters and a dialog 500: the secret straddling
    each cut is masked first, so no piece of it is left in the record or the timeline."""
    import cu_site  # type: ignore[import-not-found]
    from flowkit import files_text

    from flowrun.browser.actions import TYPED_SHOWN
    from flowrun.browser.session import DIALOG_SHOWN

    secret = "sk-live-canary-7f3a9b2c4d5e6f70"
    monkeypatch.setenv("SITE_TOKEN", secret)
    site.extra_pages["/dialog"] = cu_site.page(
        "dialog", f'<button id=b {cu_site.box(0, 0, 200, 50)} onclick="alert(\'{"A" * (DIALOG_SHOWN - 20)}'
                  f'{secret} and more\')">go</button>')
    typed = "x" * (TYPED_SHOWN - 10) + secret
    emu.script({"steps": {"browse": [
        computer({"type": "type", "text": typed}),
        computer({"type": "click", "x": 50, "y": 25}),
        {"text": "done"},
    ]}})
    text = flow(path="/dialog").replace("steps:\n", "secrets: [SITE_TOKEN]\n    steps:\n", 1)
    try:
        result = driver.run(tmp_path, emu, text, {"site": site.origin})
    finally:
        del site.extra_pages["/dialog"]
    assert result.status == "succeeded", result.error
    cu = step_record(result)["computer_use"]
    assert cu["timeline"][1]["description"] == f"type '{'x' * (TYPED_SHOWN - 10)}***'", cu["timeline"][1]
    dialog = next(e for entry in cu["timeline"] for e in entry.get("events", []) if e["kind"] == "dialog")
    assert dialog["message"] == "A" * (DIALOG_SHOWN - 20) + "*** and more"
    pieces = {secret[i:i + 8] for i in range(len(secret) - 7)}
    for path, content in files_text(result.run_dir).items():
        leaked = [p for p in pieces if p in content]
        assert not leaked, (path, leaked)
