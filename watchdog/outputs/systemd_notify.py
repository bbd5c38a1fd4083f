"""sd_notify over the raw `$NOTIFY_SOCKET` datagram (READY, WATCHDOG, STATUS, STOPPING); no-op elsewhere."""

from __future__ import annotations

import enum
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


class _Env(enum.Enum):
    """Sentinel: read the socket path from the environment when the notifier is built (not at import)."""

    FROM_ENV = "from-env"


FROM_ENV = _Env.FROM_ENV


def _address(path: str) -> str | bytes:
    # "@name" is Linux's abstract namespace: the kernel wants a leading NUL byte instead of "@".
    if path.startswith("@"):
        return b"\0" + path[1:].encode()
    return path


class SdNotifier:
    """Sends sd_notify messages; every method returns whether the datagram went out and never raises.

    Call it from the event loop itself (not a helper thread) so WATCHDOG=1 stops when the loop hangs.
    """

    def __init__(
        self,
        socket_path: str | _Env | None = FROM_ENV,
        *,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        if socket_path is FROM_ENV:
            socket_path = os.environ.get("NOTIFY_SOCKET")
        self._path = socket_path or None
        self._monotonic_ns = monotonic_ns
        self._failure_logged = False

    @property
    def enabled(self) -> bool:
        return self._path is not None

    def notify(self, **fields: object) -> bool:
        """Send `KEY=value` lines, e.g. `notify(READY=1, STATUS="watching 2 accounts")`."""
        if self._path is None or not fields:
            return False
        # A newline inside a value would start a new (bogus) assignment: flatten it.
        lines = [f"{key}={str(value).replace(chr(10), ' ')}" for key, value in fields.items()]
        payload = "\n".join(lines).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(_address(self._path))
                sock.sendall(payload)
        except OSError as exc:
            # systemd being away must never disturb the watchdog; say so once, quietly.
            if not self._failure_logged:
                self._failure_logged = True
                log.debug("sd_notify to %s failed: %s", self._path, exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        if status is None:
            return self.notify(READY=1)
        return self.notify(READY=1, STATUS=status)

    def watchdog(self) -> bool:
        return self.notify(WATCHDOG=1)

    def status(self, text: str) -> bool:
        return self.notify(STATUS=text)

    def stopping(self, status: str | None = None) -> bool:
        if status is None:
            return self.notify(STOPPING=1)
        return self.notify(STOPPING=1, STATUS=status)

    def reloading(self) -> bool:
        # Type=notify-reload (systemd ≥ 253) needs MONOTONIC_USEC with RELOADING=1; READY=1 ends the reload.
        return self.notify(RELOADING=1, MONOTONIC_USEC=self._monotonic_ns() // 1000)


def watchdog_interval(env: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """Seconds systemd allows between WATCHDOG=1 pings (`WatchdogSec=`), or None when not asked for us."""
    env = os.environ if env is None else env
    raw = env.get("WATCHDOG_USEC")
    if not raw:
        return None
    owner = env.get("WATCHDOG_PID")
    if owner:
        try:
            if int(owner) != (os.getpid() if pid is None else pid):
                return None  # meant for another process (e.g. our parent's wrapper)
        except ValueError:
            return None
    try:
        usec = int(raw)
    except ValueError:
        return None
    return usec / 1_000_000 if usec > 0 else None
