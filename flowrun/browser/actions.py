"""Computer-use actions as data: key names, coordinate clamping, short descriptions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..secrets import truncate

if TYPE_CHECKING:
    from ..secrets import Redactor

KEY_MAPPING = {
    "/": "Slash", "\\": "Backslash", "alt": "Alt", "arrowdown": "ArrowDown",
    "arrowleft": "ArrowLeft", "arrowright": "ArrowRight", "arrowup": "ArrowUp",
    "backspace": "Backspace", "ctrl": "Control", "delete": "Delete",
    "enter": "Enter", "esc": "Escape", "shift": "Shift", "space": " ",
    "tab": "Tab", "win": "Meta", "cmd": "Meta", "super": "Meta", "option": "Alt",
    # beyond the guide
    "control": "Control", "meta": "Meta", "command": "Meta", "return": "Enter",
    "escape": "Escape", "del": "Delete", "up": "ArrowUp", "down": "ArrowDown",
    "left": "ArrowLeft", "right": "ArrowRight", "pageup": "PageUp", "pagedown": "PageDown",
    "home": "Home", "end": "End", "insert": "Insert", "capslock": "CapsLock",
    **{f"f{n}": f"F{n}" for n in range(1, 13)},
}
MODIFIER_KEYS = {"Control", "Shift", "Alt", "Meta"}


def clamp(x: Any, y: Any, width: int, height: int) -> tuple[int, int]:
    """Coordinates inside a ``width`` x ``height`` display (pixels 0..width-1)."""

    def one(v: Any, size: int) -> int:
        try:
            n = int(round(float(v)))
        except (TypeError, ValueError):
            n = 0
        return max(0, min(n, size - 1))

    return one(x, width), one(y, height)


def map_key(key: str) -> str:
    """A model key name as Playwright names it (``CTRL`` -> ``Control``)."""
    return KEY_MAPPING.get(key.lower(), key)


def key_combo(keys: list[str]) -> list[str]:
    """The Playwright keys of a keypress, in order. ``"ctrl+a"`` inside one entry is split,
    and a letter pressed with a modifier is lower case (CTRL+A selects all; it is not
    CTRL+SHIFT+A)."""
    out: list[str] = []
    for key in keys:
        key = str(key)
        parts = key.split("+") if len(key) > 1 and "+" in key.strip("+") else [key]
        out.extend(map_key(p.strip() or p) for p in parts if p)
    if len(out) > 1 and any(k in MODIFIER_KEYS for k in out):
        out = [k.lower() if len(k) == 1 else k for k in out]
    return out


TYPED_SHOWN = 40  # characters of typed text a description shows


def describe(action: dict[str, Any], redactor: "Redactor | None" = None) -> str:
    """A short human description of a computer-use action. Typed text is masked with
    ``redactor`` before it is cut short, so no piece of a secret survives the cut."""
    kind = action.get("type", "?")
    if kind in ("click", "double_click", "move"):
        button = action.get("button")
        extra = f" {button}" if kind == "click" and button not in (None, "left") else ""
        return f"{kind}{extra} ({action.get('x')}, {action.get('y')})"
    if kind == "scroll":
        return (f"scroll ({action.get('scroll_x', 0)}, {action.get('scroll_y', 0)}) at "
                f"({action.get('x')}, {action.get('y')})")
    if kind == "drag":
        path = action.get("path") or []
        ends = [f"({p.get('x')}, {p.get('y')})" for p in (path[:1] + path[-1:]) if isinstance(p, dict)]
        return "drag " + " -> ".join(ends)
    if kind == "keypress":
        return "keypress " + "+".join(str(k) for k in action.get("keys") or [])
    if kind == "type":
        text = str(action.get("text", ""))
        masked = redactor.text(text) if redactor else text
        return f"type {truncate(text, TYPED_SHOWN, redactor=redactor)!r}" + (
            "..." if len(masked) > TYPED_SHOWN else "")
    if kind == "wait":
        return f"wait {action.get('ms', 1000)} ms"
    return str(kind)
