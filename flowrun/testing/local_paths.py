"""Local paths in a cassette: a request often names a file by its absolute path (an input
file rendered into the prompt, an artifact of an earlier step), which differs between
checkouts. :class:`Places` turns paths under the flow's directory, the run's directory and
the working directory into placeholders (``{flow_dir}/data/sales.csv``), so a cassette
records the same requests wherever it was made and matches wherever it is replayed. Only
what the cassette stores and compares is rewritten, never what is sent to the service.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

FLOW_DIR, RUN_DIR, CWD = "{flow_dir}", "{run_dir}", "{cwd}"
_BEFORE = r"(?<![\w.~-])"  # not in the middle of a longer name: /var/tmp/x is not /tmp/x
_AFTER = r"(?=[/\\]|$|[^\w.~-])"
_SEGMENT = r"[/\\][^/\\\s\"']+"  # one run directory under the runs folder


def _forms(path: str | os.PathLike[str]) -> list[str]:
    """``path`` as written, absolute and resolved (symlinks such as /tmp -> /private/tmp),
    without a trailing separator; none for a filesystem root, which would match everything."""
    p = Path(path)
    out: list[str] = []
    for form in (p.absolute(), p.resolve()):
        for text in (str(form), form.as_posix()):
            text = text.rstrip("/\\") if len(text) > len(form.anchor) else text
            if form != Path(form.anchor) and text not in out:
                out.append(text)
    return out


class Places:
    """Where this run is: the flow's directory, the runs folder (``--run-dir``; each run is
    a directory in it) and the working directory."""

    def __init__(self, flow_dir: str | os.PathLike[str] | None = None,
                 run_root: str | os.PathLike[str] | None = None,
                 cwd: str | os.PathLike[str] | None = None) -> None:
        roots: list[tuple[str, str, bool]] = []  # (path, placeholder, one segment more)
        for path, name, segment in ((run_root, RUN_DIR, True), (flow_dir, FLOW_DIR, False),
                                    (cwd if cwd is not None else os.getcwd(), CWD, False)):
            if path is not None:
                roots.extend((form, name, segment) for form in _forms(path))
        # the most specific first (the longest; a run directory just after its runs folder)
        roots.sort(key=lambda r: -(len(r[0]) + (0.5 if r[2] else 0)))
        self._patterns = [(re.compile(_BEFORE + re.escape(p) + (_SEGMENT if seg else "") + _AFTER), name)
                          for p, name, seg in roots]

    def placeholders(self, value: Any) -> Any:
        """``value`` (a request body) with local paths as placeholders; a copy."""
        if isinstance(value, str):
            for pattern, name in self._patterns:
                if pattern.search(value):
                    value = pattern.sub(lambda _m, n=name: n, value)
            return value
        if isinstance(value, dict):
            return {k: self.placeholders(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.placeholders(v) for v in value]
        return value
