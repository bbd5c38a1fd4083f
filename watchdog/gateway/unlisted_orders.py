"""Orders that vanish from the open-orders answer without a terminal status stay "possibly filling".

reqAllOpenOrders lists the working orders; an order missing from one answer is not thereby finished.
Public reports show an order in PendingCancel dropping out of the list and filling seconds later. So
an order last seen non-terminal (`model.is_terminal`) is kept, marked `unlisted`, until one of:

- the gateway sends a terminal status for it (orderStatus or openOrder: Filled, Cancelled,
  ApiCancelled; recorded as the messages arrive, never ib_async's locally synthesised statuses);
- executions account for its whole quantity (execDetails by permId);
- it is listed again (then the listed state is the truth);
- `KEEP` seconds pass (logged at WARNING: from then on only a position read can show a late fill).

Other clients' terminal statuses and executions reach the watchdog only as the gateway's Master API
client (docs/deployment.md: set it to the watchdog's client id). A non-master watchdog never hears
them: every other client's order the kill cancels then stays "state unknown" until `KEEP`, and the
kill escalates instead of declaring FLAT (the safe side; it cannot tell a cancel from a silent fill).
reqCompletedOrders could confirm them for a non-master client; the simulator does not answer it yet.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import replace

from watchdog.model import OpenOrder, OrderKey, is_terminal, order_key

log = logging.getLogger("watchdog.gateway")

KEEP = 900.0  # seconds an unlisted order stays counted without any word from the gateway
_REMEMBERED = 10_000  # terminal statuses remembered (oldest forgotten first)


def status_key(client_id: int, order_id: int, perm_id: int) -> OrderKey:
    """`model.order_key` from the fields of an orderStatus/openOrder message."""
    return (perm_id, 0, 0) if perm_id else (0, client_id, order_id)


class UnlistedOrders:
    """The working orders of the latest open-orders answer, plus those that vanished unconfirmed."""

    def __init__(self, clock: Callable[[], float], keep: float = KEEP) -> None:
        self._clock = clock
        self._keep = keep
        self._working: dict[OrderKey, OpenOrder] = {}  # the latest answer's working orders
        self._unlisted: dict[OrderKey, tuple[OpenOrder, float]] = {}  # → when it was first missing
        self._heard: OrderedDict[OrderKey, str] = OrderedDict()  # the gateway's latest status

    def heard(self, key: OrderKey, status: str) -> None:
        """A status the gateway itself sent (orderStatus, openOrder: pushed or in an answer)."""
        self._heard[key] = status
        self._heard.move_to_end(key)
        while len(self._heard) > _REMEMBERED:
            self._heard.popitem(last=False)

    def last_heard(self, key: OrderKey) -> str | None:
        return self._heard.get(key)

    def merge(
        self,
        working: Iterable[OpenOrder],
        listed: set[OrderKey],
        executed: Callable[[OpenOrder], float],
        pushed: Iterable[OpenOrder] = (),
    ) -> list[OpenOrder]:
        """The answer's `working` orders plus every order still unconfirmed; `listed` = every key the
        answer named (terminal ones included); `executed(order)` = shares executed for it so far;
        `pushed` = orders whose latest status the gateway pushed (master client) is not terminal: an
        order first heard of between two answers (a global cancel puts it in PendingCancel) counts."""
        now = self._clock()
        current = {order_key(o): o for o in working}
        for key, o in [*self._working.items(), *((order_key(o), o) for o in pushed)]:
            if key not in listed and key not in self._unlisted:
                self._unlisted[key] = (o, now)
        for key in list(self._unlisted):
            o, since = self._unlisted[key]
            if key in listed or key in current:
                del self._unlisted[key]
            elif is_terminal(self._heard.get(key, "")):
                log.info("order %s (gone from the open orders) confirmed %s", o.order_id, self._heard[key])
                del self._unlisted[key]
            elif executed(o) >= o.total_quantity - 1e-9 > 0:
                log.info("order %s (gone from the open orders) confirmed filled by executions", o.order_id)
                del self._unlisted[key]
            elif now - since > self._keep:
                log.warning(
                    "order %s vanished from the open orders %.0fs ago without a terminal status; no "
                    "longer counted as possibly filling (a late fill shows in the positions)",
                    o.order_id,
                    now - since,
                )
                del self._unlisted[key]
        self._working = current
        return [*current.values(), *(replace(o, unlisted=True) for o, _ in self._unlisted.values())]
