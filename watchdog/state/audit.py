"""Append-only JSON-lines audit log: one fsynced record per kill step, never blocking the kill."""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("watchdog.state.audit")

TAIL_CHECK_BYTES = 64 * 1024  # how much of an existing file is checked for damage at start


@dataclass(frozen=True, slots=True)
class AuditRecord:
    ts: float
    event: str
    kill_id: str | None
    details: Mapping[str, Any]


def to_jsonable(value: Any) -> Any:
    """Records, enums, tuples and mappings as plain JSON values (used for audit details and state files)."""
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return repr(value)


class AuditLog:
    """`audit.jsonl` in the state directory.

    Each `record()` is written, flushed and fsynced before it returns, so the record exists before
    the next kill step runs. Any failure (unwritable directory, full disk, damaged file) is reported
    loudly through the log at ERROR and `on_error`, counted in `failures`, and swallowed: the kill
    must go on without its audit trail rather than stop because of it.
    """

    def __init__(
        self,
        path: Path,
        clock: Callable[[], float],
        *,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.path = path
        self._clock = clock
        self._on_error = on_error
        self.failures = 0
        self.last_error = ""
        self._checked = False
        self._unsynced = False

    def record(
        self,
        event: str,
        details: Mapping[str, Any] | None = None,
        *,
        kill_id: str | None = None,
        durable: bool = True,
    ) -> bool:
        """Append one record; True when it is written. Never raises.

        `durable=False` leaves the fsync to the next `sync()` (or durable record): the record is in
        the file at once, so a process crash keeps it; only a power loss in between could lose it."""
        if not self._checked:
            self._checked = True
            self._check_existing()
        line = self._encode(event, details, kill_id)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, line)
                if durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            self._report(f"audit record {event!r} not written to {self.path}: {exc.strerror or exc}")
            return False
        self._unsynced = not durable
        return True

    def sync(self) -> bool:
        """fsync records written with `durable=False`. Never raises."""
        if not self._unsynced:
            return True
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            self._report(f"audit file {self.path} not synced: {exc.strerror or exc}")
            return False
        self._unsynced = False
        return True

    def _encode(self, event: str, details: Mapping[str, Any] | None, kill_id: str | None) -> bytes:
        rec = {"ts": self._clock(), "event": event, "kill_id": kill_id, "details": to_jsonable(details or {})}
        # NaN (an unknown price) is written as the NaN token Python reads back: keep the record.
        return (json.dumps(rec, separators=(",", ":")) + "\n").encode()

    def _check_existing(self) -> None:
        """Report damage left by a crash or a stray writer, and end a torn last line so it stays alone."""
        try:
            with open(self.path, "rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - TAIL_CHECK_BYTES))
                tail = f.read()
        except FileNotFoundError:
            return
        except OSError as exc:
            self._report(f"audit file {self.path} unreadable: {exc.strerror or exc}")
            return
        lines = tail.split(b"\n")
        if size > TAIL_CHECK_BYTES:
            lines = lines[1:]  # the first line of a tail window is usually cut
        bad = sum(1 for ln in lines if ln.strip() and _parse(ln) is None)
        if tail and not tail.endswith(b"\n"):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
                try:
                    os.write(fd, b"\n")
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                self._report(f"audit file {self.path}: cannot end its torn last line: {exc.strerror or exc}")
        if bad:
            self._report(f"audit file {self.path} has {bad} damaged line(s); they are skipped when read")

    def _report(self, message: str) -> None:
        self.failures += 1
        self.last_error = message
        log.error("%s", message)
        if self._on_error is not None:
            try:
                self._on_error(message)
            except Exception:  # a broken reporter must not break the caller
                log.exception("audit error callback failed")

    def read(self) -> list[AuditRecord]:
        return read_audit(self.path)


def _parse(raw: bytes) -> AuditRecord | None:
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("event"), str):
        return None
    ts = obj.get("ts")
    details = obj.get("details")
    kill_id = obj.get("kill_id")
    return AuditRecord(
        ts=float(ts) if isinstance(ts, int | float) else 0.0,
        event=obj["event"],
        kill_id=kill_id if isinstance(kill_id, str) else None,
        details=details if isinstance(details, dict) else {},
    )


def read_audit(path: Path) -> list[AuditRecord]:
    """Every readable record in order; garbage and torn lines are skipped."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    return [r for r in (_parse(ln) for ln in data.split(b"\n") if ln.strip()) if r is not None]
