"""A command tool for market-brief.yaml: JSON arguments on stdin, JSON result on stdout.

    echo '{"from": "USD", "to": "EUR"}' | python3 fx_rate.py
"""

import json
import sys

# made-up fixed rates, units per 1 USD
_PER_USD = {"USD": 1.0, "EUR": 0.92, "JPY": 151.0, "GBP": 0.79}


def main() -> None:
    args = json.load(sys.stdin)
    src, dst = args["from"].upper(), args["to"].upper()
    if src not in _PER_USD or dst not in _PER_USD:
        json.dump({"error": f"unknown currency pair {src}/{dst}"}, sys.stdout)
        return
    json.dump({"from": src, "to": dst, "rate": round(_PER_USD[dst] / _PER_USD[src], 6)}, sys.stdout)


if __name__ == "__main__":
    main()
