"""Emulator extensions: modules that register reply kinds, routes and reset hooks.
Each is imported once, when :mod:`flowrun.emulator` is imported; add one line per module."""

from __future__ import annotations

import importlib

EXTENSIONS = [
    "flowrun.emulator.files",
    "flowrun.emulator.containers",
    "flowrun.emulator.inputs_report",
    "flowrun.emulator.images",
    "flowrun.emulator.hosted_mcp",
    "flowrun.emulator.function_tools",
    "flowrun.emulator.computer",
    "flowrun.emulator.recorded",
    "flowrun.emulator.workspace_tools",
    "flowrun.emulator.vector_stores",
    "flowrun.emulator.file_search",
    "flowrun.emulator.web_search",
    "flowrun.emulator.quota",
    "flowrun.emulator.batches",
    # AFTER_REPLY runs in this order: reasoning and compaction items go first in the
    # output, then the Conversation gets the finished output
    "flowrun.emulator.reasoning",
    "flowrun.emulator.compaction",
    "flowrun.emulator.conversations",
    "flowrun.emulator.request_options",
]


def load_extensions() -> None:
    for module in EXTENSIONS:
        importlib.import_module(module)
