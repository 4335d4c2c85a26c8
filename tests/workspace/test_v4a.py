"""V4A diffs: create, update (anchors, fuzz, end of file, several hunks) and the exact
reasons a diff does not apply."""
from __future__ import annotations

import pytest

from flowrun.v4a import DiffError, apply_update, create_text

SOURCE = "def add(a, b):\n    return a - b\n\n\ndef sub(a, b):\n    return a - b\n"


def test_create_takes_the_plus_lines():
    assert create_text("+one\n+\n+two\n") == "one\n\ntwo\n"
    assert create_text("") == ""
    with pytest.raises(DiffError, match="line 2 of the diff: every line of a new file starts with '\\+'"):
        create_text("+one\ntwo\n")


def test_update_with_an_anchor_changes_the_named_function_only():
    new, move = apply_update(SOURCE, "@@ def sub(a, b):\n-    return a - b\n+    return a - b  # sub\n")
    assert move is None
    assert new == SOURCE.replace("    return a - b\n", "    return a - b  # sub\n", 2).replace(
        "    return a - b  # sub\n", "    return a - b\n", 1)


def test_update_context_is_matched_in_order_and_whitespace_fuzz_applies():
    diff = " def add(a, b):   \n-  return a - b\n+    return a + b\n"
    new, _ = apply_update(SOURCE, diff)
    assert new.startswith("def add(a, b):\n    return a + b\n")  # the file's own context line
    assert new.endswith("def sub(a, b):\n    return a - b\n")


def test_several_hunks_and_end_of_file():
    diff = ("@@ def add(a, b):\n-    return a - b\n+    return a + b\n"
            "@@\n     return a - b\n+# end\n*** End of File\n")
    new, _ = apply_update(SOURCE, diff)
    assert new == "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n# end\n"


def test_move_to_is_reported_to_the_caller():
    _, move = apply_update(SOURCE, "*** Move to: lib/calc.py\n@@ def add(a, b):\n-    return a - b\n+    return a + b\n")
    assert move == "lib/calc.py"


def test_crlf_files_keep_their_line_endings():
    new, _ = apply_update("a\r\nb\r\n", " a\n-b\n+c\n")
    assert new == "a\r\nc\r\n"


@pytest.mark.parametrize("diff, reason", [
    (" def mul(a, b):\n-    return a * b\n+    return a\n", r"hunk 1 \(diff line 1\): these lines are not in the file"),
    ("@@ def div(a, b):\n-x\n+y\n", r"the line after @@, 'def div\(a, b\):', is not in the file"),
    ("~oops\n", r"line 1 of the diff: expected a line starting with"),
    (" def add(a, b):\n", r"the diff changes nothing"),
    ("@@ def add(a, b):\n-    return a - b\n+    x\n \n*** End of File\n", r"at the end of the file"),
])
def test_a_diff_that_does_not_apply_says_exactly_why(diff, reason):
    with pytest.raises(DiffError, match=reason):
        apply_update(SOURCE, diff)
