"""``flowrun test --update``: rewrite ``equals`` snapshots from the actual values, keeping
the test file's comments and layout (ruamel.yaml round trip)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from .checks import Failure


def update_file(path: Path, failures: list[Failure]) -> int:
    """Set every failed ``equals`` in ``path`` to its actual value; returns how many."""
    from ruamel.yaml import YAML

    todo = [f for f in failures if f.path and f.path[-1] == "equals" and f.expected is not f.actual]
    if not todo:
        return 0
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    doc = yaml.load(path.read_text(encoding="utf-8"))
    changed = 0
    for f in todo:
        node: Any = doc
        try:
            for part in f.path[:-1]:
                node = node[part]
        except (KeyError, IndexError, TypeError):
            continue
        if isinstance(node, dict):
            node["equals"] = f.actual
            changed += 1
    if changed:
        out = io.StringIO()
        yaml.dump(doc, out)
        path.write_text(out.getvalue(), encoding="utf-8")
    return changed
