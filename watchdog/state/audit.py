"""Append-only JSON-lines audit log: one fsynced record per kill step, never blocking the kill."""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import os
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchdog.errors import StateError
from watchdog.state import strict_json
from watchdog.state.files import StateDirectory, UnsafeFile, close_all, why

log = logging.getLogger("watchdog.state.audit")

TAIL_CHECK_BYTES = 64 * 1024  # how much of an existing file is checked for damage at start
READ_LIMIT = 64 * 1024 * 1024  # bytes of a file `read_audit` reads (its end: the newest records)


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

    The file is opened once (`open()`, at daemon start; else at the first record) without following
    a link, and kept open: a record needs no free descriptor. When the name stops naming the open
    file (rotated or removed), the next record opens it again. A file under the name that cannot be
    trusted (a link, a FIFO, hard-linked, not ours, writable by others) is set aside, reported, and
    a fresh log started: the kill keeps its record, and a start is never blocked by it.
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
        self._dir = StateDirectory(path.parent, create=False)  # the store makes the directory
        self._held: list[int | None] = [None]  # the kept descriptor; closed by the finalizer at the latest
        weakref.finalize(self, close_all, self._held)

    @property
    def _fd(self) -> int | None:
        return self._held[0]

    @_fd.setter
    def _fd(self, fd: int | None) -> None:
        self._held[0] = fd

    def open(self) -> None:
        """Open (create) the file and keep it open. An unsafe file is set aside (see the class); raises
        StateError only when no log can be kept at all (an unsafe or unusable directory)."""
        if not self._checked:
            self._checked = True
            self._check_existing()
        try:
            self._descriptor()
        except OSError as exc:
            raise StateError(f"cannot write {self.path}: {why(exc)}") from exc

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
        self._dir.close()

    def _descriptor(self) -> int:
        """The kept descriptor; reopened when the name no longer names it. OSError/StateError on failure."""
        name = self.path.name
        if self._fd is not None:
            if self._dir.same_file(name, self._fd):
                return self._fd
            old, self._fd = self._fd, None
            os.close(old)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        try:
            fd = self._dir.open_file(name, flags, 0o640, limit=None)
        except UnsafeFile as exc:
            self._set_aside(exc)
            fd = self._dir.open_file(name, flags | os.O_EXCL, 0o640, limit=None)  # a fresh one, or nothing
        self._fd = fd
        return fd

    def _set_aside(self, exc: OSError) -> None:
        aside = self._dir.set_aside(self.path.name)
        where = f"moved aside to {self.path.parent / aside}" if aside else "could not be moved aside"
        self._report(f"audit file {self.path} unusable ({why(exc)}); {where}, a fresh log is started")

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
            fd = self._descriptor()
            os.write(fd, line)
            if durable:
                os.fsync(fd)
        except OSError as exc:
            self._report(f"audit record {event!r} not written to {self.path}: {why(exc)}")
            return False
        except StateError as exc:
            self._report(f"audit record {event!r} not written: {exc}")
            return False
        self._unsynced = not durable
        return True

    def sync(self) -> bool:
        """fsync records written with `durable=False`. Never raises."""
        if not self._unsynced:
            return True
        try:
            os.fsync(self._descriptor())
        except (OSError, StateError) as exc:
            self._report(f"audit file {self.path} not synced: {why(exc)}")
            return False
        self._unsynced = False
        return True

    def _encode(self, event: str, details: Mapping[str, Any] | None, kill_id: str | None) -> bytes:
        rec = {"ts": self._clock(), "event": event, "kill_id": kill_id, "details": to_jsonable(details or {})}
        # NaN (an unknown price) is written as the NaN token Python reads back: keep the record.
        return (json.dumps(rec, separators=(",", ":")) + "\n").encode()

    def _check_existing(self) -> None:
        """Report damage left by a crash or a stray writer, and end a torn last line so it stays alone."""
        if not self.path.parent.is_dir():
            return
        try:
            fd = self._dir.open_file(self.path.name, os.O_RDONLY, limit=None)
        except FileNotFoundError:
            return
        except UnsafeFile as exc:
            self._set_aside(exc)
            return
        except (OSError, StateError) as exc:
            self._report(f"audit file {self.path} unreadable: {why(exc)}")
            return
        try:
            with open(fd, "rb", closefd=False) as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - TAIL_CHECK_BYTES))
                tail = f.read()
        except OSError as exc:
            self._report(f"audit file {self.path} unreadable: {why(exc)}")
            return
        finally:
            self._dir.release(fd)
        lines = tail.split(b"\n")
        if size > TAIL_CHECK_BYTES:
            lines = lines[1:]  # the first line of a tail window is usually cut
        bad = sum(1 for ln in lines if ln.strip() and _parse(ln) is None)
        if tail and not tail.endswith(b"\n"):
            try:
                fd = self._descriptor()
                os.write(fd, b"\n")
                os.fsync(fd)
            except (OSError, StateError) as exc:
                self._report(f"audit file {self.path}: cannot end its torn last line: {exc}")
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
        obj = strict_json.loads(raw)
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


def read_audit(path: Path, limit: int = READ_LIMIT) -> list[AuditRecord]:
    """Every readable record in order (of the file's last `limit` bytes); garbage and torn lines are
    skipped. Read through the hardened reader (no link, no FIFO, a regular file of ours); raises
    StateError when the file or its directory cannot be trusted."""
    if not path.parent.is_dir():
        return []
    directory = StateDirectory(path.parent, create=False)
    try:
        data = directory.read(path.name, limit, tail=True)
    except OSError as exc:  # StateError too
        raise StateError(f"cannot read {path}: {why(exc)}") from exc
    finally:
        directory.close()
    if data is None:
        return []
    lines = data.split(b"\n")
    if len(data) == limit:
        lines = lines[1:]  # the first line of a tail window is usually cut
    return [r for r in (_parse(ln) for ln in lines if ln.strip()) if r is not None]
