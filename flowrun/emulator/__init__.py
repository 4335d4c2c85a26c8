"""flowrun's built-in Responses API emulator: a local HTTP server driven by a scripted,
deterministic model, with fault injection and a request journal.

    from flowrun.emulator import EmulatorServer
    with EmulatorServer() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test")

Module map: :mod:`.server` (HTTP routes), :mod:`.service` (the API operations),
:mod:`.state` (stored responses, conversations), :mod:`.model` (default rule, reply
kinds), :mod:`.script` (script format), :mod:`.events` (SSE events), :mod:`.faults`,
:mod:`.journal`, :mod:`.conformance` (OpenAPI checks), :mod:`.runner` (serving);
extensions in :mod:`.plugins` (e.g. :mod:`.files`, :mod:`.batches`: the Batch API).
"""
from .connections import ConnectionLimits
from .errors import APIError
from .faults import FaultSpecError, Faults, parse_spec
from .journal import JournalLimits
from .model import REPLY_KINDS, Turn, default_reply, register_kind
from .runner import EmulatorServer, serve
from .script import Script, ScriptError, load_script, parse_script
from .server import create_app, register_routes
from .service import Emulator

__all__ = [
    "APIError",
    "ConnectionLimits",
    "Emulator",
    "EmulatorServer",
    "FaultSpecError",
    "Faults",
    "JournalLimits",
    "REPLY_KINDS",
    "Script",
    "ScriptError",
    "Turn",
    "create_app",
    "default_reply",
    "load_script",
    "parse_script",
    "parse_spec",
    "register_kind",
    "register_routes",
    "serve",
]

from .plugins import load_extensions as _load_extensions  # noqa: E402

_load_extensions()
