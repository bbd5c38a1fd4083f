"""Proving write access: is the API read-only? Asked at connect and then every few minutes.

With "Read-Only API" ticked in TWS / IB Gateway (Global Configuration → API → Settings) every order,
cancel and global cancel is refused with 321 "... The API interface is currently in Read-Only mode."
while every read works, so a watchdog looks healthy until its kill fails. The probe is a request that
changes nothing either way: `cancelOrder` for an order id that was never used (taken from the client's
own id sequence, so no order will ever carry it). A writable API answers 10147 "OrderId N that needs to
be cancelled is not found"; a read-only one answers 321 naming read-only mode. No answer within the
timeout leaves the state as it was (the heartbeat judges the connection itself). Verify the 10147 /
321 answers on a paper account before relying on them: IB does not document this use.
"""
# ib_async ships py.typed but leaves many methods unannotated
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from ib_async import IB

log = logging.getLogger("watchdog.gateway.write_access")
INTERVAL = 300.0  # seconds between probes on a live connection
RETRY_SILENT = 30.0  # seconds before asking again when a probe got no answer
READ_ONLY_CODE = 321


class _QuietAnswer(logging.Filter):
    """ib_async logs the probe's expected 10147 at ERROR: drop that one line, nothing else."""

    def __init__(self, req_id: int) -> None:
        super().__init__()
        self._tag = f"reqId {req_id}:"

    def filter(self, record: logging.LogRecord) -> bool:
        return self._tag not in record.getMessage()


def names_read_only(code: int, message: str) -> bool:
    return code == READ_ONLY_CODE and "read-only" in message.lower()


class WriteAccessProbe:
    """The last proven write access: True, False (read-only) or None (not proven on this connection)."""

    def __init__(self, monotonic: Callable[[], float], timeout: float) -> None:
        self._mono = monotonic
        self._timeout = timeout
        self.state: bool | None = None
        self.checked_at: float | None = None  # monotonic
        self._waiting: dict[int, asyncio.Future[tuple[int, str]]] = {}

    def reset(self) -> None:
        """A new connection: nothing proven yet."""
        self.state = None
        self.checked_at = None

    def due(self) -> bool:
        return self.checked_at is None or self._mono() - self.checked_at >= INTERVAL

    def answer(self, req_id: int, code: int, message: str) -> bool:
        """An error message for a probe id: consumed here (it is no order error). True if it was ours."""
        fut = self._waiting.get(req_id)
        if fut is None:
            return False
        if not fut.done():
            fut.set_result((code, message))
        return True

    def observe(self, code: int, message: str) -> None:
        """Any 321 naming read-only mode (an order, a cancel) is proof as good as the probe's."""
        if names_read_only(code, message):
            self.state = False
            self.checked_at = self._mono()

    async def probe(self, ib: IB) -> bool | None:
        """One probe; returns the state after it."""
        req_id = ib.client.getReqId()
        fut: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        self._waiting[req_id] = fut
        quiet = _QuietAnswer(req_id)
        ib_log = logging.getLogger("ib_async.wrapper")
        ib_log.addFilter(quiet)
        try:
            ib.client.cancelOrder(req_id)
            async with asyncio.timeout(self._timeout):
                code, message = await fut
        except (TimeoutError, ConnectionError) as exc:
            log.debug("write access probe %d got no answer: %r", req_id, exc)
            self.checked_at = self._mono() - INTERVAL + RETRY_SILENT  # not on every heartbeat
            return self.state
        finally:
            ib_log.removeFilter(quiet)
            with contextlib.suppress(KeyError):
                del self._waiting[req_id]
        self.state = not names_read_only(code, message)
        self.checked_at = self._mono()
        return self.state
