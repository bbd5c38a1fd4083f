"""What people are told about a gateway outage: that it began, that it is long, that it ended.

An outage is the socket lost (or half-open), or the gateway losing IB's servers with the socket up
(error 1100 or 2110 "Connectivity between IB and Trader Workstation has been lost", ended by 1101
"restored - data lost" or 1102 "restored - data maintained"; IB "Message Codes" page). Each ends with
one recovery message that lists what was held back meanwhile (`outputs.incidents` decides that).
"""

from __future__ import annotations

from collections.abc import Sequence

from watchdog.model import Severity
from watchdog.outputs.messages import Kind, Notification, fmt_duration, fmt_time, listing

HELD_HEADING = "Alerts held back during the outage (no data, or the outage itself)"


def _held(folded: Sequence[str]) -> str:
    return "\n" + "\n".join(listing(HELD_HEADING, folded, "")) if folded else ""


def format_reconnect(
    endpoint: str,
    downtime: float | None,
    *,
    now: float | None = None,
    severity: Severity = Severity.INFO,
    routes: frozenset[Severity] = frozenset(),
    folded: Sequence[str] = (),
) -> Notification:
    """`severity` = that of the "gateway down" page it ends, so it reaches the same pager; `routes` =
    the severities of every other message of the outage (each of those routes hears the recovery)."""
    after = f" after {fmt_duration(downtime)}" if downtime is not None else ""
    at = f" at {fmt_time(now)}" if now is not None else ""
    body = f"Connected to the gateway at {endpoint} again{at}{after}; state re-requested, watching resumes."
    return Notification(
        kind=Kind.RECONNECT,
        severity=severity,
        title="Gateway reconnected",
        body=body + _held(folded),
        routes=routes,
    )


def format_restored(
    code: int | None,
    message: str,
    downtime: float,
    *,
    now: float,
    severity: Severity,
    routes: frozenset[Severity] = frozenset(),
    folded: Sequence[str] = (),
) -> Notification:
    """1101/1102 after 1100: the gateway reached IB's servers again. `code` None: a new connection
    (after the socket dropped) never said either way, and account data flows again: that ends it."""
    if code is None:
        how = "account data flows again; the gateway sent no 1101/1102"
        title = "Gateway connectivity restored (account data flowing)"
    else:
        kept = "subscriptions were lost and are re-requested" if code == 1101 else "data was kept"
        how = f"{code}: {message.rstrip('.')}; {kept}"
        title = f"Gateway connectivity restored ({code})"
    body = (
        f"The gateway reached IB's servers again at {fmt_time(now)} after {fmt_duration(downtime)} "
        f"({how}). Watching resumes."
    )
    return Notification(
        kind=Kind.RECONNECT,
        severity=severity,
        title=title,
        body=body + _held(folded),
        routes=routes,
    )


def format_degraded(code: int, message: str, now: float) -> Notification:
    """1100/2110: the socket and heartbeats are fine but no account data flows until 1101/1102."""
    body = (
        f"At {fmt_time(now)} the gateway reported {code}: {message}\n"
        "The socket is up but account data has stopped: the watchdog cannot see losses, and orders "
        "and cancels may not reach IB until its servers are back (often IB's nightly reset); a kill "
        "the gateway does not answer is kept pending.\n"
        "Rules without data meanwhile are not alerted one by one; a recovery message follows here."
    )
    return Notification(
        kind=Kind.GATEWAY_DOWN,
        severity=Severity.WARNING,
        title=f"Gateway lost IB's servers ({code})",
        body=body,
    )


def format_client_id_in_use(client_id: int | None, message: str, now: float) -> Notification:
    """326: the gateway refuses the watchdog's client id, so the watchdog cannot get in at all."""
    which = f"client id {client_id}" if client_id is not None else "its client id"
    body = (
        f"At {fmt_time(now)} the gateway refused the watchdog's {which} (326: {message}).\n"
        "Either another program connects with this id (give the watchdog its own reserved id), or the "
        "gateway still holds this watchdog's own lost session (after a half-open socket it may keep it "
        "until its own timeout). The watchdog keeps retrying; until it gets in it is blind and a "
        "triggered kill is kept pending. A recovery message follows here."
    )
    return Notification(
        kind=Kind.GATEWAY_DOWN,
        severity=Severity.CRITICAL,
        title=f"Client id in use (326){f': {client_id}' if client_id is not None else ''}",
        body=body,
        limited=False,
    )


def format_gateway_down(endpoint: str, down_since: float, now: float, last_error: str = "") -> Notification:
    """The built-in page after `notifications.gateway_down_after` seconds without a working socket."""
    body = (
        f"No answer from the gateway at {endpoint} for {fmt_duration(now - down_since)} "
        f"(since {fmt_time(down_since)})" + (f": {last_error}" if last_error else "") + ".\n"
        "The watchdog is blind and cannot kill until it is back; a triggered kill is kept pending. "
        "Check IB Gateway / TWS, the tunnel, and the daily restart window.\n"
        "Rules without data meanwhile are not paged one by one; a recovery message follows here."
    )
    return Notification(
        kind=Kind.GATEWAY_DOWN, severity=Severity.CRITICAL, title="Gateway down", body=body, limited=False
    )
