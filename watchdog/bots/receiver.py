"""The heartbeat receiver: a minimal, bounded HTTP/1.1 listener for bots (`POST /v1/heartbeat/NAME`).

    POST /v1/heartbeat/NAME       Authorization: Bearer TOKEN   → 204  (arms / postpones NAME's dead-man)
    POST /v1/heartbeat/NAME/stop  Authorization: Bearer TOKEN   → 204  (clean stop: disarmed until the next)
    optional JSON body {"status": "ok" | "degraded", "note": "..."} (at most MAX_BODY bytes)

Anything else is refused without effect: 401 wrong or missing token, 404 unknown bot or path,
405 not POST, 413 body too large, 400 malformed, 408 too slow, 500 a fault of the receiver itself
(logged, counted, the connection closed: nothing escapes into the event loop). A request can only
postpone a kill (or disarm it on a clean stop), never cause one. Tokens are compared in constant
time (`hmac.compare_digest`) and never logged.

Bounded, so that a flood cannot slow the kill path that shares this event loop: the listening
socket accepts within a budget per turn and per second (`listener.py`: over it, accepting pauses
and the kernel's backlog takes the rest), each connection is a plain `asyncio.Protocol` whose bytes
are parsed as they arrive (constant work per connection, no coroutine per request), and at most
`max_connections` are open at once; a new one evicts a connection that has sent nothing yet
(oldest first), else the oldest one still mid-request. A connection whose request is complete is
answered at once and is never evicted. A flood can still make heartbeats fail, so every eviction
and every accept pause is reported (`on_pressure`): the daemon then holds the bots' silence kills
(`watchdog/daemon/bot_watch.py`), because a missed heartbeat proves nothing while the listener is
flooded. A request must arrive whole within READ_TIMEOUT; one request per connection.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import socket
import time
from collections.abc import Callable

from watchdog.bots.http_request import MAX_BODY, MAX_HEADER, PREFIX, Head, Response, parse_body, reject
from watchdog.bots.listener import Listener
from watchdog.bots.registry import BotRegistry
from watchdog.config.bots import BotsConfig

__all__ = ["MAX_BODY", "READ_TIMEOUT", "REJECT_REASONS", "HeartbeatReceiver", "Response"]

log = logging.getLogger("watchdog.bots.receiver")

READ_TIMEOUT = 5.0  # seconds for a whole request (line, headers, body) to arrive
# every value of bot_heartbeat_rejected_total{reason}: a fixed set, so the label stays bounded
REJECT_REASONS = (
    "unauthorized",
    "unknown_bot",
    "not_found",
    "method",
    "too_large",
    "bad_request",
    "timeout",
    "overloaded",
    "internal_error",
)
LOG_EVERY = 60.0  # seconds between log lines for the same kind of refusal


class _Connection(asyncio.Protocol):
    """One client connection: its bytes so far, and where its request stands."""

    __slots__ = ("buffer", "closed", "head", "receiver", "scanned", "timer", "transport")

    def __init__(self, receiver: HeartbeatReceiver) -> None:
        self.receiver = receiver
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.scanned = 0  # bytes already searched for the end of the head
        self.head: tuple[Head, int] | None = None  # the parsed head and where its body starts
        self.timer: asyncio.TimerHandle | None = None
        self.closed = False  # answered, evicted or timed out: nothing more is read

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.receiver._admit(self)

    def data_received(self, data: bytes) -> None:
        self.receiver._received(self, data)

    def eof_received(self) -> bool:
        self.receiver._ended(self)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.receiver._lost(self)


class HeartbeatReceiver:
    """Serves the heartbeat endpoint on the running loop; `start()` binds, `stop()` closes everything."""

    def __init__(
        self,
        config: BotsConfig,
        registry: BotRegistry,
        *,
        on_rejected: Callable[[str], None] | None = None,
        on_pressure: Callable[[], None] | None = None,
        read_timeout: float = READ_TIMEOUT,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self._on_rejected = on_rejected
        self._on_pressure = on_pressure
        self._read_timeout = read_timeout
        self._monotonic = monotonic
        self._tokens: dict[str, bytes] = {}
        self._max_connections = config.max_connections
        self._address = config.address
        self._listener = Listener(self._address, self._connect, self._pressure, monotonic=monotonic)
        self.reconfigure(config)
        self._handshakes: set[asyncio.Task[object]] = set()
        # open connections by what they have sent, oldest first: the silent ones are evicted first
        self._silent: dict[_Connection, None] = {}
        self._partial: dict[_Connection, None] = {}
        self._logged: dict[str, float] = {}
        self.evicted = 0  # connections closed unanswered to make room, since start
        self.last_pressure: float | None = None  # monotonic time of the last eviction or accept pause
        self.port = 0

    def reconfigure(self, config: BotsConfig) -> None:
        """New bots, tokens and limits apply to the next request (a rotated token is refused at once).
        A bound listener keeps its address (moving it needs a restart); one not bound yet (its port
        was taken) retries on the new address."""
        self._tokens = {b.name: b.token.get_secret_value().encode() for b in config.heartbeats}
        self._max_connections = config.max_connections
        if not self._listener.listening:
            self._address = self._listener.address = config.address

    @property
    def listening(self) -> bool:
        return self._listener.listening

    @property
    def paused(self) -> int:
        """Times accepting paused (accept budget spent, or no descriptor left) since start."""
        return self._listener.paused

    @property
    def open_connections(self) -> int:
        return len(self._silent) + len(self._partial)

    async def start(self) -> int:
        """Bind the listener; returns the bound port (0 in the config = any free port). Raises OSError."""
        self.port = await self._listener.start()
        log.debug("bot heartbeats on http://%s:%d%sNAME", self._address[0], self.port, PREFIX)
        return self.port

    async def stop(self) -> None:
        if not self._listener.listening:
            return
        self._listener.stop()
        for conn in [*self._silent, *self._partial]:
            self._close(conn, abort=True)
        handshakes = list(self._handshakes)
        for task in handshakes:
            task.cancel()
        await asyncio.gather(*handshakes, return_exceptions=True)

    # ------------------------------------------------------------------ connections
    def _connect(self, sock: socket.socket) -> None:
        """An accepted socket becomes a transport with a _Connection (within the accept budget)."""
        loop = asyncio.get_running_loop()
        task: asyncio.Task[object] = loop.create_task(
            loop.connect_accepted_socket(lambda: _Connection(self), sock=sock)
        )
        self._handshakes.add(task)
        task.add_done_callback(self._handshake_done)

    def _handshake_done(self, task: asyncio.Task[object]) -> None:
        self._handshakes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("heartbeat connection lost before it was set up")  # (reset by the client)

    def _admit(self, conn: _Connection) -> None:
        # Constant work per connection: at most one eviction (an abort), one timer.
        if self.open_connections >= self._max_connections:
            table = self._silent or self._partial
            victim = next(iter(table))
            self._close(victim, abort=True)
            self.evicted += 1
            self._count("overloaded")
            self._pressure("a connection evicted to make room")
        self._silent[conn] = None
        conn.timer = asyncio.get_running_loop().call_later(self._read_timeout, self._timed_out, conn)

    def _pressure(self, why: str) -> None:
        self.last_pressure = self._monotonic()
        if self._on_pressure is not None:
            try:
                self._on_pressure()
            except Exception as exc:  # noqa: BLE001 (a broken reporter must not stop the accepts)
                self._fault(exc)

    def _received(self, conn: _Connection, data: bytes) -> None:
        if conn.closed:
            return
        if not conn.buffer:
            self._silent.pop(conn, None)
            self._partial[conn] = None
        conn.buffer += data
        try:
            response = self._progress(conn)
        except Exception as exc:  # noqa: BLE001 (a receiver fault must never escape into the loop)
            self._fault(exc)
            response = reject(500, "internal_error")
        if response is not None:
            self._answer(conn, response)

    def _ended(self, conn: _Connection) -> None:
        """The client closed its side: a request cut off midway is counted, a bare probe is not."""
        if not conn.closed and conn.buffer:
            self._count("bad_request")
        self._close(conn)

    def _lost(self, conn: _Connection) -> None:
        if not conn.closed and conn.buffer:
            self._count("bad_request")
        self._close(conn)

    def _timed_out(self, conn: _Connection) -> None:
        conn.timer = None
        if not conn.closed:
            self._answer(conn, reject(408, "timeout"))

    def _answer(self, conn: _Connection, response: Response) -> None:
        if response.reason:
            self._count(response.reason)
        if conn.transport is not None and not conn.closed:
            conn.transport.write(response.encode())
        self._close(conn)  # close() sends what is buffered first

    def _close(self, conn: _Connection, *, abort: bool = False) -> None:
        self._silent.pop(conn, None)
        self._partial.pop(conn, None)
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        if conn.closed:
            return
        conn.closed = True
        conn.buffer.clear()
        if conn.transport is not None:
            if abort:
                conn.transport.abort()
            else:
                conn.transport.close()

    # ------------------------------------------------------------------ requests
    def _progress(self, conn: _Connection) -> Response | None:
        """The answer once the request is complete (or refused as it stands); None: wait for more."""
        if conn.head is None:
            end = conn.buffer.find(b"\r\n\r\n", max(0, conn.scanned - 3))
            if end < 0:
                conn.scanned = len(conn.buffer)
                return reject(431, "too_large") if len(conn.buffer) > MAX_HEADER else None
            if end > MAX_HEADER:
                return reject(431, "too_large")
            head = Head.parse(bytes(conn.buffer[:end]))
            if isinstance(head, Response):
                return head
            refused = self._check(head)
            if refused is not None:
                return refused
            conn.head = (head, end + 4)
        head, start = conn.head
        if len(conn.buffer) - start < head.length:
            return None
        return self._apply(head, bytes(conn.buffer[start : start + head.length]))

    def _check(self, head: Head) -> Response | None:
        token = self._tokens.get(head.name)
        if token is None:
            return reject(404, "unknown_bot")
        if not self._authorized(head.authorization, token):
            return reject(401, "unauthorized", ("WWW-Authenticate", 'Bearer realm="ibkr-watchdog"'))
        if head.length < 0:
            return reject(400, "bad_request")
        if head.length > MAX_BODY:
            return reject(413, "too_large")
        return None

    def _apply(self, head: Head, body: bytes) -> Response:
        parsed = parse_body(body)
        if parsed is None:
            return reject(400, "bad_request")
        name = head.name
        if name not in self._registry.names:  # dropped by a reload between head and body
            return reject(404, "unknown_bot")
        if head.action == "stop":
            self._registry.stop(name)
            log.info("bot %s stopped cleanly: dead-man disarmed until its next heartbeat", name)
        else:
            before = self._registry.get(name)
            self._registry.beat(name, status=parsed[0], note=parsed[1])
            if before is None or before.last_seen is None:
                log.info("bot %s heartbeats: dead-man armed", name)
        return Response(204)

    @staticmethod
    def _authorized(header: str, token: bytes) -> bool:
        scheme, _, given = header.partition(" ")
        # compare_digest even for a malformed header: the time taken says nothing about the token
        ok = hmac.compare_digest(given.strip().encode("utf-8", "replace"), token)
        return ok and scheme.lower() == "bearer"

    def _fault(self, exc: BaseException) -> None:
        # One line, rate-limited: the kind of fault and where, never the request (it holds the token).
        frame = exc.__traceback__
        while frame is not None and frame.tb_next is not None:
            frame = frame.tb_next
        where = f"{frame.tb_frame.f_code.co_filename}:{frame.tb_lineno}" if frame is not None else "?"
        now = time.monotonic()
        if now - self._logged.get("fault", -LOG_EVERY) >= LOG_EVERY:
            self._logged["fault"] = now
            log.error("heartbeat receiver fault %s at %s; answered 500 and closed", type(exc).__name__, where)

    def _count(self, reason: str) -> None:
        if self._on_rejected is not None:
            self._on_rejected(reason)
        now = time.monotonic()
        if now - self._logged.get(reason, -LOG_EVERY) >= LOG_EVERY:
            self._logged[reason] = now
            # never the token or the request itself: only the kind of refusal
            log.warning("bot heartbeat refused (%s); further refusals of this kind counted quietly", reason)
