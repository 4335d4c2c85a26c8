"""Python tools for tools-demo.yaml.

flowrun reads each function's signature to build the JSON Schema the model sees: the type
hints give the types, the docstring's first part the tool's description and its ``Args:``
section the parameters' descriptions. Parameters with a default are optional for the
model (it may send null to get the default). The data is made up and deterministic, so
the example runs offline.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from typing import Literal

_PLACES = {  # latitude, longitude
    "paris": (48.857, 2.352),
    "lyon": (45.764, 4.836),
    "marseille": (43.296, 5.370),
    "geneva": (46.204, 6.143),
}


def forecast(city: str, days: int = 1, units: Literal["metric", "imperial"] = "metric") -> dict[str, object]:
    """Weather forecast for a city, one entry per day.

    Args:
        city: The city, for example "Lyon".
        days: How many days ahead (1-5).
        units: Temperature units (the flow fills this in; the model never sees it).
    """
    seed = int(hashlib.sha256(city.lower().encode()).hexdigest()[:6], 16)
    out = []
    for day in range(max(1, min(days, 5))):
        celsius = 14 + (seed >> day) % 12
        temp = celsius if units == "metric" else round(celsius * 9 / 5 + 32)
        sky = ("sunny", "cloudy", "showers")[(seed >> (day + 3)) % 3]
        out.append({"day": day + 1, "sky": sky, "temp": temp})
    return {"city": city, "units": units, "days": out}


async def distance_km(origin: str, destination: str) -> float:
    """Straight-line distance between two cities in kilometres.

    An async function: flowrun awaits it directly (a plain function runs in a thread).

    Args:
        origin: Where the trip starts.
        destination: Where it goes.
    """
    await asyncio.sleep(0)  # stands in for a real network call
    try:
        (la1, lo1), (la2, lo2) = _PLACES[origin.lower()], _PLACES[destination.lower()]
    except KeyError as exc:
        # an exception becomes an error output the model can read and react to
        raise ValueError(f"unknown city {exc.args[0]!r}; known: {', '.join(sorted(_PLACES))}") from None
    p1, p2, dl = math.radians(la1), math.radians(la2), math.radians(lo2 - lo1)
    angle = math.acos(math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(dl))
    return round(6371 * angle, 1)


def packing_list(sky: Literal["sunny", "cloudy", "showers"], nights: int = 0,
                 extras: list[str] | None = None) -> list[str]:
    """What to pack for a trip.

    Args:
        sky: The expected weather.
        nights: Nights away (0 for a day trip).
        extras: Anything else the traveller asked for.
    """
    items = ["water bottle", "phone charger"]
    items += {"sunny": ["sunglasses", "sun cream"], "cloudy": ["light jacket"],
              "showers": ["umbrella", "rain jacket"]}[sky]
    if nights:
        items += ["toothbrush", f"{nights} change(s) of clothes"]
    return items + list(extras or [])
