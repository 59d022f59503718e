"""Budget metering by fuel.

Fuel is deterministic (the same tick consumes the same fuel on every machine),
so the cost of every tick is reproducible and replay verifies the budget along
with the state. Prices are micro-cents per million fuel ("µ¢/Mfuel").
"""

from __future__ import annotations

FUEL_UNIT = 1_000_000


def tick_cost(fuel: int, price: int, budget: int) -> int:
    """Micro-cents to charge for `fuel`, rounded up, never more than `budget`.

    Rounding up means no tick is free, however small; clamping to the budget
    means a budget never goes negative (igor's last tick could overdraw it).
    """
    if fuel < 0 or price < 0 or budget < 0:
        raise ValueError(f"fuel, price and budget must be >= 0: {fuel}, {price}, {budget}")
    cost = -(-fuel * price // FUEL_UNIT)
    return min(cost, budget)


def format_microcents(value: int) -> str:
    """1234567 -> '1.234567' (igor's display of micro-cents)."""
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 1_000_000)
    return f"{sign}{whole}.{frac:06d}"
