"""Persisted state in the state directory: latch, pending kill, last kill, baseline, status, pid, requests.

Every durable file is written atomically (temp file in the same directory, fsync, rename, fsync
of the directory), so a `kill -9` leaves either the old or the new version, never half of one.
Every file the daemon acts on is read through a strict schema (`state.schemas`); damage fails safe
and is reported loudly (`on_error`, `damaged`): a damaged latch reads as TRIPPED, a damaged pending
kill as a pending close-all of every watched account (never a dry run), a damaged baseline is dropped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from watchdog.errors import StateError
from watchdog.model import Action, KillReport, TradingState
from watchdog.state import pidfile, strict_json
from watchdog.state.audit import to_jsonable
from watchdog.state.files import StateDirectory, why
from watchdog.state.pidfile import PID_FILE
from watchdog.state.records import Latch, PendingKill, position_key
from watchdog.state.schemas import BaselineFile, LatchFile, PendingKillFile, StateDamage, validate
from watchdog.state.summaries import report_summary, status_from_snapshot

__all__ = ["Latch", "PendingKill", "StateStore", "position_key", "report_summary", "status_from_snapshot"]

log = logging.getLogger("watchdog.state.store")

LATCH_FILE = "latch.json"
PENDING_FILE = "pending-kill.json"
LAST_KILL_FILE = "last-kill.json"
BASELINE_FILE = "baseline.json"
STATUS_FILE = "status.json"
READINESS_FILE = "readiness.json"
AUDIT_FILE = "audit.jsonl"
REQUESTS_DIR = "requests"
_MISSING = object()  # a file that does not exist (JSON `null` is damage, not absence)
REQUEST_LIMIT = 64 * 1024  # bytes: a request is a reason and a name, never more
REQUESTS_PER_TAKE = 100  # requests taken at once; the rest wait for the next signal

# What a damaged or unsafe state file means (a link, a FIFO, not ours, writable by others, too large,
# hard-linked, not JSON, not its schema): the one policy (issue 15). Only a state directory that
# cannot be used at all, or a pid file that may be another daemon's, stops a start; every other
# file lets it go on. Every case is reported (ERROR line, critical "State directory problem").
ON_UNUSABLE = {
    PID_FILE: "refuse start: the pid file is the daemon's lock; one we cannot trust may be another's",
    LATCH_FILE: "fail safe: read as TRIPPED; the next save replaces it",
    PENDING_FILE: "fail safe: read as a pending close-all of every account; a save or clear replaces it",
    AUDIT_FILE: "set aside (renamed NAME.damaged), a fresh log is started",
    BASELINE_FILE: "set aside (renamed NAME.damaged): a cache, the day highs start afresh",
    REQUESTS_DIR: "a request is removed unread; a requests/ dir others can write is not read at all",
    STATUS_FILE: "shown as unreadable by `status`; rewritten within a second",
    LAST_KILL_FILE: "shown as unreadable by `status`; replaced by the next kill",
}


def atomic_write(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace `path` with `data` all at once; `durable` also fsyncs the file and its directory."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.chmod(tmp, 0o640)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _dumps(obj: Any) -> bytes:
    return (json.dumps(to_jsonable(obj), indent=2, sort_keys=True) + "\n").encode()


class StateStore:
    """The files of one state directory. Reads are cached; writes go to disk before they return."""

    def __init__(
        self,
        state_dir: Path,
        clock: Callable[[], float],
        *,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.dir = Path(state_dir)
        self._clock = clock
        self._on_error = on_error
        self._latch: Latch | None = None
        self._pending: PendingKill | None = None
        self._pending_loaded = False
        self._pid_fd: int | None = None
        self.problems: list[str] = []
        self.files = StateDirectory(self.dir)  # opened on first use, kept: see state/files.py
        self.damaged: dict[str, str] = {}  # file name → what was wrong with it (for the audit log)

    @property
    def audit_path(self) -> Path:
        return self.dir / AUDIT_FILE

    def _report(self, message: str) -> None:
        self.problems.append(message)
        log.error("%s", message)
        if self._on_error is not None:
            try:
                self._on_error(message)
            except Exception:  # a broken reporter must not hide the state problem
                log.exception("state error callback failed")

    def _write(self, name: str, obj: Any, *, durable: bool = True) -> None:
        self._write_bytes(name, _dumps(obj), durable=durable)

    def _write_bytes(self, name: str, data: bytes, *, durable: bool = True) -> None:
        try:
            self.files.replace(name, data, durable=durable)
        except StateError as exc:
            self._report(str(exc))
            raise
        except OSError as exc:
            msg = f"cannot write {self.dir / name}: {why(exc)}"
            self._report(msg)
            raise StateError(msg) from exc

    def _damage(self, name: str, message: str) -> None:
        self.damaged[name] = message
        self._report(message)

    def _read(self, name: str, *, missing: Any = None) -> Any:
        """The parsed file, `missing` when there is none; StateError when unreadable or not JSON."""
        path = self.dir / name
        if not self.dir.is_dir():
            return missing  # nothing written yet (and reading must not create the directory)
        try:
            raw = self.files.read(name)
        except (OSError, StateError) as exc:
            raise StateError(f"cannot read {path}: {why(exc)}") from exc
        if raw is None:
            return missing
        try:
            return strict_json.loads(raw)
        except ValueError as exc:
            raise StateError(f"{path} is damaged (not JSON: {exc})") from exc

    # ------------------------------------------------------------------ latch
    def latch(self) -> Latch:
        if self._latch is None:
            self._latch = self._load_latch()
        return self._latch

    def trading_state(self) -> TradingState:
        return self.latch().state

    def reload_latch(self) -> Latch:
        """Forget the cached latch and read the file again (control commands, tests)."""
        self._latch = None
        return self.latch()

    def _load_latch(self) -> Latch:
        try:
            data = self._read(LATCH_FILE, missing=_MISSING)
            if data is _MISSING:
                return Latch()
            return _latch_from(validate(LatchFile, data, str(self.dir / LATCH_FILE)))
        except (StateError, StateDamage) as exc:
            msg = f"latch file unusable ({exc}); treating the watchdog as TRIPPED until a reset"
            self._damage(LATCH_FILE, msg)
            return Latch(
                state=TradingState.TRIPPED,
                trigger="state-corrupted",
                reason=f"latch file unusable: {exc}",
                tripped_at=self._clock(),
                corrupted=True,
            )

    def save_latch(self, latch: Latch, *, durable: bool = True) -> None:
        """Persist the latch. Fail-safe order: a trip is remembered even if the disk fails; a re-arm
        counts only once it is on disk. `durable=False` defers the fsync to `sync()`."""
        if latch.state is TradingState.TRIPPED:
            self._latch = latch
        self._write(LATCH_FILE, replace(latch, corrupted=False), durable=durable)
        self._latch = latch

    # ------------------------------------------------------------------ pending kill
    def pending_kill(self) -> PendingKill | None:
        if not self._pending_loaded:
            self._pending_loaded = True
            self._pending = self._load_pending()
        return self._pending

    def _load_pending(self) -> PendingKill | None:
        try:
            data = self._read(PENDING_FILE, missing=_MISSING)
            if data is _MISSING:
                return None
            f = validate(PendingKillFile, data, str(self.dir / PENDING_FILE))
            return PendingKill(
                kill_id=f.kill_id,
                action=Action(f.action),
                trigger=f.trigger,
                reason=f.reason,
                accounts=tuple(f.accounts),
                created_at=f.created_at,
                dry_run=f.dry_run,
                interrupted=f.interrupted,
                corrupted=f.corrupted,
            )
        except (StateError, StateDamage) as exc:
            # A kill was intended but its scope and kind are unknown: the fail-safe reading is the
            # strongest, for every watched account, and for real (a damaged flag never means dry run).
            msg = f"pending kill file unusable ({exc}); treating it as a pending close-all of every account"
            self._damage(PENDING_FILE, msg)
            return PendingKill(
                kill_id="corrupted",
                action=Action.CLOSE_ALL,
                trigger="state-corrupted",
                reason=f"pending kill file unusable: {exc}",
                created_at=self._clock(),
                corrupted=True,
            )

    def save_pending(self, pending: PendingKill, *, durable: bool = True) -> None:
        self._pending, self._pending_loaded = pending, True
        self._write(PENDING_FILE, pending, durable=durable)

    def sync(self) -> None:
        """fsync the latch and pending files and the directory (after writes with durable=False)."""
        try:
            for name in (LATCH_FILE, PENDING_FILE):
                self.files.fsync_file(name)
            self.files.fsync()
        except OSError as exc:
            msg = f"cannot sync {self.dir}: {why(exc)}"
            self._report(msg)
            raise StateError(msg) from exc

    def clear_pending(self) -> None:
        self._pending, self._pending_loaded = None, True
        try:
            self.files.unlink(PENDING_FILE)
            self.files.fsync()
        except FileNotFoundError:
            return
        except (OSError, StateError) as exc:
            msg = f"cannot remove {self.dir / PENDING_FILE}: {why(exc)}"
            self._report(msg)
            raise StateError(msg) from exc

    # ------------------------------------------------------------------ last kill, baseline, status
    def save_last_kill(self, report: KillReport) -> None:
        self._write(LAST_KILL_FILE, report_summary(report))

    def last_kill(self) -> dict[str, Any] | None:
        data = self._read(LAST_KILL_FILE)
        return data if isinstance(data, dict) else None

    def save_baseline(self, data: Mapping[str, Any]) -> None:
        """Whatever the daemon keeps across restarts for the trading day (plain JSON)."""
        self._write(BASELINE_FILE, dict(data))

    def baseline(self) -> dict[str, Any]:
        """The saved baseline, {} when there is none. Never raises: a damaged or unsafe one is a
        cache, set aside, reported (ERROR line, `on_error`) and read as none (`ON_UNUSABLE`)."""
        try:
            data = self._read(BASELINE_FILE, missing=_MISSING)
            if data is _MISSING:
                return {}
            return validate(BaselineFile, data, str(self.dir / BASELINE_FILE)).model_dump()
        except (StateError, StateDamage) as exc:
            self._set_aside(
                BASELINE_FILE, f"baseline file unusable ({exc}); discarded: day highs start afresh"
            )
            return {}

    def _set_aside(self, name: str, problem: str) -> None:
        aside = None
        with contextlib.suppress(OSError):
            aside = self.files.set_aside(name)
        where = f"moved aside to {self.dir / aside}" if aside else "could not be moved aside"
        self._damage(name, f"{problem} ({where})")

    def write_status(self, status: Mapping[str, Any]) -> None:
        """Every poll: atomic but not fsynced (it is rewritten in a second; losing one costs nothing)."""
        self._write(STATUS_FILE, dict(status), durable=False)

    def read_status(self) -> dict[str, Any] | None:
        data = self._read(STATUS_FILE)
        return data if isinstance(data, dict) else None

    def write_readiness(self, data: bytes) -> None:
        """The last kill readiness plan (`ibkr-watchdog plan` reads it), already encoded as JSON (the
        daemon encodes a large book off the event loop): atomic, not fsynced."""
        self._write_bytes(READINESS_FILE, data, durable=False)

    def read_readiness_bytes(self) -> bytes | None:
        """The raw `readiness.json` (None when there is none) for a reader with its own schema."""
        if not self.dir.is_dir():
            return None
        try:
            return self.files.read(READINESS_FILE)
        except (OSError, StateError) as exc:
            raise StateError(f"cannot read {self.dir / READINESS_FILE}: {why(exc)}") from exc

    def read_readiness(self) -> dict[str, Any] | None:
        data = self._read(READINESS_FILE)
        return data if isinstance(data, dict) else None

    # ------------------------------------------------------------------ pid file
    def write_pid(self, pid: int | None = None) -> None:
        """Claim the state directory for this daemon: an exclusive lock on the directory while it runs,
        and the pid file with the process's start time (see `watchdog.state.pidfile`).

        The lock (not the pid file) tells a live daemon from a stale file: a crashed daemon never
        blocks the next start, and a deleted pid file never lets a second daemon start. A link, a FIFO
        or an oversized file planted under the pid file's name refuses the start and is left alone.
        """
        path = self.dir / PID_FILE
        self.files.open_dir()  # StateError for a directory others could write in (or not ours)
        try:
            fd = self.files.open_file(PID_FILE, os.O_RDONLY, limit=4096)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StateError(f"cannot write {path}: {why(exc)}") from exc
        else:
            self.files.release(fd)
        self._pid_fd = pidfile.claim(self.dir, os.getpid() if pid is None else pid)

    def read_pid(self) -> int | None:
        """The running daemon's pid (verified), or None when no daemon holds the state directory."""
        return pidfile.find_daemon(self.dir).pid

    def remove_pid(self) -> None:
        if self._pid_fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.files.unlink(PID_FILE)
        os.close(self._pid_fd)
        self._pid_fd = None

    # ------------------------------------------------------------------ control requests
    def put_request(self, kind: str, payload: Mapping[str, Any]) -> Path:
        """Drop a control request file (`requests/<kind>-<time>-<pid>.json`) for the daemon to take."""
        reqdir = self.files.subdirectory(REQUESTS_DIR, create=True)
        name = f"{kind}-{self._clock():.6f}-{os.getpid()}.json"
        try:
            reqdir.replace(name, _dumps(payload))
        except OSError as exc:  # StateError too: a requests/ dir that is a link or others can write
            raise StateError(f"cannot write a {kind} request in {reqdir.path}: {why(exc)}") from exc
        finally:
            reqdir.close()
        return reqdir.path / name

    def take_requests(self, kind: str) -> list[dict[str, Any]]:
        """Queued requests of `kind`, oldest first (at most REQUESTS_PER_TAKE); each is removed as it is
        taken. Read through the hardened reader: a link, a FIFO, a file too large or not ours is
        removed unread and reported; a requests/ dir that is a link or others can write is not read."""
        if not os.path.lexists(self.dir / REQUESTS_DIR):
            return []  # no request was ever queued
        reqdir = self.files.subdirectory(REQUESTS_DIR)
        try:
            names = [n for n in reqdir.names() if n.startswith(f"{kind}-") and n.endswith(".json")]
        except OSError as exc:  # StateError: unsafe directory
            reqdir.close()
            self._report(f"control requests not read: {why(exc)}")
            return []
        out: list[dict[str, Any]] = []
        try:
            for name in names[:REQUESTS_PER_TAKE]:
                try:
                    raw = reqdir.read(name, REQUEST_LIMIT)
                    if raw is None:
                        continue  # taken by someone else in between
                    data = strict_json.loads(raw)
                except (OSError, ValueError) as exc:
                    problem = why(exc) if isinstance(exc, OSError) else f"not JSON: {exc}"
                    self._report(f"control request {reqdir.path / name} unusable ({problem}); removed unread")
                    with contextlib.suppress(OSError):
                        reqdir.unlink(name)  # a link is removed, never its target
                    continue
                with contextlib.suppress(FileNotFoundError):
                    reqdir.unlink(name)
                if isinstance(data, dict):
                    out.append(data)
        finally:
            reqdir.close()
        return out


def _latch_from(f: LatchFile) -> Latch:
    return Latch(
        state=TradingState(f.state),
        action=Action(f.action) if f.action is not None else None,
        trigger=f.trigger,
        reason=f.reason,
        kill_id=f.kill_id,
        tripped_at=f.tripped_at,
        accounts=tuple(f.accounts),
        baseline=MappingProxyType(dict(f.baseline)),
        baseline_known=f.baseline_known,
        changed_at=f.changed_at,
        changed_by=f.changed_by,
    )
