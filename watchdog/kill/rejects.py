"""What a refused closing order means, by IB's error code and text, and the TWS setting behind it.

Families (TWS API message codes; user reports):
- read-only API: 321 "... The API interface is currently in Read-Only mode." Every write is refused.
- order precautions: 451 (and other codes) whose text names "Precautionary Settings" — value / size
  limits of Global Configuration → Presets. Retrying the same order cannot help.
- fractional size: 10243 — fractional-sized API orders are refused.
- price variation: 110 — the limit is off the tick ladder (re-priced on the next attempt).
- everything else with an order id: retried (a refused market order is retried as a limit).
"""

from __future__ import annotations

import enum

READ_ONLY_SETTING = (
    "the API is in read-only mode: untick Global Configuration → API → Settings → "
    "'Read-Only API' in TWS / IB Gateway"
)
PRECAUTION_SETTING = (
    "blocked by the order precautions of TWS / IB Gateway (Global Configuration → Presets → "
    "Precautionary Settings: Total Value Limit / Size Limit; or API → Precautions → "
    "'Bypass Order Precautions for API orders'): raise the limit, or lower kill.max_order_value / "
    "kill.max_order_quantity below it"
)
FRACTIONAL_SETTING = "IB refuses fractional-sized API orders: the fraction needs a manual close"
NOT_RETRYABLE = frozenset({200, 203})  # no security definition, not allowed for this account


class RejectKind(enum.Enum):
    READ_ONLY = "read_only"
    PRECAUTION = "precaution"
    FRACTIONAL = "fractional"
    PRICE_VARIATION = "price_variation"
    VALIDATION = "validation"  # 321 for another cause: the same order would fail again
    FATAL = "fatal"  # 200, 203
    OTHER = "other"

    @property
    def retryable(self) -> bool:
        return self in (RejectKind.PRICE_VARIATION, RejectKind.OTHER)


def is_read_only(code: int, text: str) -> bool:
    return code == 321 and "read-only" in text.lower()


def classify(code: int, text: str) -> RejectKind:
    lower = text.lower()
    if is_read_only(code, text):
        return RejectKind.READ_ONLY
    if code == 451 or "precautionary settings" in lower:
        return RejectKind.PRECAUTION
    if code == 10243 or "fractional" in lower:
        return RejectKind.FRACTIONAL
    if code == 110:
        return RejectKind.PRICE_VARIATION
    if code == 321:
        return RejectKind.VALIDATION
    if code in NOT_RETRYABLE:
        return RejectKind.FATAL
    return RejectKind.OTHER


def explain(kind: RejectKind) -> str:
    """The cause in the operator's terms (empty for the kinds a retry handles)."""
    return {
        RejectKind.READ_ONLY: READ_ONLY_SETTING,
        RejectKind.PRECAUTION: PRECAUTION_SETTING,
        RejectKind.FRACTIONAL: FRACTIONAL_SETTING,
    }.get(kind, "")
