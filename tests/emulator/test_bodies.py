"""Bad request bodies get a 400 in the OpenAI error envelope on every body-taking route,
and the journal still serialises afterwards (strict JSON)."""
from __future__ import annotations

import json

import pytest
from flowkit import assert_conforms

DEEP = b"[" * 100_000 + b"]" * 100_000
BAD_JSON = {
    "deep nesting": DEEP,
    "lone surrogate": b'{"model": "gpt-4.1", "input": "\\udc80"}',
    "NaN": b'{"model": "gpt-4.1", "input": "x", "name": NaN}',
    "overflowing number": b'{"model": "gpt-4.1", "input": "x", "memory_limit": 1e999}',
    "invalid UTF-8": b'{"model": "gpt-4.1", "input": "\xff"}',
    "truncated": b'{"model": "gpt-4.1", "input": ',
    "giant integer": b'{"model": "gpt-4.1", "input": "x", "n": ' + b"9" * 5000 + b"}",
}


def _strict(text: str):
    def no_constant(name):
        raise AssertionError(f"journal is not strict JSON: {name}")
    return json.loads(text, parse_constant=no_constant)


def _assert_error(r, status: int = 400) -> dict:
    assert r.status_code == status, r.text[:300]
    assert r.headers["content-type"] == "application/json"
    assert_conforms("ErrorResponse", r.json())
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"
    assert "Traceback" not in r.text
    return error


@pytest.fixture
def routes(http):
    container = http.post("/v1/containers", json={"name": "c"}).json()["id"]
    return ["/v1/responses", "/openai/v1/responses", "/v1/containers", f"/v1/containers/{container}/files",
            "/_emulator/script", "/_emulator/faults"]


@pytest.mark.parametrize("kind", sorted(BAD_JSON))
def test_every_json_route_answers_bad_bodies_with_400(http, routes, kind):
    for route in routes:
        r = http.post(route, content=BAD_JSON[kind], headers={"content-type": "application/json"})
        message = _assert_error(r)["message"]
        assert message.startswith("We could not parse the JSON body of your request: "), (route, message)
    journal = http.get("/_emulator/requests")
    assert journal.status_code == 200
    entries = _strict(journal.text)
    assert [e["body"] for e in entries if e["path"] != "/v1/containers" or e["body"] is None][-4:] == [None] * 4


def test_deep_nesting_and_lone_surrogate_say_what_and_where(http):
    error = _assert_error(http.post("/v1/responses", content=DEEP, headers={"content-type": "application/json"}))
    assert "nested more than 64 levels" in error["message"]
    r = http.post("/v1/responses", content=b'{"model": "gpt-4.1", "input": [{"role": "user", "content": "ok \\udc80"}]}',
                  headers={"content-type": "application/json"})
    error = _assert_error(r)
    assert error["param"] == "input[0].content" and "lone UTF-16 surrogate (\\udc80" in error["message"]
    # the journal keeps serialising: the rejected request is there, with no body
    journal = http.get("/_emulator/requests")
    assert journal.status_code == 200 and [e["body"] for e in _strict(journal.text)] == [None, None]
    # a surrogate pair (an emoji) is fine
    r = http.post("/v1/responses", content=b'{"model": "gpt-4.1", "input": "hi \\ud83d\\ude00"}',
                  headers={"content-type": "application/json"})
    assert r.status_code == 200 and r.json()["output"][0]["content"][0]["text"].endswith("hi \U0001F600")


def test_nesting_within_the_limit_is_accepted(http):
    schema: dict = {"type": "string"}
    for _ in range(25):  # 2 JSON levels each, inside tools[0].parameters
        schema = {"type": "object", "properties": {"a": schema}}
    tool = {"type": "function", "name": "f", "parameters": schema}
    r = http.post("/v1/responses", json={"model": "gpt-4.1", "input": "x", "tools": [tool]})
    assert r.status_code == 200, r.text[:300]


@pytest.mark.parametrize("ctype", ["multipart/form-data; boundary=xyz", "multipart/form-data"])
def test_bad_multipart_bodies_get_400(http, routes, ctype):
    for route in ("/v1/files", routes[3]):
        r = http.post(route, content=b"garbage", headers={"content-type": ctype})
        assert "multipart/form-data body" in _assert_error(r)["message"]
    r = http.post("/v1/files", json={"purpose": "user_data"})  # JSON where a form is needed
    assert "multipart/form-data upload" in _assert_error(r)["message"]
    assert http.get("/_emulator/requests").status_code == 200
