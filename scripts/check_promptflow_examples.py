"""Import every DAG flow of a Prompt flow checkout's ``examples/flows/standard/`` and run
each on the emulator; print a table (flow, import, run status, what did not convert).

    python scripts/check_promptflow_examples.py PROMPTFLOW_CHECKOUT [-i FLOW:NAME=VALUE]...

Not part of the test suite (it needs that checkout). Python nodes may need their
requirements.txt installed; a flow that fetches a URL should be given a local one with -i.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkout", type=Path)
    ap.add_argument("-i", dest="inputs", action="append", default=[], metavar="FLOW:NAME=VALUE")
    ap.add_argument("--script", action="append", default=[], metavar="FLOW:EMULATOR_SCRIPT")
    args = ap.parse_args()
    root = args.checkout / "examples" / "flows" / "standard"
    extra: dict[str, list[str]] = {}
    for item in args.inputs:
        flow, _, assignment = item.partition(":")
        extra.setdefault(flow, []).extend(["-i", assignment])
    for item in args.script:
        flow, _, path = item.partition(":")
        extra.setdefault(flow, []).extend(["--emulator-script", str(Path(path).resolve())])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for src in sorted(p for p in root.iterdir() if (p / "flow.dag.yaml").is_file()):
            out = Path(tmp) / src.name
            imp = subprocess.run([sys.executable, "-m", "flowrun.cli", "import", "promptflow",
                                  str(src), "-o", str(out), "--json"], capture_output=True, text=True)
            try:
                report = json.loads(imp.stdout)
            except ValueError:
                rows.append((src.name, "error", "-", imp.stderr.strip().splitlines()[-1:]))
                continue
            run = subprocess.run([sys.executable, "-m", "flowrun.cli", "run", f"{src.name}.yaml",
                                  "--provider", "emulator", "--json", *extra.get(src.name, [])],
                                 capture_output=True, text=True, cwd=out, timeout=300)
            try:
                status = json.loads(run.stdout)["status"]
            except (ValueError, KeyError):
                status = "error"
            state = "clean" if report["clean"] else ("valid" if report["valid"] else "INVALID")
            rows.append((src.name, state, status, [x["what"] for x in report["lost"]]))
    print("| flow | import | run | not converted |\n| --- | --- | --- | --- |")
    for name, state, status, lost in rows:
        print(f"| {name} | {state} | {status} | {'; '.join(lost) or '-'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
