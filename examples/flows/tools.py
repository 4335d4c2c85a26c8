"""Python tools for market-brief.yaml.

flowrun builds each tool's JSON Schema from the type hints and takes the description from
the docstring, so keep both accurate: they are what the model reads. The data here is
made up and deterministic, so the example runs offline.
"""

from __future__ import annotations

import hashlib

_TICKERS = {"contoso": "CTSO", "fabrikam": "FABK", "northwind traders": "NWND"}


def lookup_ticker(company: str) -> str:
    """Return the stock ticker symbol of a listed company, or "unknown".

    Args:
        company: The company's name, for example "Contoso".
    """
    return _TICKERS.get(company.strip().lower(), "unknown")


def price_history(ticker: str, days: int = 30, currency: str = "USD") -> list[dict[str, object]]:
    """Return daily closing prices for a ticker, oldest first.

    Args:
        ticker: The ticker symbol, for example "CTSO".
        days: How many trading days to return (1-90).
        currency: Currency of the prices (filled in by the flow, not the model).
    """
    days = max(1, min(days, 90))
    seed = int(hashlib.sha256(ticker.encode()).hexdigest()[:8], 16)
    base = 50 + seed % 150
    return [
        {"day": i + 1, "close": round(base * (1 + ((seed >> (i % 24)) % 7 - 3) / 100), 2),
         "currency": currency}
        for i in range(days)
    ]
