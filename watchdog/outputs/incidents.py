"""What to say about breaches and outages: once, reminded, recovered on the same route; one page per outage.

Pure bookkeeping (no I/O, no asyncio): each method returns the notifications to send, and the
notifier queues them.

An outage is the socket lost or half-open, or the gateway losing IB's servers with the socket up
(1100/2110 until 1101/1102). A reconnect ends a lost socket, not a lost link to IB's servers: that
ends with 1101/1102, or, on a new connection that never said, with the first account data read.
While the outage lasts, an "unknown" rule alert (no data is expected) is held back, and so is an
alert about the outage itself (a rule whose every metric an outage moves by itself, the built-in
gateway-down alert, a repeated 1100, a refused client id) once a message of at least its severity
went out about this outage; no alert about the outage is reminded on its own. The outage ends with
one recovery that lists what was held back and goes to every route that heard of the outage. For
`settle` seconds after it ends, data is still coming back: new "unknown" and outage alerts are held;
whatever held alert still holds then is announced as a problem of its own (once: a new outage does
not push it out again), so nothing is swallowed for good. Rules inside a quiet window are neither
reminded nor announced from hold.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

from watchdog.config.schema import PollingConfig
from watchdog.model import Breach, BreachKind, Severity
from watchdog.outputs.messages import (
    DEFAULT_CONTEXT,
    MessageContext,
    Notification,
    fmt_time,
    format_breach,
    format_recovered,
    max_severity,
)
from watchdog.outputs.outage_messages import (
    format_client_id_in_use,
    format_degraded,
    format_gateway_down,
    format_reconnect,
    format_restored,
)

SETTLE = 10.0  # seconds after an outage during which missing data is expected to come back (default)
HELD_LINES = 200  # lines kept of what an outage held back (the rest counted): a long outage is bounded
_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


def outage_settle(polling: PollingConfig) -> float:
    """Seconds after an outage by which every poll has had one whole round, each under its timeout:
    data still missing then is a problem of its own (at the default polling, 5 s + 5 s = 10 s)."""
    longest = max(polling.pnl, polling.account_summary, polling.positions, polling.orders)
    return longest + polling.timeout


@dataclass(slots=True)
class Ongoing:
    kind: BreachKind
    since: float
    last_sent: float
    breach: Breach
    masked: Ongoing | None = None  # a breach hidden by an UNKNOWN spell; it resumes when data is back
    folded: bool = False  # held back as part of a gateway outage: no reminder, no recovery of its own
    held_until: float | None = None  # once the outage is over: announced then if it still holds
    in_outage: bool = False  # said or held as part of an outage: the outage's recovery is its recovery


@dataclass(slots=True)
class Outage:
    since: float
    sent: set[Severity] = field(default_factory=set)  # severities of the messages about it that went out
    folded: list[str] = field(default_factory=list)
    more_folded: int = 0  # past HELD_LINES
    degraded: int | None = None  # 1100/2110: IB's servers were lost (not yet 1101/1102)
    repeats: int = 0  # further 1100/2110 during it: counted, not listed
    link_unknown: bool = False  # reconnected while IB's servers were lost: the new session never said

    def covers(self, severity: Severity) -> bool:
        """A message at least this severe about this outage already went out."""
        return any(_RANK[s] >= _RANK[severity] for s in self.sent)

    def note(self, line: str) -> None:
        if len(self.folded) < HELD_LINES:
            self.folded.append(line)
        else:
            self.more_folded += 1

    def held(self) -> list[str]:
        lines = list(self.folded)
        if self.repeats:
            lines.append(f"  - the gateway repeated the lost-connectivity error {self.repeats} more time(s)")
        if self.more_folded:
            lines.append(f"  - and {self.more_folded} more (see the log)")
        return lines


class Incidents:
    def __init__(
        self, reminder_interval: float, ctx: MessageContext = DEFAULT_CONTEXT, settle: float = SETTLE
    ) -> None:
        self.reminder_interval = reminder_interval
        self.ctx = ctx
        self.settle = settle
        self.ongoing: dict[tuple[str, str], Ongoing] = {}
        self.outage: Outage | None = None
        self.settle_until = 0.0
        self.suppressed = 0
        self.quiet: Collection[str] | None = ()  # rules inside a quiet window; None = every rule

    def _is_quiet(self, rule: str) -> bool:
        return self.quiet is None or rule in self.quiet

    def breach(self, b: Breach, now: float) -> Notification | None:
        """Announce a breach/warning/unknown once, remind while it lasts, announce its recovery."""
        key = (b.rule, b.account or "all")
        prev = self.ongoing.get(key)
        o = self.outage
        if b.kind is BreachKind.RECOVERED:
            if prev is None:
                return None  # nothing was announced, so there is nothing to call off
            del self.ongoing[key]
            if prev.masked is not None:
                # Data is back but the breach it interrupted is still on: keep reminding of it.
                self.ongoing[key] = prev.masked
            if prev.folded or (o is not None and prev.in_outage):
                return None  # the outage's recovery message covers it
            return format_recovered(b, since=prev.since, now=now, severity=prev.breach.severity, ctx=self.ctx)
        if self._fold(b, prev, now):
            return None
        if prev is not None and prev.kind is b.kind:
            prev.breach = b
            covered = o is not None and (prev.in_outage or b.about_outage)  # the outage speaks for it
            if prev.folded or covered or now - prev.last_sent < self.reminder_interval:
                self.suppressed += 1
                return None
            prev.last_sent = now
            return format_breach(b, now=now, reminder=True, ctx=self.ctx)
        masked = prev if prev is not None and b.kind is BreachKind.UNKNOWN else None
        if masked is not None and masked.masked is not None:
            masked = masked.masked
        in_outage = o is not None and b.about_outage and b.kind is not BreachKind.UNKNOWN
        self.ongoing[key] = Ongoing(
            kind=b.kind, since=b.since, last_sent=now, breach=b, masked=masked, in_outage=in_outage
        )
        n = format_breach(b, now=now, ctx=self.ctx)
        if o is not None and in_outage:
            o.sent.add(b.severity)  # a message about this outage: no weaker one after it
            n = dataclasses.replace(n, limited=False)  # and it never waits behind a burst summary
        return n

    def _fold(self, b: Breach, prev: Ongoing | None, now: float) -> bool:
        """Hold back an UNKNOWN, or an alert about the outage already said at least as loudly; after
        the outage, for `settle` seconds, hold both kinds (announced then if they still hold)."""
        if prev is not None and prev.kind is b.kind:
            return False
        about = b.about_outage and b.kind is not BreachKind.UNKNOWN
        o = self.outage
        if o is not None:
            fold = b.kind is BreachKind.UNKNOWN or (about and o.covers(b.severity))
        else:
            fold = not self._settled(self.settle_until, now) and (b.kind is BreachKind.UNKNOWN or about)
        if not fold:
            return False
        masked = prev if prev is not None and b.kind is BreachKind.UNKNOWN else None
        held_until = None if o is not None else self.settle_until
        self.ongoing[(b.rule, b.account or "all")] = Ongoing(
            b.kind, b.since, now, b, masked, folded=True, held_until=held_until, in_outage=True
        )
        if o is not None:
            o.note(f"  - {b.rule} on {b.account or 'all accounts'}: {b.kind.value}")
        self.suppressed += 1
        return True

    def _settled(self, until: float, now: float) -> bool:
        """The settle window ending at `until` is over; a wall clock stepped back (NTP) would stretch
        it by the size of the step: a window longer than `settle` from now is over too."""
        return now >= until or until - now > self.settle

    def reminders(self, now: float) -> list[Notification]:
        """Reminders that are due, and held alerts that still hold once the outage has settled."""
        due = []
        for o in self.ongoing.values():
            if self._is_quiet(o.breach.rule):
                continue  # a quiet window pauses the rule: what was announced stays announced, unrepeated
            if o.folded:
                if self.outage is None and o.held_until is not None and self._settled(o.held_until, now):
                    # still on with the gateway back for `settle` seconds: a problem of its own now
                    o.folded, o.held_until, o.in_outage, o.last_sent = False, None, False, now
                    due.append(format_breach(o.breach, now=now, held=True, ctx=self.ctx))
                continue
            if self.outage is not None and (o.in_outage or o.breach.about_outage):
                continue  # the outage's own alerts: its recovery ends them, no reminder one by one
            if now - o.last_sent >= self.reminder_interval:
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

    def degraded(self, code: int, message: str, now: float) -> Notification | None:
        """1100/2110 with the socket up: starts an outage (or joins the one going on), said once."""
        if self.outage is None:
            self.outage = Outage(since=now)
        o = self.outage
        o.link_unknown = False  # this session says it: only 1101/1102 end it now
        if o.degraded is not None:
            o.repeats += 1
            self.suppressed += 1
            return None
        o.degraded = code
        held = f"  - gateway {code} at {fmt_time(now)}: {message}"
        return self._say(Severity.WARNING, held, lambda: format_degraded(code, message, now), now)

    def client_id_in_use(self, client_id: int | None, message: str, now: float) -> Notification | None:
        """326 on a (re)connect: the watchdog cannot get in. Part of the outage, said once."""
        held = f"  - client id refused (326) at {fmt_time(now)}"
        return self._say(
            Severity.CRITICAL, held, lambda: format_client_id_in_use(client_id, message, now), now
        )

    def gateway_down(
        self, endpoint: str, down_since: float, now: float, last_error: str
    ) -> Notification | None:
        """The built-in page after `gateway_down_after`; held back when a page already went out."""
        held = f"  - built-in gateway-down alert (down since {fmt_time(down_since)})"
        return self._say(
            Severity.CRITICAL,
            held,
            lambda: format_gateway_down(endpoint, down_since, now, last_error),
            down_since,
        )

    def _say(
        self, severity: Severity, held: str, message: Callable[[], Notification], since: float
    ) -> Notification | None:
        """One message about the outage (begun at `since` if none is going on): held back and listed
        in its recovery when a message at least this severe about it already went out."""
        if self.outage is None:
            self.outage = Outage(since=since)
        o = self.outage
        if o.covers(severity):
            o.note(held)
            self.suppressed += 1
            return None
        o.sent.add(severity)
        return message()

    def reconnect(self, endpoint: str, downtime: float | None, now: float) -> Notification | None:
        """The socket is back. Ends the outage, unless IB's servers were lost and no 1101/1102 came
        (None then: `restored` or `data_flowing` ends it). Its recovery goes to every route that heard
        of it, listing what was held back."""
        o = self.outage
        if o is not None and o.degraded is not None:
            o.link_unknown = True  # the new session may never repeat the 1100: account data will tell
            return None
        o = self._end_outage(now)
        if o is None or not o.sent:
            return format_reconnect(endpoint, downtime, now=now, folded=o.held() if o else ())
        if downtime is None:
            downtime = now - o.since
        severity, routes = max_severity(o.sent), frozenset(o.sent)
        return format_reconnect(
            endpoint, downtime, now=now, severity=severity, routes=routes, folded=o.held()
        )

    def restored(self, code: int | None, message: str, now: float) -> Notification | None:
        """1101/1102 (or, `code` None, account data read again) ends an outage that 1100/2110 began
        (None when there is none: nothing to call off)."""
        if self.outage is None or self.outage.degraded is None:
            return None
        return self._restored_message(code, message, now)

    def data_flowing(self, now: float) -> Notification | None:
        """Account data read on a new connection after IB's servers were lost, and the session never
        said 1100: the data proves the link is back (None while there is no such outage)."""
        if self.outage is None or not self.outage.link_unknown:
            return None
        return self._restored_message(None, "", now)

    def _restored_message(self, code: int | None, message: str, now: float) -> Notification:
        o = self._end_outage(now)
        assert o is not None
        severity = max_severity(o.sent) if o.sent else Severity.INFO
        return format_restored(
            code,
            message,
            now - o.since,
            now=now,
            severity=severity,
            routes=frozenset(o.sent),
            folded=o.held(),
        )

    def _end_outage(self, now: float) -> Outage | None:
        """What was held back, and the outage's own alerts, wait `settle` seconds for data to come back."""
        o, self.outage = self.outage, None
        if o is None:
            return None
        self.settle_until = now + self.settle
        for ongoing in self.ongoing.values():
            if ongoing.folded or ongoing.in_outage:
                ongoing.folded = True
                if ongoing.held_until is None:  # never pushed out again by a later outage
                    ongoing.held_until = self.settle_until
        return o
