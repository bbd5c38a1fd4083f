"""The heartbeat receiver's listening socket, with a budget of accepts per second.

A flood of bare TCP connections (tens of thousands a second) must not take the event loop from the
kill path that shares it. asyncio's own server accepts everything the kernel queued, and every
accepted connection costs a task, a transport and a protocol. Here the listening socket is read by
hand: at most ACCEPT_BATCH accepts per turn of the loop, and at most ACCEPT_RATE a second; when the
second's budget is spent, the socket is not read until the next window (the kernel keeps up to
LISTEN_BACKLOG connections waiting, then drops new ones: that costs the loop nothing). Every pause
is reported (`on_pressure`): the daemon then knows heartbeats may have been lost.

A bot heartbeats every few seconds: ACCEPT_RATE leaves room for hundreds of bots.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import time
from collections.abc import Callable

__all__ = ["ACCEPT_BATCH", "ACCEPT_RATE", "LISTEN_BACKLOG", "WINDOW", "Listener"]

log = logging.getLogger("watchdog.bots.receiver")

ACCEPT_BATCH = 16  # connections accepted per turn of the event loop
ACCEPT_RATE = 1000  # connections accepted per second, at most (each costs the loop ~100 µs)
WINDOW = 0.1  # seconds: the budget is ACCEPT_RATE * WINDOW per window
LISTEN_BACKLOG = 512  # connections the kernel keeps waiting while the loop is busy or paused
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class Listener:
    """Accepts on `address` within the budget; hands each accepted socket to `on_socket`."""

    def __init__(
        self,
        address: tuple[str, int],
        on_socket: Callable[[socket.socket], None],
        on_pressure: Callable[[str], None],
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.address = address  # may change until the listener is bound (a reload while deaf)
        self._on_socket = on_socket
        self._on_pressure = on_pressure
        self._monotonic = monotonic
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._resume: asyncio.TimerHandle | None = None
        self._window_end = 0.0
        self._left = 0
        self.paused = 0  # times accepting paused for a spent budget or a lack of descriptors
        self.port = 0

    @property
    def listening(self) -> bool:
        return self._sock is not None

    async def start(self) -> int:
        """Bind and start accepting; returns the bound port. Raises OSError (address in use, …)."""
        loop = asyncio.get_running_loop()
        host, port = self.address
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(LISTEN_BACKLOG)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._sock, self._loop = sock, loop
        self.port = int(sock.getsockname()[1])
        loop.add_reader(sock.fileno(), self._ready)
        return self.port

    def stop(self) -> None:
        sock, self._sock = self._sock, None
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        if sock is not None and self._loop is not None:
            self._loop.remove_reader(sock.fileno())
            sock.close()

    def _ready(self) -> None:
        sock = self._sock
        if sock is None:
            return
        now = self._monotonic()
        if now >= self._window_end:
            self._window_end, self._left = now + WINDOW, max(1, int(ACCEPT_RATE * WINDOW))
        for _ in range(ACCEPT_BATCH):
            if self._left <= 0:
                self._pause(self._window_end - now, "over the accept budget")
                return
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:  # no descriptor left: retrying at once would spin
                    self._pause(WINDOW, f"accept failed: {exc.strerror or exc}")
                    return
                continue  # the client went away before the accept (ECONNABORTED)
            self._left -= 1
            self._on_socket(conn)

    def _pause(self, delay: float, why: str) -> None:
        if self._sock is None or self._loop is None:
            return
        self.paused += 1
        self._loop.remove_reader(self._sock.fileno())
        self._resume = self._loop.call_later(max(delay, 0.001), self._resume_reading)
        self._on_pressure(why)

    def _resume_reading(self) -> None:
        self._resume = None
        if self._sock is not None and self._loop is not None:
            with contextlib.suppress(OSError, ValueError):
                self._loop.add_reader(self._sock.fileno(), self._ready)
