"""Rules: pure evaluation of a `Snapshot` against the configured rules, giving a list of breaches.

No I/O and no asyncio: readings (named metrics from a snapshot), conditions with `for:` and
`consecutive:` memory, cron schedules and quiet windows. It may import `watchdog.config` and
the ground floor, never `watchdog.gateway` or `watchdog.kill`.
"""

from __future__ import annotations

from watchdog.rules.evaluate import AllRules, RuleMemory, RuleStatus

__all__ = ["AllRules", "RuleMemory", "RuleStatus"]
