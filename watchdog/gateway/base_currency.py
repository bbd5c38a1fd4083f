"""Account summary rows in several currencies: only each account's base-currency value counts.

IB reports the summary tags (NetLiquidation, ExcessLiquidity, …) in the account's base currency; a
ledger breakdown adds rows per currency and `BASE` rows (everything converted to the base). The account
values of a multi-currency account name the base in the `BASE` ledger block: `RealCurrency` = `EUR`
with currency `BASE` (reqAccountUpdates / `$LEDGER:ALL`). A EUR row must never stand in for a USD net
liquidation value, whatever order the rows arrive in.
"""

from __future__ import annotations

import logging

log = logging.getLogger("watchdog.gateway.base_currency")
BASE = "BASE"
REAL_CURRENCY = "RealCurrency"


class BaseCurrencyRows:
    """The rows of one summary answer, resolved at its end.

    An account's base currency is, in this order: `gateway.base_currency` when configured; the
    `RealCurrency` value of its `BASE` ledger block when the gateway sent one; the one currency a whole
    answer carried for every row of that account (IB sends these tags in the base currency only, so a
    single currency across an answer is the base). Never the first row that happens to arrive. While
    two currencies compete and neither is `BASE` nor the base, the value is unknown (None).
    """

    def __init__(self, configured: str | None = None) -> None:
        self.configured = configured
        self._rows: dict[tuple[str, str], dict[str, str]] = {}
        self.base: dict[str, str] = {}  # account -> base currency learned from the gateway
        self._warned: set[tuple[str, str]] = set()

    def new_answer(self) -> None:
        self._rows.clear()

    def learn(self, account: str, tag: str, value: str, currency: str) -> None:
        """An account value (any source): a `RealCurrency` row of the `BASE` block names the base."""
        code = value.strip().upper()
        if tag == REAL_CURRENCY and currency == BASE and code and code != BASE:
            self.base[account] = code

    def add(self, account: str, tag: str, value: str, currency: str) -> None:
        """One more row of the current answer."""
        self.learn(account, tag, value, currency)
        self._rows.setdefault((account, tag), {})[currency] = value

    def base_of(self, account: str) -> str | None:
        return self.configured or self.base.get(account)

    def end_answer(self) -> dict[tuple[str, str], tuple[str | None, str]]:
        """(account, tag) -> (value or None = unknown, its currency) for the whole answer."""
        currencies: dict[str, set[str]] = {}
        for (account, _), rows in self._rows.items():
            currencies.setdefault(account, set()).update(c for c in rows if c)
        for account, seen in currencies.items():
            # one currency (and no BASE block, which means a breakdown by currency) across the answer
            if len(seen) == 1 and BASE not in seen and account not in self.base:
                self.base[account] = next(iter(seen))
        out: dict[tuple[str, str], tuple[str | None, str]] = {}
        for (account, tag), rows in self._rows.items():
            base = self.base_of(account)
            if BASE in rows:
                out[account, tag] = rows[BASE], base or ""
            elif set(rows) == {""}:  # ratios (Cushion) come without a currency
                out[account, tag] = rows[""], ""
            elif base is not None and base in rows:
                out[account, tag] = rows[base], base
            else:
                out[account, tag] = None, ""
                if (account, tag) not in self._warned:
                    self._warned.add((account, tag))
                    log.warning(
                        "%s %s came in %s and none is the base currency (%s): unknown",
                        account, tag, ", ".join(sorted(rows)), base or "not known; set gateway.base_currency",
                    )  # fmt: skip
        return out
