"""JUnit XML for CI (the Jenkins / Ant schema that CI test viewers read)."""

from __future__ import annotations

import socket
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from .run_case import ERROR, FAILED, CaseResult


def _clean(text: str) -> str:
    """XML 1.0 cannot hold most control characters (or lone surrogates)."""
    return "".join(ch if ch in "\t\n\r" or (" " <= ch <= "\ud7ff") or ("\ue000" <= ch <= "\ufffd")
                   or ch > "\uffff" else "\ufffd" for ch in text)


def junit_xml(results: list[CaseResult]) -> bytes:
    """One ``<testsuite>`` per test file inside ``<testsuites>``."""
    files: dict[str, list[CaseResult]] = {}
    for r in results:
        files.setdefault(r.file, []).append(r)
    root = ET.Element("testsuites")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    host = socket.gethostname() or "localhost"
    for i, (file, cases) in enumerate(files.items()):
        suite = ET.SubElement(root, "testsuite", {
            "name": _clean(file),
            "tests": str(len(cases)),
            "failures": str(sum(c.status == FAILED for c in cases)),
            "errors": str(sum(c.status == ERROR for c in cases)),
            "skipped": "0",
            "time": f"{sum(c.duration_s for c in cases):.3f}",
            "timestamp": stamp,
            "hostname": host,
            "id": str(i),
            "package": "flowrun",
        })
        ET.SubElement(suite, "properties")
        for c in cases:
            case = ET.SubElement(suite, "testcase", {"name": _clean(c.name), "classname": _clean(file),
                                                     "time": f"{c.duration_s:.3f}"})
            if c.status == FAILED:
                first = c.failures[0]
                el = ET.SubElement(case, "failure", {"message": _clean(first.message[:500]),
                                                     "type": "AssertionError"})
                el.text = _clean("\n\n".join(
                    f"{f.where}: {f.message}" + (f"\n{f.diff()}" if f.diff() else "") for f in c.failures))
            elif c.status == ERROR:
                el = ET.SubElement(case, "error", {"message": _clean((c.error or "")[:500]),
                                                   "type": "FlowrunError"})
                el.text = _clean(c.error or "")
        ET.SubElement(suite, "system-out")
        ET.SubElement(suite, "system-err")
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def write_junit(results: list[CaseResult], path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(junit_xml(results))
