"""Prices for the fix-test example flow. It has one bug, for the model to fix."""


def apply_discount(price: float, percent: float) -> float:
    """The price after a discount of ``percent`` per cent."""
    return round(price * percent / 100, 2)


def total(prices: list[float]) -> float:
    """The sum of ``prices``, to the cent."""
    return round(sum(prices), 2)
