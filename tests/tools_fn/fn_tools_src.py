"""Source text of the tool modules the function-tool tests write beside their flows."""

TOOLS_PY = '''
"""Tools for the function-tool tests."""
import asyncio
import os
import threading
import time

_events = {}


def _event(name):
    if name not in _events:
        _events[name] = asyncio.Event()
    return _events[name]


def weather(city: str, days: int = 1) -> dict:
    """Weather forecast for a city.

    Args:
        city: The city name.
        days: How many days ahead.
    """
    return {"city": city, "days": days, "temp": 21}


async def wait_a(note: str) -> str:
    """Sets event A, then waits for B: finishes only if wait_b runs at the same time."""
    _event("a").set()
    await asyncio.wait_for(_event("b").wait(), 5)
    await asyncio.sleep(0.2)  # finish after wait_b: outputs must still keep call order
    return "a saw b"


async def wait_b(note: str) -> str:
    """Sets event B, then waits for A."""
    _event("b").set()
    await asyncio.wait_for(_event("a").wait(), 5)
    return "b saw a"


_barrier = threading.Barrier(2, timeout=5)


def sync_a() -> str:
    """Blocks (in a thread) until sync_b arrives too."""
    _barrier.wait()
    return "sync a done"


def sync_b() -> str:
    """Blocks (in a thread) until sync_a arrives too."""
    _barrier.wait()
    return "sync b done"


def explode(x: int) -> int:
    """Always fails."""
    raise ValueError(f"cannot handle {x}")


async def hang() -> str:
    """Never finishes."""
    await asyncio.sleep(3600)
    return "never"


def stuck(flag: str) -> str:
    """Blocks its thread until the file `flag` exists (at most 30 s)."""
    deadline = time.monotonic() + 30
    while not os.path.exists(flag) and time.monotonic() < deadline:
        time.sleep(0.02)
    return "released"


_count = {"n": 0}


def counter() -> int:
    """Counts its calls."""
    _count["n"] += 1
    return _count["n"]


def search(query: str, api_key: str) -> str:
    """Search with a key the model never sees.

    Args:
        query: What to look for.
        api_key: The service key (bound by the flow).
    """
    ok = api_key == os.environ.get("FN_TEST_SECRET")
    return f"3 results for {query} (key accepted: {ok})"


def tally(counts: dict[str, int]) -> int:
    """Adds up counts (a free-form object: not expressible in strict mode)."""
    return sum(counts.values())
'''

COMMAND_PY = '''
import json
import os
import subprocess
import sys
import time

args = json.load(sys.stdin)
mode = args.get("mode")
if mode == "json":
    token = args.pop("token", None)  # never echoed: it may be a bound secret
    json.dump({"echo": args, "cwd": os.getcwd(),
               "token_check": token and token == os.environ.get("FN_TEST_SECRET")}, sys.stdout)
elif mode == "text":
    print("plain text answer")
elif mode == "fail":
    print("something broke at line 7", file=sys.stderr)
    sys.exit(3)
elif mode == "hang":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with open(args["pidfile"], "w") as fh:
        fh.write(str(child.pid))
    time.sleep(60)
'''

COMMAND_SCHEMA = """\
    parameters:
      type: object
      properties:
        mode: {type: string, enum: [json, text, fail, hang]}
        pidfile: {type: string}
        token: {type: string}
      required: [mode]
"""

SUBFLOW_YAML = '''
name: city-line
description: Describe a city in a few words.
inputs:
  city: {type: string, description: The city to describe}
  words: {type: integer, default: 5, description: How many words}
  tone: {type: string, default: plain, enum: [plain, poetic]}
steps:
  describe:
    input: "Describe {{ inputs.city }} in {{ inputs.words }} {{ inputs.tone }} words."
outputs:
  line: "{{ steps.describe.text }}"
  words: "{{ inputs.words }}"
'''
