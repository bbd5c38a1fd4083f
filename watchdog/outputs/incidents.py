"""What to say about breaches and outages: once, reminded, recovered on the same route; one page per outage.

Pure bookkeeping (no I/O, no asyncio): each method returns the notifications to send, and the
notifier queues them. While the gateway is down, "unknown" rule alerts (no data is expected) and a
second alert about the outage itself are held back and listed in the outage's recovery message,
which carries the page's severity so it reaches every target that got the page.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from watchdog.model import Breach, BreachKind, Severity
from watchdog.outputs.messages import (
    DEFAULT_CONTEXT,
    MessageContext,
    Notification,
    fmt_time,
    format_breach,
    format_gateway_down,
    format_reconnect,
    format_recovered,
)

GATEWAY_METRICS = frozenset({"gateway_down_seconds", "heartbeat_rtt"})  # rules about the outage itself


@dataclass(slots=True)
class Ongoing:
    kind: BreachKind
    since: float
    last_sent: float
    breach: Breach
    masked: Ongoing | None = None  # a breach hidden by an UNKNOWN spell; it resumes when data is back
    folded: bool = False  # held back as part of a gateway outage: no reminder, no recovery of its own


@dataclass(slots=True)
class Outage:
    since: float
    paged: Severity | None = None  # the severity of the page that went out, once one did
    folded: list[str] = field(default_factory=list)


class Incidents:
    def __init__(self, reminder_interval: float, ctx: MessageContext = DEFAULT_CONTEXT) -> None:
        self.reminder_interval = reminder_interval
        self.ctx = ctx
        self.ongoing: dict[tuple[str, str], Ongoing] = {}
        self.outage: Outage | None = None
        self.suppressed = 0

    def breach(self, b: Breach, now: float) -> Notification | None:
        """Announce a breach/warning/unknown once, remind while it lasts, announce its recovery."""
        key = (b.rule, b.account or "all")
        prev = self.ongoing.get(key)
        if b.kind is BreachKind.RECOVERED:
            if prev is None:
                return None  # nothing was announced, so there is nothing to call off
            del self.ongoing[key]
            if prev.masked is not None:
                # Data is back but the breach it interrupted is still on: keep reminding of it.
                self.ongoing[key] = prev.masked
            if prev.folded:
                return None  # the outage's recovery message covers it
            return format_recovered(b, since=prev.since, now=now, severity=prev.breach.severity, ctx=self.ctx)
        if self._fold(b, prev, now):
            return None
        if prev is not None and prev.kind is b.kind:
            prev.breach = b
            if now - prev.last_sent < self.reminder_interval:
                self.suppressed += 1
                return None
            prev.last_sent = now
            return format_breach(b, now=now, reminder=True, ctx=self.ctx)
        masked = prev if prev is not None and b.kind is BreachKind.UNKNOWN else None
        if masked is not None and masked.masked is not None:
            masked = masked.masked
        self.ongoing[key] = Ongoing(kind=b.kind, since=b.since, last_sent=now, breach=b, masked=masked)
        if self.outage is not None and b.metric in GATEWAY_METRICS and b.kind is BreachKind.BREACH:
            self.outage.paged = b.severity  # this rule is the outage's page: no built-in one after it
        return format_breach(b, now=now, ctx=self.ctx)

    def _fold(self, b: Breach, prev: Ongoing | None, now: float) -> bool:
        """During an outage: an UNKNOWN, or a second alert about the outage itself, is held back."""
        o = self.outage
        if o is None or (prev is not None and prev.kind is b.kind):
            return False
        gateway_rule = b.metric in GATEWAY_METRICS and b.kind is not BreachKind.UNKNOWN
        if b.kind is not BreachKind.UNKNOWN and not (gateway_rule and o.paged is not None):
            return False
        masked = prev if prev is not None and b.kind is BreachKind.UNKNOWN else None
        self.ongoing[(b.rule, b.account or "all")] = Ongoing(b.kind, b.since, now, b, masked, folded=True)
        o.folded.append(f"  - {b.rule} on {b.account or 'all accounts'}: {b.kind.value}")
        self.suppressed += 1
        return True

    def reminders(self, now: float) -> list[Notification]:
        due = []
        for o in self.ongoing.values():
            if not o.folded and now - o.last_sent >= self.reminder_interval:
                o.last_sent = now
                due.append(format_breach(o.breach, now=now, reminder=True, ctx=self.ctx))
        return due

    def retain_rules(self, names: Iterable[str]) -> None:
        """Forget ongoing breaches of rules a reload removed, so they are not reminded forever."""
        keep = set(names)
        for key in [k for k in self.ongoing if k[0] not in keep]:
            del self.ongoing[key]

    def gateway_up(self, up: bool, now: float) -> None:
        """The gateway's state as the daemon sees it; losing it starts an outage."""
        if not up and self.outage is None:
            self.outage = Outage(since=now)

    def gateway_down(
        self, endpoint: str, down_since: float, now: float, last_error: str
    ) -> Notification | None:
        if self.outage is None:
            self.outage = Outage(since=down_since)
        if self.outage.paged is not None:
            self.outage.folded.append(f"  - built-in gateway-down alert (down since {fmt_time(down_since)})")
            self.suppressed += 1
            return None
        n = format_gateway_down(endpoint, down_since, now, last_error)
        self.outage.paged = n.severity
        return n

    def reconnect(self, endpoint: str, downtime: float | None, now: float) -> Notification:
        """Ends the outage: its recovery goes out with the page's severity (same pager), listing the rest."""
        o, self.outage = self.outage, None
        for ongoing in self.ongoing.values():
            if ongoing.breach.metric in GATEWAY_METRICS:
                ongoing.folded = True  # this message is their recovery too
        if o is None or o.paged is None:
            return format_reconnect(endpoint, downtime, now=now, folded=o.folded if o else ())
        if downtime is None:
            downtime = now - o.since
        return format_reconnect(endpoint, downtime, now=now, severity=o.paged, folded=o.folded)
