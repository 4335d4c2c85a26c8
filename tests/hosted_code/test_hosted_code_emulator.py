"""The emulator's code interpreter: the sandbox, the containers API and the shapes it
answers with (checked against the OpenAPI spec, container schemas from the full spec)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from pathlib import Path

import openai
import pytest
from flowkit import assert_conforms, png_bytes
from hosted_code_kit import PNG_CODE

from flowrun.emulator import sandbox
from flowrun.emulator.script import ScriptError, parse_script

# --------------------------------------------------------------------------- sandbox


def _run(tmp_path: Path, code: str, **kw):
    data, tmp = tmp_path / "data", tmp_path / "tmp"
    data.mkdir(exist_ok=True)
    tmp.mkdir(exist_ok=True)
    return asyncio.run(sandbox.run_code(code, data, tmp, **kw)), data


def test_infinite_loop_is_killed_at_the_time_limit(tmp_path):
    result, _ = _run(tmp_path, "import os\nos.fork()\nwhile True:\n    pass\n", timeout=0.5)
    assert result.timed_out and not result.ok
    assert result.exit_code == -9
    assert 0.5 <= result.duration < 5
    assert result.logs.endswith("TimeoutError: execution exceeded the time limit of 0.5s and was stopped\n")


def test_mnt_data_is_the_containers_directory_and_the_cwd(tmp_path):
    code = ("import os\nopen('/mnt/data/out.txt', 'w').write('x')\nos.makedirs('/mnt/data/sub')\n"
            "open('sub/inner.txt', 'w').write('y')\nprint(os.getcwd())\nprint(os.path.abspath('out.txt'))\n")
    result, data = _run(tmp_path, code)
    assert result.ok, result.logs
    assert (data / "out.txt").read_text() == "x"
    assert (data / "sub" / "inner.txt").read_text() == "y"
    # the logs speak of /mnt/data, as in the hosted container
    assert result.logs == "/mnt/data\n/mnt/data/out.txt\n"
    assert not Path("/mnt/data/out.txt").exists()


@pytest.mark.skipif(not sandbox.write_guard_available(), reason="this kernel has no Landlock")
def test_code_cannot_write_outside_its_container(tmp_path):
    outside = tmp_path / "outside.txt"
    code = f"open({str(outside)!r}, 'w').write('escaped')\n"
    result, data = _run(tmp_path, code)
    assert result.guarded
    assert "PermissionError" in result.logs
    assert not outside.exists()
    # ... nor reach the network
    result, _ = _run(tmp_path, "import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=2)\n")
    assert "PermissionError" in result.logs


def test_the_environment_is_stripped(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWRUN_TEST_SECRET", "s3cret")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    result, _ = _run(tmp_path, "import os, sys, json\nprint(json.dumps(sorted(os.environ)))\n"
                               "print(sys.flags.isolated)\n")
    names = json.loads(result.logs.splitlines()[0])
    assert "FLOWRUN_TEST_SECRET" not in names and "PYTHONPATH" not in names
    assert "OPENAI_API_KEY" not in names
    assert result.logs.splitlines()[1] == "1"


def test_memory_limit(tmp_path):
    result, _ = _run(tmp_path, "x = bytearray(600 * 1024 * 1024)\nprint('allocated')\n",
                     memory=256 * 1024 * 1024)
    assert "MemoryError" in result.logs and "allocated" not in result.logs
    result, _ = _run(tmp_path, "x = bytearray(64 * 1024 * 1024)\nprint('allocated')\n",
                     memory=256 * 1024 * 1024)
    assert result.logs == "allocated\n"


def test_output_is_capped(tmp_path):
    result, _ = _run(tmp_path, "import sys\nsys.stdout.write('z' * 300000)\n")
    assert result.ok
    assert result.logs.count("z") == sandbox.MAX_LOG_BYTES
    assert f"[output truncated: {300000 - sandbox.MAX_LOG_BYTES} more bytes]" in result.logs


def test_script_payloads():
    script = parse_script({"steps": {"a": [{"code": "print(1)"}, {"code": {"source": "x", "text": "t", "timeout": 2}}]}})
    first, second = script.steps["a"]
    assert first.kind == "code" and first.value == "print(1)"
    assert second.value.source == "x" and second.value.timeout == 2
    with pytest.raises(ScriptError, match="source"):
        parse_script({"steps": {"a": [{"code": {"text": "no source"}}]}})


# --------------------------------------------------------------------------- over HTTP


def _create(client, tools, step="s", **kw):
    """POST /responses through the SDK; the raw JSON the emulator answered."""
    raw = client.responses.with_raw_response.create(model="gpt-4.1", input="go", tools=tools,
                                                 metadata={"flowrun_step": step}, **kw)
    return json.loads(raw.text)


def test_response_items_and_container_objects_conform(emu, client):
    upload = client.files.create(file=("in.csv", b"n\n2\n3\n"), purpose="user_data")
    emu.script({"steps": {"s": [{"code": PNG_CODE + "png('/mnt/data/p.png', 3, 2, (1, 2, 3))\n"
                                          "print(sum(int(x) for x in open('/mnt/data/in.csv').read().split()[1:]))\n"
                                          "open('/mnt/data/r.txt', 'w').write('r')\n"}]}})
    body = _create(client, [{"type": "code_interpreter",
                          "container": {"type": "auto", "file_ids": [upload.id], "memory_limit": "1g"}}],
                   include=["code_interpreter_call.outputs"])
    assert_conforms("Response", body)
    call, message = body["output"]
    assert_conforms("CodeInterpreterToolCall", call)
    assert call["status"] == "completed" and call["id"].startswith("ci_")
    logs, image = call["outputs"]
    assert logs == {"type": "logs", "logs": "5\n"}
    assert image["type"] == "image"
    assert base64.b64decode(image["url"].split(",", 1)[1]) == png_bytes(3, 2, (1, 2, 3))
    part = message["content"][0]
    assert [a["filename"] for a in part["annotations"]] == ["p.png", "r.txt"]
    for ann in part["annotations"]:
        assert_conforms("ContainerFileCitationBody", ann)
        assert ann["container_id"] == call["container_id"]
        assert part["text"][ann["start_index"]:ann["end_index"]] == \
            f"[{ann['filename']}](sandbox:/mnt/data/{ann['filename']})"

    cid = call["container_id"]
    container = json.loads(client.containers.with_raw_response.retrieve(cid).text)
    assert_conforms("ContainerResource", container)
    assert container["memory_limit"] == "1g" and container["status"] == "running"
    listing = json.loads(client.containers.files.with_raw_response.list(cid, order="asc").text)["data"]
    for f in listing:
        assert_conforms("ContainerFileResource", f)
    assert [(f["path"], f["source"]) for f in listing] == [
        ("/mnt/data/in.csv", "user"), ("/mnt/data/p.png", "assistant"), ("/mnt/data/r.txt", "assistant")]
    by_path = {f["path"]: f for f in listing}
    content = client.containers.files.content.retrieve(by_path["/mnt/data/in.csv"]["id"], container_id=cid)
    assert content.content == b"n\n2\n3\n"


def test_list_pages_and_raw_shapes(emu, client):
    import httpx2

    c1 = client.containers.create(name="one")
    c2 = client.containers.create(name="two", memory_limit="4g")
    for i in range(3):
        client.containers.files.create(c1.id, file=(f"f{i}.txt", f"{i}".encode()))
    with httpx2.Client(base_url=emu.base_url) as http:
        page = http.get("/containers", params={"limit": 1}).json()
        assert_conforms("ContainerListResource", page)
        assert [c["id"] for c in page["data"]] == [c2.id] and page["has_more"]
        files = http.get(f"/containers/{c1.id}/files", params={"limit": 2, "order": "asc"}).json()
        assert_conforms("ContainerFileListResource", files)
        assert [f["path"] for f in files["data"]] == ["/mnt/data/f0.txt", "/mnt/data/f1.txt"]
        rest = http.get(f"/containers/{c1.id}/files",
                        params={"order": "asc", "after": files["last_id"]}).json()
        assert [f["path"] for f in rest["data"]] == ["/mnt/data/f2.txt"] and not rest["has_more"]
        assert http.get("/containers", params={"name": "two"}).json()["data"][0]["memory_limit"] == "4g"
        missing = http.get("/containers/cntr_nope")
        assert missing.status_code == 404 and "cntr_nope" in missing.json()["error"]["message"]
        assert http.post("/containers", json={}).status_code == 400
    # the SDK pages through everything
    assert [f.path for f in client.containers.files.list(c1.id, order="asc", limit=1)] == [
        "/mnt/data/f0.txt", "/mnt/data/f1.txt", "/mnt/data/f2.txt"]
    fid = next(iter(client.containers.files.list(c1.id))).id
    client.containers.files.delete(fid, container_id=c1.id)
    assert len(list(client.containers.files.list(c1.id))) == 2
    deleted = client.containers.delete(c2.id)
    assert deleted is None or getattr(deleted, "deleted", True)
    with pytest.raises(openai.NotFoundError):
        client.containers.retrieve(c2.id)


def test_container_created_with_file_ids_and_used_by_id(emu, client):
    upload = client.files.create(file=("nums.txt", b"1 2 3 4"), purpose="user_data")
    container = client.containers.create(name="mine", file_ids=[upload.id])
    emu.script({"steps": {"s": [{"code": "print(sum(map(int, open('/mnt/data/nums.txt').read().split())))"}]}})
    body = _create(client, [{"type": "code_interpreter", "container": container.id}])
    call = body["output"][0]
    assert call["container_id"] == container.id
    assert call["outputs"] is None  # not included in the request
    assert body["output"][1]["content"][0]["text"] == "[emulator] code output:\n10"


def test_auto_container_is_reused_through_previous_response_id(emu, client):
    emu.script({"steps": {"s": [{"code": "open('/mnt/data/k.txt', 'w').write('k')"},
                                {"code": "import os; print(os.listdir('.'))"}]}})
    tools = [{"type": "code_interpreter", "container": {"type": "auto"}}]
    first = _create(client, tools)
    second = _create(client, tools, previous_response_id=first["id"], include=["code_interpreter_call.outputs"])
    assert first["output"][0]["container_id"] == second["output"][0]["container_id"]
    assert second["output"][0]["outputs"][0]["logs"] == "['k.txt']\n"
    # without the history, a new container
    third = _create(client, tools)
    assert third["output"][0]["container_id"] != first["output"][0]["container_id"]


def test_errors_a_flow_author_would_hit(emu, client):
    emu.script({"steps": {"s": [{"code": "print(1)"}]}})
    with pytest.raises(openai.BadRequestError, match="no code_interpreter tool"):
        _create(client, [])
    with pytest.raises(openai.BadRequestError, match="Container with id 'cntr_gone' not found"):
        _create(client, [{"type": "code_interpreter", "container": "cntr_gone"}])
    with pytest.raises(openai.BadRequestError, match="File with id 'file-nope' not found"):
        _create(client, [{"type": "code_interpreter", "container": {"type": "auto", "file_ids": ["file-nope"]}}])


def test_streamed_code_call_events_conform(emu):
    import httpx2

    emu.script({"steps": {"s": [{"code": "for i in range(3):\n    print(i)\nopen('/mnt/data/o.txt','w').write('o')\n"}]}})
    body = {"model": "gpt-4.1", "input": "go", "stream": True, "metadata": {"flowrun_step": "s"},
            "include": ["code_interpreter_call.outputs"],
            "tools": [{"type": "code_interpreter", "container": {"type": "auto"}}]}
    with httpx2.Client(base_url=emu.base_url, timeout=30) as http:
        text = http.post("/responses", json=body).text
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    for event in events:
        assert_conforms("ResponseStreamEvent", event)
    types = [e["type"] for e in events]
    start = types.index("response.output_item.added")
    deltas = [e["delta"] for e in events if e["type"] == "response.code_interpreter_call_code.delta"]
    assert "".join(deltas) == body_code(events)
    kinds = [t for t in types[start:types.index("response.output_item.done")]
             if not t.endswith("code.delta")]
    assert kinds == ["response.output_item.added", "response.code_interpreter_call.in_progress",
                     "response.code_interpreter_call_code.done",
                     "response.code_interpreter_call.interpreting",
                     "response.code_interpreter_call.completed"]
    added = events[start]["item"]
    assert added["status"] == "in_progress" and added["code"] == "" and added["outputs"] is None
    annotation = next(e for e in events if e["type"] == "response.output_text.annotation.added")
    assert annotation["annotation"]["filename"] == "o.txt" and annotation["annotation_index"] == 0
    assert types.index("response.output_text.annotation.added") < types.index("response.output_text.done")
    final = events[-1]["response"]
    assert final["output"][0]["outputs"][0]["logs"] == "0\n1\n2\n"


def body_code(events):
    return next(e["code"] for e in events if e["type"] == "response.code_interpreter_call_code.done")


def test_reset_removes_container_directories(emu, client):
    container = client.containers.create(name="temp")
    store = emu.server.emulator._container_store
    root = store.get(container.id).root
    assert root.is_dir()
    emu.reset()
    assert not root.exists() and store.get(container.id) is None
    assert os.path.isdir(store.root)
