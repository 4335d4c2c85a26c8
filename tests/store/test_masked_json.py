"""The store's JSON writer: the copy-free path (nothing to mask) writes exactly what the
masking copy writes, and never lets a credential header or a secret through."""
import json

import pytest

from flowrun.secrets import MASK, Redactor
from flowrun.store import smaller_than


def compact(value):
    return json.dumps(value, ensure_ascii=True, default=str, separators=(",", ":"))


def pretty(value):
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


VALUES = [
    {"id": "resp_1", "output": [{"type": "message", "content": [{"text": "plain"}]}], "n": (1, 2)},
    {"headers": {"Authorization": "Bearer abc", "X-Other": "ok"}},
    {"headers": {"coo\u212aie": "session=1"}},  # KELVIN SIGN lower-cases to "cookie"
    {"headers": {"API-Key" : "k"}, "note": "caf\u00e9"},
    {"text": "Authorization", "list": ["cookie", {"proxy-authorization": "x"}]},
]


@pytest.mark.parametrize("dump", [compact, pretty])
@pytest.mark.parametrize("value", VALUES)
def test_dumps_is_the_masked_copy(value, dump):
    redactor = Redactor()
    assert redactor.dumps(value, dump) == dump(redactor.deep(value))


def test_dumps_masks_credential_headers_and_secrets():
    redactor = Redactor()
    out = json.loads(redactor.dumps({"headers": {"Authorization": "Bearer abc"}}, compact))
    assert out == {"headers": {"Authorization": MASK}}
    redactor.add("s3cret-value")
    assert "s3cret-value" not in redactor.dumps({"a": ["x s3cret-value y"]}, compact)


def test_smaller_than_counts_nested_text():
    assert smaller_than({"a": ["x" * 100]}, 1000)
    assert not smaller_than({"a": ["x" * 100, {"b": "y" * 2000}]}, 1000)
    assert not smaller_than(["z" * 10] * 500, 1000)
