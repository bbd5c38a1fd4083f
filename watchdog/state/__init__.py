"""Persisted state: the latch, the pending kill, the day highs and the audit log.

Every write is atomic and fsynced; every damaged file fails safe (TRIPPED, a pending close_all),
never ARMED. It may import only the ground floor (`watchdog.model`, `watchdog.errors`).
"""

from __future__ import annotations

from watchdog.state.audit import AuditLog, read_audit
from watchdog.state.store import Latch, PendingKill, StateStore

__all__ = ["AuditLog", "Latch", "PendingKill", "StateStore", "read_audit"]
