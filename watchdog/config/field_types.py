"""Field types shared by every section of rules.yaml: durations and percentages with their units,
and the frozen base model.

In a file a bare number is refused where a unit is needed (`2` what?); from Python a number is
already in base units (seconds, fractions), so a dumped config validates again.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo

__all__ = [
    "MAX_DURATION",
    "Duration",
    "FrozenModel",
    "Host",
    "Percent",
    "bounded_duration",
    "check_host",
    "from_file",
    "parse_duration",
    "parse_percent",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# The longest duration rules.yaml accepts (seconds): a week covers every sane poll, timeout, `for`,
# quiet window and reminder; `for: 999…9s` (5,000 digits) read as "for inf s" and never fired.
MAX_DURATION = 7 * 86400.0


def _shown(raw: Any) -> str:
    text = repr(raw)
    return text if len(text) <= 40 else f"{text[:30]}... ({len(text)} characters)"


def bounded_duration(seconds: float, raw: Any) -> float:
    """`seconds` when finite and at most MAX_DURATION, else ValueError quoting `raw` (shortened)."""
    if not math.isfinite(seconds) or seconds > MAX_DURATION:
        raise ValueError(f"must be a duration of at most 7d (a week), got: {_shown(raw)}")
    return seconds


def parse_duration(v: Any) -> Any:
    """'500ms', '2s', '5m', '1h', '1d' → seconds. Bare numbers are refused: a unit is required.
    ValueError beyond MAX_DURATION (a week), for inf and nan."""
    if isinstance(v, str):
        m = _DURATION.match(v)
        if not m:
            raise ValueError(f"must be a duration like 500ms, 2s, 5m, 1h, got: {_shown(v)}")
        return bounded_duration(float(m.group(1)) * _UNIT[m.group(2)], v)
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValueError(f"must be a duration like 500ms, 2s, 5m, 1h, got: {_shown(v)}")
    # both readings: 1500 is far more often 1500ms than 1500s (which a range check then refuses)
    raise ValueError(f"must be a duration with a unit ({_shown(v)}ms or {_shown(v)}s?), got: {_shown(v)}")


def parse_percent(v: Any) -> Any:
    """'3%' → 0.03. Bare numbers are refused so 3 and 0.03 cannot be confused."""
    if isinstance(v, str) and v.strip().endswith("%"):
        try:
            return float(v.strip()[:-1]) / 100.0
        except ValueError:
            pass
    raise ValueError(f"must be a percentage like 3%, got: {v!r}")


def from_file(info: ValidationInfo) -> bool:
    """Is this value being read from a file (the loader validates with context `from_file`)?"""
    return isinstance(info.context, Mapping) and bool(info.context.get("from_file"))


def _duration_field(v: Any, info: ValidationInfo) -> Any:
    # In a file a bare number is refused (2 what?); from Python, a number is already seconds,
    # so a dumped config validates again.
    if not from_file(info) and isinstance(v, int | float) and not isinstance(v, bool):
        return bounded_duration(float(v), v)
    return parse_duration(v)


def _percent_field(v: Any, info: ValidationInfo) -> Any:
    if not from_file(info) and isinstance(v, int | float) and not isinstance(v, bool):
        return float(v)  # from Python: already a fraction
    return parse_percent(v)


# One label of a host name (RFC 1123; `_` too, as container and service names use it)
_LABEL = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")


def check_host(value: str) -> str:
    """A host name (`localhost`, `ib-gateway`, `gw.example.net`) or an IP literal (`127.0.0.1`, `::1`).

    The value is never quoted in the error: `host: ${VAR}` once accepted a token with spaces and
    `check` printed it whole."""
    with_dots = value[:-1] if value.endswith(".") else value
    try:
        ipaddress.ip_address(value)
    except ValueError:
        pass
    else:
        if "%" not in value:  # a scope id (fe80::1%eth0) may hold anything; a config needs none
            return value
    labels = with_dots.split(".")
    # an all-digit last label is an IPv4 address that failed above (256.1.1.1), never a name
    if 0 < len(with_dots) <= 253 and all(_LABEL.match(x) for x in labels) and not labels[-1].isdigit():
        return value
    raise ValueError("must be a host name (letters, digits, - and _ between dots) or an IP address")


Host = Annotated[str, AfterValidator(check_host)]
Duration = Annotated[float, BeforeValidator(_duration_field), Field(gt=0)]
Percent = Annotated[float, BeforeValidator(_percent_field), Field(ge=0)]


class FrozenModel(BaseModel):
    """Base of every config section: immutable, unknown keys refused, aliases (`for`, `json`) accepted."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
