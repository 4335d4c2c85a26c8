"""Secrets and environment for templates, and the redactor that keeps secrets out of
everything flowrun writes or prints.

``{{ secrets.NAME }}`` reads environment variable NAME; its value is registered with the
run's :class:`Redactor`, which masks it in run records, logs, errors and reports. A secret
must have at least :data:`MIN_SECRET_LENGTH` characters (a shorter one is refused: masking
it would mangle ordinary text). ``{{ env.NAME }}`` of a credential-looking NAME is refused
unless NAME is declared under ``secrets:``.

Text is masked whole before it is shortened (:meth:`Redactor.truncate`, the one helper every
truncation site uses), and streamed text is masked across pieces (:class:`StreamMasker`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Collection, Mapping
from typing import Any, Callable, Iterator, Literal

from .errors import SecretRefused

MASK = "***"
MIN_SECRET_LENGTH = 4
# headers whose values are credentials wherever they come from
SENSITIVE_HEADERS = {"authorization", "api-key", "x-api-key", "cookie", "proxy-authorization"}
_SENSITIVE_KEY = re.compile(r'"(?:%s)"\s*:' % "|".join(map(re.escape, sorted(SENSITIVE_HEADERS))), re.I)


def too_short(value: str | None) -> bool:
    """A non-empty value too short to be masked as a secret."""
    return bool(value) and len(value) < MIN_SECRET_LENGTH  # type: ignore[arg-type]


def refuse_short(name: str) -> SecretRefused:
    return SecretRefused(
        f"secret {name} is shorter than {MIN_SECRET_LENGTH} characters; flowrun masks secrets "
        f"of at least {MIN_SECRET_LENGTH} characters only, so it refuses shorter ones",
        hint=f"give {name} a longer value (a real credential is much longer)")


class Redactor:
    """Replaces every registered secret value with ``***`` in strings and structures."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._prefixes: set[str] | None = None
        self._suffixes: set[str] | None = None

    def add(self, value: str | None, name: str = "a secret") -> None:
        """Mask ``value`` from now on, also as it appears escaped inside JSON strings
        (function arguments and MCP arguments are JSON text inside JSON). A value shorter
        than :data:`MIN_SECRET_LENGTH` is refused with :class:`SecretRefused`."""
        if not value:
            return
        if too_short(value):
            raise refuse_short(name)
        forms = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
        forms.add(json.dumps(json.dumps(value)[1:-1])[1:-1])  # escaped twice
        new = forms - self._values
        if new:
            self._values |= new
            self._pattern = self._prefixes = self._suffixes = None

    def __bool__(self) -> bool:
        return bool(self._values)

    @property
    def longest(self) -> int:
        """Length of the longest masked value (0 when there are none)."""
        return max(map(len, self._values), default=0)

    def _regex(self) -> re.Pattern[str] | None:
        if self._pattern is None and self._values:
            ordered = sorted(self._values, key=len, reverse=True)  # the longest form wins
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))
        return self._pattern

    def text(self, text: str) -> str:
        if not self._values or not isinstance(text, str):
            return text
        return self._regex().sub(MASK, text)  # type: ignore[union-attr]

    def deep(self, value: Any) -> Any:
        """A copy of ``value`` with secrets masked, and credential headers removed."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {
                k: (MASK if isinstance(k, str) and k.lower() in SENSITIVE_HEADERS else self.deep(v))
                for k, v in value.items()
            }
        if isinstance(value, (list, tuple)):
            return [self.deep(v) for v in value]
        return value

    def dumps(self, value: Any, dump: Callable[[Any], str]) -> str:
        """``dump(self.deep(value))`` (``dump``: a JSON encoder), without the copy when
        nothing in ``value`` needs masking: no secret is registered and its JSON text has
        no credential header key. The check errs on the copying side: any escape or
        non-ASCII character in the text takes the copy too."""
        if not self._values:
            text = dump(value)
            if text.isascii() and "\\u" not in text and not _SENSITIVE_KEY.search(text):
                return text
        return dump(self.deep(value))

    # -- partial secrets -------------------------------------------------------------
    def _parts(self) -> tuple[set[str], set[str]]:
        if self._prefixes is None or self._suffixes is None:
            self._prefixes = {v[:i] for v in self._values for i in range(1, len(v))}
            self._suffixes = {v[i:] for v in self._values for i in range(1, len(v))}
        return self._prefixes, self._suffixes

    def open_prefix_at(self, text: str) -> int:
        """Where the longest end of ``text`` that could begin a secret starts (its length
        when no end could): the text from there may yet become a secret."""
        prefixes, _ = self._parts()
        for i in range(max(0, len(text) - self.longest + 1), len(text)):
            if text[i:] in prefixes:
                return i
        return len(text)

    def _open_suffix_end(self, text: str) -> int:
        """Where the longest start of ``text`` that could end a secret ends (0 when none)."""
        _, suffixes = self._parts()
        for i in range(min(len(text), self.longest - 1), 0, -1):
            if text[:i] in suffixes:
                return i
        return 0

    def truncate(self, text: str, limit: int, keep: Literal["head", "tail"] = "head",
                 marker: str = "") -> str:
        """``text`` masked, then cut to its first (``head``) or last (``tail``) ``limit``
        characters, ``marker`` added where it was cut. Masking comes first, so no part of
        a whole secret survives the cut; a cut edge that could be part of a secret (the
        text was cut before it got here) is masked too, and a mask is never split."""
        return truncate(text, limit, keep, marker, self)


def truncate(text: str, limit: int, keep: Literal["head", "tail"] = "head", marker: str = "",
             redactor: Redactor | None = None) -> str:
    """See :meth:`Redactor.truncate`; without a redactor, only the cut and the marker."""
    masked = redactor.text(text) if redactor else text
    if len(masked) <= limit:
        return masked
    if keep == "head":
        kept = masked[:limit]
        start = masked.rfind(MASK, max(0, limit - len(MASK) + 1), limit + len(MASK) - 1)
        if -1 < start < limit < start + len(MASK):
            kept = kept[:start]  # do not leave a torn "**"
        if redactor:
            at = redactor.open_prefix_at(kept)
            if at < len(kept):
                kept = kept[:at] + MASK
        return kept + marker
    cut = len(masked) - limit
    kept = masked[cut:]
    start = masked.find(MASK, max(0, cut - len(MASK) + 1), cut + len(MASK) - 1)
    if -1 < start < cut < start + len(MASK):
        kept = masked[start + len(MASK):]
    if redactor:
        end = redactor._open_suffix_end(kept)
        if end:
            kept = MASK + kept[end:]
    return marker + kept


class StreamMasker:
    """Masks text that arrives in pieces (streamed deltas). A secret may be split across
    pieces, so the end that could still become a secret is held back until more text
    shows it is not one (:meth:`feed`), or the part is done (:meth:`flush`). What is
    held back is never shown when the stream is abandoned (:meth:`reset`, a retry)."""

    def __init__(self, redactor: Redactor):
        self._redactor = redactor
        self._held = ""

    def feed(self, delta: str) -> str:
        """The masked text that is safe to show now."""
        pending = self._held + delta
        redactor = self._redactor
        hold = redactor.open_prefix_at(pending) if redactor else len(pending)
        out: list[str] = []
        pos = 0
        pattern = redactor._regex() if redactor else None
        for m in pattern.finditer(pending) if pattern is not None else ():
            if m.start() >= hold:
                break
            # a match starting before the open end is final: nothing later can change it
            out += [pending[pos:m.start()], MASK]
            pos = m.end()
        if pos < hold:
            out.append(pending[pos:hold])
            pos = hold
        self._held = pending[pos:]
        return "".join(out)

    def flush(self) -> str:
        """The rest, masked: the part is complete."""
        rest, self._held = self._held, ""
        return self._redactor.text(rest)

    def reset(self) -> None:
        """Forget what is held back (the stream is abandoned; its text starts over)."""
        self._held = ""


class SecretsView(Mapping[str, str]):
    """``secrets.NAME`` in templates: the environment variable NAME, registered as secret."""

    def __init__(self, redactor: Redactor, environ: Mapping[str, str] | None = None):
        self._env = environ if environ is not None else os.environ
        self._redactor = redactor

    def __getitem__(self, name: str) -> str:
        if name not in self._env:
            raise KeyError(
                f"secret {name!r} is not set; export the environment variable {name}"
            )
        value = self._env[name]
        self._redactor.add(value, name)  # refuses a value too short to mask
        return value

    def __getattr__(self, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(exc.args[0]) from None

    def __iter__(self) -> Iterator[str]:
        return iter(())  # never enumerate the environment into a template

    def __len__(self) -> int:
        return 0


_CREDENTIAL_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|COOKIE|SESSION", re.I)


def looks_like_credential(name: str) -> bool:
    return bool(_CREDENTIAL_NAME.search(name))


class EnvView(Mapping[str, str]):
    """``env.NAME`` in templates: an environment variable ('' when unset). A variable whose
    name looks like a credential (``*KEY*``, ``*TOKEN*``, ...) may only be read when the
    flow declares it under ``secrets:`` (``declared``); it is then masked like a secret.
    Reading an undeclared one raises :class:`SecretRefused` (the plan check reports a
    literal ``env.NAME`` before the run; this is the backstop)."""

    def __init__(self, environ: Mapping[str, str] | None = None, redactor: Redactor | None = None,
                 declared: Collection[str] = ()):
        self._env = environ if environ is not None else os.environ
        self._redactor = redactor
        self._declared = frozenset(declared)

    def __getitem__(self, name: str) -> str:
        if looks_like_credential(name):
            if name not in self._declared:
                raise SecretRefused(undeclared_credential(name),
                                    hint=f"add {name} to secrets: and read it as secrets.{name}")
            value = self._env.get(name, "")
            if too_short(value):
                raise refuse_short(name)
            if self._redactor is not None:
                self._redactor.add(value, name)
            return value
        return self._env.get(name, "")

    def __getattr__(self, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def undeclared_credential(name: str) -> str:
    """Why ``env.NAME`` of a credential-looking NAME cannot be read."""
    return (f"env.{name} looks like a credential, and templates may read a credential only "
            f"when the flow declares it under secrets: (add {name} to secrets: and use "
            f"secrets.{name}, so it is checked and masked everywhere)")
