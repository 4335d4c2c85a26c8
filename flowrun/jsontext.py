"""JSON text that can always be written out.

A service reply may hold text that is not valid Unicode: a lone surrogate, sent as the JSON
escape ``"\\udc80"``, which Python decodes to a ``str`` that UTF-8 cannot encode. Such
characters are written back as the same ``\\uXXXX`` escape, so the JSON keeps the exact
value and writing it never fails.
"""

from __future__ import annotations

import json
from typing import Any


def dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps(value, ensure_ascii=False, **kwargs)`` whose result always encodes as
    UTF-8: a lone surrogate (only possible inside a string literal) becomes its escape."""
    text = json.dumps(value, ensure_ascii=False, **kwargs)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # UTF-8 fails only on surrogates; backslashreplace writes them as \\uXXXX, the JSON escape
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text
