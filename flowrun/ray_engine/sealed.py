"""Secrets for Ray workers, sealed: Ray's runtime environment agent logs every
``env_vars`` value it sets, so a secret travels as two halves that are useless apart.

:func:`seal` splits each value into a one-time pad (random bytes of its length) and the
value XOR the pad. The sealed halves go to the workers as ``runtime_env`` ``env_vars``
(``FLOWRUN_SEALED_<NAME>``, for the run's job only); the pads go to each worker's
constructor, which is never logged or put in the object store (small arguments travel
inline with the actor's creation). :func:`unseal` puts the values back in the worker
process's environment, where the flow's ``secrets.NAME`` and the provider read them.
"""

from __future__ import annotations

import base64
import os
import secrets as _random
from typing import Mapping, MutableMapping

PREFIX = "FLOWRUN_SEALED_"


def seal(values: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """``(env_vars, pads)``: the sealed halves by env var name, and the pads by secret name."""
    env: dict[str, str] = {}
    pads: dict[str, str] = {}
    for name, value in values.items():
        data = value.encode("utf-8", "surrogatepass")
        pad = _random.token_bytes(len(data))
        env[PREFIX + name] = base64.b64encode(bytes(a ^ b for a, b in zip(data, pad))).decode()
        pads[name] = base64.b64encode(pad).decode()
    return env, pads


def unseal(pads: Mapping[str, str], environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Join the halves; set each value in ``environ`` (default ``os.environ``) under its
    own name, drop the sealed half, and return the values."""
    env = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for name, pad_text in pads.items():
        sealed = env.pop(PREFIX + name, None)
        if sealed is None:
            continue
        data = bytes(a ^ b for a, b in zip(base64.b64decode(sealed), base64.b64decode(pad_text)))
        out[name] = env[name] = data.decode("utf-8", "surrogatepass")
    return out
