"""Escalation hands over a known book: our own orders cancelled and verified, the rest listed with its state.

When a kill gives up (attempts exhausted), a person takes over. A closing order of ours left working
would fill behind their back (a market order held until the next open fills when they have already
sold by hand: the account ends short). So before escalating, the watchdog cancels each of its own
orders by id, waits (bounded) until the gateway reports them terminal, and then lists by id every
order in scope still alive, ours and others', with its IB status and why it is held.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from watchdog.kill.plan import is_watchdog_order, order_label
from watchdog.kill.run import KillEventKind, Run
from watchdog.model import OpenOrder, Severity, order_key

if TYPE_CHECKING:
    from watchdog.kill.executor import KillExecutor


async def hand_off(x: KillExecutor, run: Run) -> list[OpenOrder]:
    """Cancel our own live orders in scope one by one, verify them terminal, return what is still alive.

    Raises GatewayUnavailable like every broker call; the caller escalates anyway and says so."""
    in_scope = x.in_scope(run.scope)
    prefix = x.config.order_ref
    orders = await x.call("open_orders", x.broker.open_orders)
    ours = [o for o in orders if o.is_working and in_scope(o.account) and x.owns(o)]
    for o in ours:
        await x.cancel_order(run, o, "hand-off: a person takes over; no order of ours stays behind")
    if ours:
        keys = {order_key(o) for o in ours}
        await x.poll_orders(run, lambda found: [o for o in found if o.is_working and order_key(o) in keys])
    alive = [
        o for o in await x.call("open_orders", x.broker.open_orders) if o.is_working and in_scope(o.account)
    ]
    mine = [o for o in alive if x.owns(o)]
    labels = [("ours: " if x.owns(o) else "") + order_label(o) for o in alive]
    msg = (
        f"hand-off: {len(ours)} order(s) of ours cancelled; "
        f"{len(mine)} of ours and {len(alive) - len(mine)} other(s) still alive"
    )
    details = {
        "cancelled": [order_label(o) for o in ours],
        "still_alive": labels,
        "ours_still_alive": [o.order_id for o in mine],
        "watchdog_orders_of_other_instances": [
            order_label(o) for o in alive if is_watchdog_order(o, prefix) and not x.owns(o)
        ],
    }
    severity = Severity.CRITICAL if mine else Severity.WARNING
    x.reporter.step(run, "kill.handoff", KillEventKind.VERIFIED, severity, msg, details)
    return alive
