"""The executions of the kill's closing orders: each audited once (`close.fill`), kept per kill.

Executions reach `CloseFills.note` from three places: the kill's own reads (`Broker.order_fills` at
each verification read and before the report), the gateway's live execDetails and commission
reports, and the routine executions poll (today's executions, so what arrived while disconnected
or before a restart) — the daemon wires the last two to `KillSwitch.note_execution`. IB documents
no order between execDetails, orderStatus and position updates, so an execution may arrive after
the kill read positions zero and ended: it is still audited under that kill's id, found from the
order's orderRef `"{kill.order_ref}:{kill_id}"` (`closing.py`), else from the order ids placed by
this process.

A record is written without fsync (the next kill step's record syncs it) and announces nothing:
the kill never waits on reporting. An execution is recorded once, and once more when its
commission becomes known; `report` keeps one per exec id and applies corrections.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from watchdog.model import ContractRef, Fill, without_corrected
from watchdog.state.audit import AuditLog

EVENT = "close.fill"


class CloseFills:
    """Closing fills by kill id; `client_id` None = the orders of every client (told by orderRef)."""

    def __init__(self, audit: AuditLog, prefix: Callable[[], str], client_id: int | None) -> None:
        self._audit = audit
        self._prefix = prefix  # kill.order_ref, read at each note (a reload may change it)
        self._client_id = client_id
        # closing order id placed by this process → (kill id, the contract as the close request named it)
        self._orders: dict[int, tuple[str, ContractRef]] = {}
        self._recorded: dict[str, bool] = {}  # exec id → recorded with its commission
        self._by_kill: dict[str, dict[str, Fill]] = {}

    def expect(self, order_id: int, kill_id: str, contract: ContractRef) -> None:
        """A closing order this process placed for `kill_id`: an execution without orderRef is still
        known, and one that names its contract by conId only (ib_async hands back the contract of the
        placed order) gets the symbol of the close request."""
        self._orders[order_id] = (kill_id, contract)

    def kill_of(self, fill: Fill) -> str | None:
        """The kill whose closing order this execution filled, or None when it is not ours."""
        if self._client_id is not None and fill.client_id != self._client_id:
            return None  # another instance's closing order: its own audit records it
        prefix = f"{self._prefix()}:"
        if fill.order_ref.startswith(prefix):
            return fill.order_ref.removeprefix(prefix) or None
        known = self._orders.get(fill.order_id)
        return known[0] if known is not None else None

    def note(self, fill: Fill, kill_id: str | None = None, *, durable: bool = False) -> bool:
        """Audit `fill` if it is a closing fill not recorded yet (or now with its commission); True if
        recorded. A write that failed is tried again the next time the fill is heard (the executions
        poll hears it every few seconds). `durable`: fsync now (a fill heard after its kill ended: no
        later kill step would sync it). Never raises (the audit log reports its own failures)."""
        kill_id = kill_id or self.kill_of(fill)
        if kill_id is None:
            return False
        placed = self._orders.get(fill.order_id)
        if placed is not None and not fill.contract.label and placed[1].con_id == fill.contract.con_id:
            fill = replace(fill, contract=placed[1])
        priced = fill.commission is not None
        known = self._recorded.get(fill.exec_id)
        if known is not None and (known or not priced):
            return False
        self._by_kill.setdefault(kill_id, {})[fill.exec_id] = fill
        if not self._audit.record(EVENT, fill_details(fill), kill_id=kill_id, durable=durable):
            return False
        self._recorded[fill.exec_id] = priced
        return True

    def of_kill(self, kill_id: str) -> tuple[Fill, ...]:
        """The kill's closing fills heard so far, corrections applied, in execution time order."""
        fills = without_corrected(self._by_kill.get(kill_id, {}).values())
        return tuple(sorted(fills, key=lambda f: (f.time, f.exec_id)))


def fill_details(f: Fill) -> dict[str, Any]:
    """A `close.fill` audit record: time in epoch seconds, commission in the contract's currency
    (None until IB's commission report arrived)."""
    return {
        "order_id": f.order_id,
        "perm_id": f.perm_id,
        "exec_id": f.exec_id,
        "side": f.side,
        "shares": f.shares,
        "price": f.price,
        "time": f.time,
        "account": f.account,
        "contract": f.contract.label or f"conId {f.contract.con_id}",
        "con_id": f.contract.con_id,
        "currency": f.contract.currency,
        "commission": f.commission,
    }
