"""Token prices, and what a run's usage cost at them.

Prices are USD per 1M tokens, per model: ``{model: {input: X, output: Y, cached: Z}}``
(``cached``: cached input tokens; default the input price). They come from
``--prices FILE`` (YAML or JSON, the mapping itself or under a ``prices:`` key) or from
the ``prices:`` block of the config file (:func:`flowrun.providers.config_path`). A model
is matched by its name, else by the longest priced name it starts with
(``gpt-4.1-2025-04-14`` takes the price of ``gpt-4.1``). Without prices no cost is shown.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from ..errors import UsageError

FIELDS = ("input", "output", "cached")


def _check(data: Any, where: str) -> dict[str, dict[str, float]]:
    if isinstance(data, dict) and isinstance(data.get("prices"), dict):
        data = data["prices"]
    if not isinstance(data, dict):
        raise UsageError(f"{where}: prices must be a mapping of model name to "
                         "{input, output, cached} (USD per 1M tokens)")
    out: dict[str, dict[str, float]] = {}
    for model, entry in data.items():
        if not isinstance(entry, dict) or not entry:
            raise UsageError(f"{where}: prices.{model} must be a mapping with input, output "
                             "and (optional) cached, in USD per 1M tokens")
        unknown = sorted(set(entry) - set(FIELDS))
        if unknown:
            raise UsageError(f"{where}: prices.{model}: unknown key {unknown[0]!r}",
                             hint="use input, output and cached (USD per 1M tokens)")
        prices: dict[str, float] = {}
        for name, value in entry.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise UsageError(f"{where}: prices.{model}.{name} must be a number >= 0 "
                                 f"(USD per 1M tokens), not {value!r}")
            prices[name] = float(value)
        out[str(model)] = prices
    return out


def load_prices(path: str | None, environ: Mapping[str, str] | None = None) -> dict[str, dict[str, float]]:
    """``--prices FILE``, else the config file's ``prices:``, else none."""
    import yaml

    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--prices {path}: {exc.strerror or exc}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
            raise UsageError(f"{where}: not YAML or JSON: {getattr(exc, 'problem', exc)}") from None
        return _check(data, path)
    from ..providers import config_path

    cfg = config_path(os.environ if environ is None else environ)
    if cfg is None or not cfg.is_file():
        return {}
    try:
        data = yaml.safe_load(cfg.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return {}  # a broken config file is reported where the provider is resolved
    if not isinstance(data, dict) or data.get("prices") is None:
        return {}
    return _check(data["prices"], str(cfg))


def price_of(prices: Mapping[str, Mapping[str, float]], model: str | None) -> Mapping[str, float] | None:
    if not prices or not model:
        return None
    if model in prices:
        return prices[model]
    matches = [m for m in prices if model.startswith(m)]
    return prices[max(matches, key=len)] if matches else None


def cost(prices: Mapping[str, Mapping[str, float]], model: str | None,
         usage: Mapping[str, Any] | None) -> float | None:
    """USD for ``usage`` on ``model``; None when the model has no price or there is no usage."""
    price = price_of(prices, model)
    if price is None or not usage:
        return None
    inp = int(usage.get("input_tokens") or 0)
    out = int(usage.get("output_tokens") or 0)
    cached = int((usage.get("input_tokens_details") or {}).get("cached_tokens") or 0)
    cached = min(cached, inp)
    p_in = price.get("input", 0.0)
    p_cached = price.get("cached", p_in)
    return ((inp - cached) * p_in + cached * p_cached + out * price.get("output", 0.0)) / 1e6
