"""Contract details per conId: routing exchange, tick ladder (market rules) and the contract's own hours.

One reqContractDetails per conId, then one reqMarketRule per market rule id (rules are shared by many
contracts and never change within a day). Cached per contract and refreshed once a day, or sooner when
the cached hours no longer cover the present (IB lists about a week). Looked up by the position polls,
so the kill path reads a cache and never waits on a contract details round trip.

Facts (TWS API reference, ContractDetails): `marketRuleIds` is a comma list aligned with
`validExchanges`; `reqMarketRule(id)` answers message 93 with (lowEdge, increment) pairs, the increment
applying from its low edge up; `tradingHours` / `liquidHours` are in `timeZoneId`.
"""
# ib_async ships py.typed but leaves many methods unannotated
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from fractions import Fraction
from functools import partial
from typing import Any

from ib_async import IB, Contract

from watchdog.errors import GatewayError
from watchdog.gateway import convert
from watchdog.market_hours import parse_hours
from watchdog.model import ContractDetails

log = logging.getLogger("watchdog.gateway.contract_details")
REFRESH = 24 * 3600.0  # seconds: hours change daily (holidays, early closes), ladders hardly ever
RETRY_STALE_HOURS = 3600.0  # seconds between look-ups while the hours IB sent do not reach the present
Timed = Callable[[str, Callable[[], Awaitable[Any]]], Awaitable[Any]]


Ladder = tuple[tuple[float, float], ...]


def ladder_for(route: str, valid_exchanges: str, rule_ids: str, rules: dict[int, Ladder]) -> Ladder:
    """The ladder of the routed exchange when it has its own rule, else one whose every price is on
    all of the contract's ladders: at each level the least common multiple of their increments
    (0.05 and 0.10 → 0.10; 0.03 and 0.05 → 0.15: a price on the coarsest alone is not always on
    the others)."""
    exchanges = [e.strip() for e in valid_exchanges.split(",")]
    ids = [int(i) for i in rule_ids.split(",") if i.strip().lstrip("-").isdigit()]
    if route in exchanges and len(ids) == len(exchanges) and ids[exchanges.index(route)] in rules:
        return rules[ids[exchanges.index(route)]]
    known = [rules[i] for i in dict.fromkeys(ids) if i in rules]
    if not known:
        return ()
    if len(known) == 1:
        return known[0]
    edges = sorted({low for ladder in known for low, _ in ladder})
    return tuple((edge, common_increment([increment_at(ladder, edge) for ladder in known])) for edge in edges)


def common_increment(increments: list[float]) -> float:
    """The least common multiple of tick increments (as exact decimals: 0.03 → 3/100)."""
    fractions = [Fraction(repr(i)) for i in increments]
    numerator = math.lcm(*(f.numerator for f in fractions))
    denominator = math.gcd(*(f.denominator for f in fractions))
    return float(Fraction(numerator, denominator))


def increment_at(ladder: Ladder, price: float) -> float:
    increment = ladder[0][1]
    for low, inc in ladder:
        if price >= low - 1e-9:
            increment = inc
    return increment


class ContractDetailsCache:
    """conId → ContractDetails, filled by `refresh` (positions polls) and read by the kill switch."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._details: dict[int, ContractDetails] = {}
        self._rules: dict[int, Ladder] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    def get(self, con_id: int) -> ContractDetails | None:
        return self._details.get(con_id)

    def due(self, con_id: int) -> bool:
        """Never looked up, older than a day, or (at most hourly) hours that ran out before now."""
        d = self._details.get(con_id)
        if d is None:
            return True
        age = self._clock() - d.fetched_at
        if age >= REFRESH:
            return True
        return d.hours_span is not None and d.hours_span[1] <= self._clock() and age >= RETRY_STALE_HOURS

    async def refresh(self, ib: IB, con_id: int, smart: bool, timed: Timed) -> ContractDetails | None:
        """Look one contract up (details, then its market rules); the cached copy on failure.

        `smart`: orders for it are SMART-routed (else they go to the details' own exchange)."""
        lock = self._locks.setdefault(con_id, asyncio.Lock())
        async with lock:
            if not self.due(con_id):
                return self._details[con_id]
            try:
                found = await timed(
                    "contract details", lambda: ib.reqContractDetailsAsync(Contract(conId=con_id))
                )
            except GatewayError as exc:
                log.warning("no contract details for conId %d: %s", con_id, exc)
                return self._details.get(con_id)
            if not found or found[0].contract is None:
                log.warning("no contract details for conId %d: empty answer", con_id)
                return self._details.get(con_id)
            cd = found[0]
            route = "SMART" if smart else (cd.contract.exchange or "")
            for rule_id in {int(i) for i in (cd.marketRuleIds or "").split(",") if i.strip().isdigit()}:
                if rule_id not in self._rules:
                    increments = await timed("market rule", partial(ib.reqMarketRuleAsync, rule_id))
                    if increments:
                        self._rules[rule_id] = tuple(
                            sorted((float(p.lowEdge), float(p.increment)) for p in increments)
                        )
            trading, span = parse_hours(cd.tradingHours or "", cd.timeZoneId or "")
            liquid, liquid_span = parse_hours(cd.liquidHours or "", cd.timeZoneId or "")
            if (cd.tradingHours or cd.liquidHours) and (span is None or liquid_span is None):
                log.warning(
                    "conId %d: trading hours %r / %r in %r unreadable: closes judged by the built-in table",
                    con_id, cd.tradingHours, cd.liquidHours, cd.timeZoneId,
                )  # fmt: skip
            details = ContractDetails(
                con_id=con_id,
                exchange=cd.contract.exchange or "",
                min_tick=convert.num(cd.minTick) or 0.0,
                price_ladder=ladder_for(route, cd.validExchanges or "", cd.marketRuleIds or "", self._rules),
                time_zone=cd.timeZoneId or "",
                trading_hours=trading,
                liquid_hours=liquid,
                hours_span=span if span is not None and liquid_span is not None else None,
                fetched_at=self._clock(),
            )
            self._details[con_id] = details
            return details
