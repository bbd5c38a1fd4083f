"""Low-level helpers for the gateway connection: TCP keepalive and counting decoder failures.

No ib_async here: these work on the raw socket and on the logging records ib_async emits.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

log = logging.getLogger("watchdog.gateway.client")

# kernel keepalive as a backstop for when no heartbeat runs: a dead peer is noticed in ~25 s
KEEPALIVE = (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3))


def enable_keepalive(sock: Any) -> None:
    """SO_KEEPALIVE plus idle/interval/count where the platform has them (ib_async sets none)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in KEEPALIVE:
            opt = getattr(socket, name, None)
            if opt is not None:
                sock.setsockopt(socket.IPPROTO_TCP, opt, value)
    except OSError as e:
        log.warning("could not enable TCP keepalive on the gateway socket: %s", e)


def keepalive_settings(sock: Any) -> dict[str, int]:
    """Read the keepalive options back from a live socket."""
    out = {"SO_KEEPALIVE": int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))}
    for name, _ in KEEPALIVE:
        opt = getattr(socket, name, None)
        if opt is not None:
            out[name] = int(sock.getsockopt(socket.IPPROTO_TCP, opt))
    return out


class _DecoderErrors(logging.Handler):
    """Calls back for every error ib_async's decoder logs (it logs a traceback and carries on)."""

    def __init__(self, on_malformed: Callable[[logging.LogRecord], None]) -> None:
        super().__init__(level=logging.ERROR)
        self._on_malformed = on_malformed

    def emit(self, record: logging.LogRecord) -> None:
        self._on_malformed(record)


def counting_decoder_logger(on_malformed: Callable[[logging.LogRecord], None]) -> logging.Logger:
    """A private, unregistered child of "ib_async.Decoder" for one connection.

    Installed as that connection's `decoder.logger`, it counts only this connection's failures
    while the records still propagate to the usual "ib_async.Decoder" handlers. Unregistered, so
    reconnects do not grow logging's global logger table.
    """
    logger = logging.Logger("ib_async.Decoder")
    logger.parent = logging.getLogger("ib_async.Decoder")
    logger.addHandler(_DecoderErrors(on_malformed))
    return logger
