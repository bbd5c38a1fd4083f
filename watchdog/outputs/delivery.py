"""One apprise target: its queue, its sender, one delivery under a timeout. Never raises to the caller."""

from __future__ import annotations

import asyncio
import logging
import warnings
from dataclasses import dataclass
from typing import Any

import apprise

from watchdog.model import Severity
from watchdog.outputs.messages import Kind, Notification
from watchdog.outputs.targets import TargetSpec

log = logging.getLogger("watchdog.outputs.notifier")

_NOTIFY_TYPE = {Severity.INFO: "info", Severity.WARNING: "warning", Severity.CRITICAL: "failure"}
GOOD_NEWS = frozenset({Kind.RECOVERED, Kind.RECONNECT})


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivery attempt to one target: apprise's outcome for that one URL (`why` says why not)."""

    target: TargetSpec  # its URL never in repr(); show `target.label`
    title: str
    ok: bool
    why: str = ""
    at: float = 0.0  # the notifier's clock when apprise answered (or gave up)


@dataclass(slots=True)
class Target:
    spec: TargetSpec
    apobj: Any  # apprise.Apprise holding this one URL, tagged with its severities
    queue: asyncio.Queue[Notification | None]
    task: asyncio.Task[None] | None = None
    dropped: int = 0


def build_targets(specs: list[TargetSpec], queue_size: int) -> tuple[list[Target], list[str]]:
    """An apprise object per URL; URLs apprise refuses come back as problems (never with the URL)."""
    asset = apprise.AppriseAsset(storage_mode="memory")
    targets: list[Target] = []
    problems: list[str] = []
    with warnings.catch_warnings():
        # apprise loads its plugins on first use; the email/PGP one imports `imghdr`, deprecated
        # since Python 3.11. Harmless, and not ours to fix.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"apprise(\.|$)")
        for spec in specs:
            apobj = apprise.Apprise(asset=asset)
            if not apobj.add(spec.url, tag=sorted(s.value for s in spec.severities)):
                problems.append(f"{spec.label}: not a valid apprise URL (unknown service or bad syntax)")
                continue
            targets.append(Target(spec=spec, apobj=apobj, queue=asyncio.Queue(queue_size)))
    return targets, problems


async def deliver(t: Target, n: Notification, timeout: float) -> tuple[bool, str]:
    """Send one notification to one target: (delivered, why not)."""
    try:
        result = await asyncio.wait_for(
            t.apobj.async_notify(
                body=n.body,
                title=n.title,
                notify_type="success" if n.kind in GOOD_NEWS else _NOTIFY_TYPE[n.severity],
                body_format="text",
                # apprise ORs a list of tags: a recovery also routed by `routes` reaches those targets
                tag=sorted({n.severity.value, *(s.value for s in n.routes)}),
            ),
            timeout,
        )
    except TimeoutError:
        return False, f"no answer within {timeout:g}s"
    except Exception as exc:  # any target bug stays here: count it, keep sending
        log.debug("notification delivery raised", exc_info=True)
        return False, type(exc).__name__
    if result:
        return True, ""
    return False, f"apprise reported {getattr(getattr(result, 'status', None), 'name', 'a failure')}"
