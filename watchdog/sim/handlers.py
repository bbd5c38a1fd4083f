"""Request handlers: one function per client message id, answering like a gateway at v178."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from watchdog.sim import market_data as md
from watchdog.sim import messages as m
from watchdog.sim.codec import field_at, to_bool, to_float, to_int
from watchdog.sim.exchange import calendar_of, hours_text, market_rule_id
from watchdog.sim.server import ClientConn

if TYPE_CHECKING:
    from watchdog.sim.simulator import Simulator

log = logging.getLogger("watchdog.sim")
Handler = Callable[["Simulator", ClientConn, list[str]], Awaitable[None] | None]


def current_time(sim: Simulator, conn: ClientConn, f: list[str]) -> None:
    conn.send(m.current_time(int(sim.clock() + sim.faults.state.skew)))


def req_ids(sim: Simulator, conn: ClientConn, f: list[str]) -> None:
    conn.send(m.next_valid_id(sim.next_order_id(conn.client_id or 0)))


def account_summary(sim: Simulator, conn: ClientConn, f: list[str]) -> None:
    req_id = to_int(f[2])
    tags = frozenset(t.strip() for t in field_at(f, 4).split(",") if t.strip())
    conn.subs.account_summary[req_id] = tags
    sim.send_account_summary(conn, req_id, tags)


def cancel_account_summary(sim: Simulator, conn: ClientConn, f: list[str]) -> None:
    conn.subs.account_summary.pop(to_int(f[2]), None)


def req_pnl(sim: Simulator, conn: ClientConn, f: list[str]) -> None:
    req_id, account = to_int(f[1]), f[2]
    if account not in sim.book.accounts:
        conn.error(req_id, 321, f"Error validating request.-'bf' : cause - Invalid account code {account!r}")
        return
    conn.subs.pnl[req_id] = account
    sim.send_pnl(conn, req_id, account)


def cancel_pnl(sim: Simulator, conn: ClientConn, f: list[str]) -> None:
    req_id = to_int(f[1])
    conn.subs.pnl.pop(req_id, None)
    conn.subs.pnl_single.pop(req_id, None)


def req_pnl_single(sim: Simulator, conn: ClientConn, f: list[str]) -> None:
    req_id, account, con_id = to_int(f[1]), f[2], to_int(field_at(f, 4))
    if account not in sim.book.accounts:
        conn.error(req_id, 321, f"Error validating request.-'bf' : cause - Invalid account code {account!r}")
        return
    conn.subs.pnl_single[req_id] = (account, con_id)
    sim.send_pnl_single(conn, req_id, account, con_id)


def req_positions(sim: Simulator, conn: ClientConn, f: list[str]) -> None:
    conn.subs.positions = True
    for pos in sim.book.open_positions():
        conn.send(m.position(pos))
    conn.send(m.position_end())


def cancel_positions(sim: Simulator, conn: ClientConn, f: list[str]) -> None:
    conn.subs.positions = False


def _send_orders(sim: Simulator, conn: ClientConn, everyone: bool) -> None:
    for order in sim.book.open_orders():
        if sim.faults.is_unlisted(order.client_id, order.order_id, order.status):
            continue  # the fault: gone from the answer, not finished
        if everyone or order.client_id == conn.client_id or sim.sees_all(conn):
            conn.send(m.open_order(order))
            conn.send(m.order_status(order))
    conn.send(m.open_order_end())


def req_open_orders(sim: Simulator, conn: ClientConn, f: list[str]) -> None:
    _send_orders(sim, conn, everyone=False)


def req_all_open_orders(sim: Simulator, conn: ClientConn, f: list[str]) -> None:
    _send_orders(sim, conn, everyone=True)


def req_auto_open_orders(sim: Simulator, conn: ClientConn, f: list[str]) -> None:
    if conn.client_id != 0:
        conn.error(-1, 321, "Error validating request.-'bj' : cause - auto open orders only for client id 0")
        return
    conn.subs.auto_open_orders = to_bool(field_at(f, 2))


def req_completed_orders(sim: Simulator, conn: ClientConn, f: list[str]) -> None:
    conn.send(m.completed_orders_end())


def req_account_updates(sim: Simulator, conn: ClientConn, f: list[str]) -> None:
    subscribe, account = to_bool(f[2]), field_at(f, 3)
    if not subscribe:
        conn.subs.account_updates = None
        return
    if not account:
        account = next(iter(sim.book.accounts))
    if account not in sim.book.accounts:
        conn.error(-1, 321, f"Error validating request.-'bh' : cause - Invalid account code {account!r}")
        return
    conn.subs.account_updates = account
    sim.send_account_updates(conn, account)
    conn.send(m.account_download_end(account))


def req_account_updates_multi(sim: Simulator, conn: ClientConn, f: list[str]) -> None:
    req_id, account, model = to_int(f[2]), field_at(f, 3), field_at(f, 4)
    accounts = list(sim.book.accounts) if account in ("", "All") else [account]
    if any(a not in sim.book.accounts for a in accounts):
        conn.error(req_id, 321, f"Error validating request.-'bi' : cause - Invalid account code {account!r}")
        return
    for a in accounts:
        conn.subs.account_updates_multi[req_id] = a
        for tag, value, cur in sim.account_value_rows(a, ledger=True):
            conn.send(m.account_update_multi(req_id, a, model, tag, value, cur))
    conn.send(m.account_update_multi_end(req_id))


def cancel_account_updates_multi(sim: Simulator, conn: ClientConn, f: list[str]) -> None:
    conn.subs.account_updates_multi.pop(to_int(f[2]), None)


def req_executions(sim: Simulator, conn: ClientConn, f: list[str]) -> None:
    req_id = to_int(f[2])
    f_client, f_acct, f_time = to_int(field_at(f, 3)), field_at(f, 4), field_at(f, 5)
    f_symbol, f_sectype, f_exch, f_side = field_at(f, 6), field_at(f, 7), field_at(f, 8), field_at(f, 9)
    for e in sim.book.executions:
        if not (sim.sees_all(conn) or e.client_id == conn.client_id):
            continue
        if (f_client and e.client_id != f_client) or (f_acct and e.account != f_acct):
            continue
        if (f_symbol and e.inst.symbol != f_symbol) or (f_sectype and e.inst.sec_type != f_sectype):
            continue
        if (f_exch and e.exchange != f_exch) or (f_side and e.side[:1] != f_side[:1].upper()):
            continue
        if f_time and m.exec_time_text(e.time)[:17] < f_time.replace("-", " ")[:17]:
            continue
        conn.send(m.execution(req_id, e))
        conn.send(m.commission_report(e))
    conn.send(m.execution_end(req_id))


def req_contract_details(sim: Simulator, conn: ClientConn, f: list[str]) -> None:
    req_id = to_int(f[2])
    found = sim.universe.match(
        con_id=to_int(field_at(f, 3)),
        symbol=field_at(f, 4),
        sec_type=field_at(f, 5),
        last_trade_date=field_at(f, 6),
        strike=to_float(field_at(f, 7)),
        right=field_at(f, 8),
        currency=field_at(f, 12),
        local_symbol=field_at(f, 13),
    )
    found = [i for i in found if i.con_id not in sim.undefined]
    if not found:
        conn.error(req_id, 200, "No security definition has been found for the request")
        return
    for inst in found:
        hours = None
        if sim.rules.publish_hours:
            cal, now = calendar_of(inst), sim.clock()
            hours = (cal.time_zone, hours_text(cal, "trading", now), hours_text(cal, "liquid", now))
        conn.send(m.contract_details(req_id, inst, hours, market_rule_id(inst)))
    conn.send(m.contract_details_end(req_id))


def place_order(sim: Simulator, conn: ClientConn, f: list[str]) -> None:
    """Fields by index as ib_async and ibapi both send them at v145+ (no version field)."""
    sim.place_from_client(conn, f)


def cancel_order(sim: Simulator, conn: ClientConn, f: list[str]) -> None:
    sim.cancel_from_client(conn, to_int(f[2]))


def global_cancel(sim: Simulator, conn: ClientConn, f: list[str]) -> None:
    if sim.refuse_read_only(conn, -1):
        return
    sim.global_cancel()


HANDLERS: dict[int, Handler] = {
    m.IN_PLACE_ORDER: place_order,
    m.IN_CANCEL_ORDER: cancel_order,
    m.IN_REQ_OPEN_ORDERS: req_open_orders,
    m.IN_REQ_ACCOUNT_UPDATES: req_account_updates,
    m.IN_REQ_EXECUTIONS: req_executions,
    m.IN_REQ_IDS: req_ids,
    m.IN_REQ_CONTRACT_DETAILS: req_contract_details,
    m.IN_REQ_AUTO_OPEN_ORDERS: req_auto_open_orders,
    m.IN_REQ_ALL_OPEN_ORDERS: req_all_open_orders,
    m.IN_REQ_CURRENT_TIME: current_time,
    m.IN_REQ_GLOBAL_CANCEL: global_cancel,
    m.IN_REQ_MARKET_DATA_TYPE: md.req_market_data_type,
    md.IN_REQ_MKT_DATA: md.req_mkt_data,
    md.IN_CANCEL_MKT_DATA: md.cancel_mkt_data,
    md.IN_REQ_MARKET_RULE: md.req_market_rule,
    m.IN_REQ_POSITIONS: req_positions,
    m.IN_REQ_ACCOUNT_SUMMARY: account_summary,
    m.IN_CANCEL_ACCOUNT_SUMMARY: cancel_account_summary,
    m.IN_CANCEL_POSITIONS: cancel_positions,
    m.IN_REQ_ACCOUNT_UPDATES_MULTI: req_account_updates_multi,
    m.IN_CANCEL_ACCOUNT_UPDATES_MULTI: cancel_account_updates_multi,
    m.IN_REQ_PNL: req_pnl,
    m.IN_CANCEL_PNL: cancel_pnl,
    m.IN_REQ_PNL_SINGLE: req_pnl_single,
    m.IN_CANCEL_PNL_SINGLE: cancel_pnl,
    m.IN_REQ_COMPLETED_ORDERS: req_completed_orders,
}
