"""The last heartbeat of every configured bot, kept in memory and in the state dir (`bots.json`).

A watchdog restart must not forget which bots are armed: a bot that died while the watchdog was
down is still caught, one silence limit after the watchdog is back (the daemon counts silence from
the later of the last heartbeat and the gateway connect, `watchdog/daemon/bot_watch.py`). A clean
stop is written durably (fsync) so that a restart cannot re-arm a bot that stopped on purpose.
Heartbeats are written at most once a second and without fsync: a record lost to a crash is older,
never newer.

Two clocks: the wall clock (`last_seen`, epoch seconds) is for the file and for display only;
silence is measured on the monotonic clock (`heard_at`), so an NTP step of the wall clock neither
kills a healthy bot nor spares a dead one. A restored `last_seen` later than now (written under a
clock that was ahead, or absurd) counts as "heard just now".

The file is read and written through `watchdog.state.files.StateDirectory` (relative to the state
directory's descriptor, never through a link, only a regular file that nobody else can write, at
most MAX_FILE bytes: a link to /dev/zero is refused before a byte is read). A damaged or refused
file never blocks the start: it is moved aside (`bots.json.damaged`), reported (log and
the `on_problem` callback, which alerts), and every bot reads as never heard from — unknown, which
alerts after the rule's `unknown_after` but never kills.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from watchdog.config.bots import BotsConfig
from watchdog.model import BotStatus
from watchdog.state import strict_json
from watchdog.state.files import StateDirectory, UnsafeFile, why

__all__ = ["BOTS_FILE", "MAX_FILE", "PERSIST_EVERY", "BotRegistry"]

log = logging.getLogger("watchdog.bots.registry")

BOTS_FILE = "bots.json"
PERSIST_EVERY = 1.0  # seconds between non-durable heartbeat writes
NOTE_CHARS = 200
MAX_FILE = 1 << 20  # bytes: a few bots' records take a few hundred; anything larger is not ours


# Why a bots.json is set aside unread (state/files.py refuses these before reading a byte).
_UNREADABLE = {
    errno.ELOOP: "a symbolic link",
    errno.EINVAL: "not a regular file",
    errno.EFBIG: f"over {MAX_FILE} bytes",
    errno.EPERM: "",  # owned by another user or writable by others: files.check_file says which
}


def _time(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if value is None:
        return None
    raise ValueError(f"not a time: {value!r}")


class BotRegistry:
    """Per bot: last heartbeat, clean stop, reported status and note. All methods run on the loop."""

    def __init__(
        self,
        config: BotsConfig,
        state_dir: Path,
        clock: Callable[[], float],
        *,
        monotonic: Callable[[], float] = time.monotonic,
        files: StateDirectory | None = None,
        on_beat: Callable[[BotStatus], None] | None = None,
        on_problem: Callable[[str], None] | None = None,
    ) -> None:
        self._path = Path(state_dir) / BOTS_FILE
        # opened relative to the directory, never through a link (shared with the StateStore)
        self._files = files if files is not None else StateDirectory(Path(state_dir))
        self._clock = clock
        self._monotonic = monotonic
        self._on_beat = on_beat
        self._on_problem = on_problem
        self._bots: dict[str, BotStatus] = {b.name: BotStatus(name=b.name) for b in config.heartbeats}
        self._heard: dict[str, float] = {}  # monotonic time of each armed bot's last heartbeat
        self._persisted_at = -math.inf
        self._dirty = False
        self._deaf = ""  # why the watchdog cannot hear any bot (listener not running)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._bots)

    def get(self, name: str) -> BotStatus | None:
        return self._bots.get(name)

    def heard_at(self, name: str) -> float | None:
        """Monotonic time (seconds) of the bot's last heartbeat; None while it is not armed."""
        return self._heard.get(name)

    def reconfigure(self, config: BotsConfig) -> None:
        """A reload: new bots start never heard from, removed ones are forgotten, kept ones keep
        their last heartbeat (a reload never re-arms, disarms or kills anything)."""
        names = [b.name for b in config.heartbeats]
        self._bots = {n: self._bots.get(n, BotStatus(name=n)) for n in names}
        self._heard = {n: t for n, t in self._heard.items() if n in self._bots}
        self._dirty = True

    # ------------------------------------------------------------------ state
    def statuses(self) -> Mapping[str, BotStatus]:
        """Every bot's status for the rules (unknown for all while the listener is down)."""
        if self._deaf:
            return MappingProxyType({n: replace(s, unknown_reason=self._deaf) for n, s in self._bots.items()})
        return MappingProxyType(dict(self._bots))

    def set_deaf(self, reason: str) -> None:
        """The listener is not running: every bot_silence reads unknown (a deaf watchdog never kills)."""
        self._deaf = reason

    def beat(self, name: str, *, status: str = "ok", note: str = "") -> BotStatus:
        """An accepted heartbeat: arms (or re-arms) the bot's dead-man; KeyError for an unknown bot."""
        now = self._clock()
        current = self._bots[name]
        self._heard[name] = self._monotonic()
        clean = "".join(ch for ch in note if ch.isprintable())[:NOTE_CHARS]
        self._bots[name] = replace(current, last_seen=now, stopped_at=None, status=status, note=clean)
        self._dirty = True
        if self._monotonic() - self._persisted_at >= PERSIST_EVERY or current.stopped_at is not None:
            self.persist(durable=False)
        if self._on_beat is not None:
            self._on_beat(self._bots[name])
        return self._bots[name]

    def stop(self, name: str) -> BotStatus:
        """A clean stop: disarmed until the next heartbeat, written durably before the answer."""
        now = self._clock()
        self._heard.pop(name, None)
        self._bots[name] = replace(self._bots[name], last_seen=None, stopped_at=now, status="stopped")
        self._dirty = True
        self.persist(durable=True)
        return self._bots[name]

    # ------------------------------------------------------------------ persistence
    def flush(self) -> None:
        """Write what changed since the last write (at shutdown)."""
        if self._dirty:
            self.persist(durable=True)

    def persist(self, *, durable: bool) -> bool:
        records = {
            n: {"last_seen": s.last_seen, "stopped_at": s.stopped_at, "status": s.status, "note": s.note}
            for n, s in self._bots.items()
        }
        data = (json.dumps({"version": 1, "bots": records}, indent=2, sort_keys=True) + "\n").encode()
        try:
            self._files.replace(BOTS_FILE, data, durable=durable)
        except OSError as exc:
            # the dead-man keeps working from memory; only a restart would forget
            self._report(f"cannot write {self._path}: {why(exc)}")
            return False
        self._persisted_at = self._monotonic()
        self._dirty = False
        return True

    def restore(self) -> int:
        """Read the last heartbeats written before a restart; returns how many bots were restored.

        A missing file is a first start (every bot unknown until it heartbeats). A damaged one, or one
        that is not a plain file (a link, a device, a FIFO), is writable by others or is over MAX_FILE
        bytes, is moved aside and reported, unread; every bot then reads as never heard from.
        """
        try:
            raw = self._files.read(BOTS_FILE, limit=MAX_FILE)
        except OSError as exc:
            if isinstance(exc, UnsafeFile) or exc.errno in _UNREADABLE:  # also hard-linked (EMLINK)
                return self._damaged(f"{_UNREADABLE.get(exc.errno or 0) or why(exc)}, not read")
            self._report(f"cannot read {self._path} ({why(exc)}); {self._unknown_until_heard()}")
            return 0
        if raw is None:
            return 0
        wall, mono = self._clock(), self._monotonic()
        future: list[str] = []
        try:
            data = strict_json.loads(raw)
            records = data["bots"]
            if not isinstance(records, dict):
                raise ValueError("'bots' is not a mapping")
            restored = {}
            for name, rec in records.items():
                if name not in self._bots:
                    continue  # a bot no longer configured
                last_seen = _time(rec["last_seen"])
                if last_seen is not None and last_seen > wall:
                    future.append(name)  # written under a clock that was ahead: heard "now", not later
                    last_seen = wall
                restored[name] = replace(
                    self._bots[name],
                    last_seen=last_seen,
                    stopped_at=_time(rec.get("stopped_at")),
                    status=str(rec.get("status", ""))[:16],
                    note=str(rec.get("note", ""))[:NOTE_CHARS],
                )
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            return self._damaged(str(exc))
        if future:
            log.warning(
                "%s: the last heartbeat of %s is later than this host's clock; counted as heard now",
                self._path,
                ", ".join(future),
            )
        self._bots.update(restored)
        for name, status in restored.items():
            if status.last_seen is not None:  # the same age on the monotonic clock
                self._heard[name] = mono - (wall - status.last_seen)
        return len(restored)

    def _damaged(self, why: str) -> int:
        aside = self._path.with_name(BOTS_FILE + ".damaged")
        with contextlib.suppress(OSError):  # a link is moved itself, never followed
            os.replace(BOTS_FILE, aside.name, src_dir_fd=self._files.fd, dst_dir_fd=self._files.fd)
        self._report(f"{self._path} is damaged ({why}; kept as {aside.name}); {self._unknown_until_heard()}")
        return 0

    def _unknown_until_heard(self) -> str:
        names = ", ".join(self._bots) or "none"
        return f"bot_silence of every bot ({names}) is unknown, never a kill, until its next heartbeat"

    def _report(self, message: str) -> None:
        log.error("%s", message)
        if self._on_problem is not None:
            try:
                self._on_problem(message)
            except Exception:  # a broken reporter must not hide the problem
                log.exception("bot registry problem callback failed")
