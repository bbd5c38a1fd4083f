"""asyncio TCP server of the simulator: handshake, client-id registry, framing, faults on the socket."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from watchdog.sim import messages as m
from watchdog.sim.codec import API_PREFIX, Field, FrameBuffer, FrameError, encode, parse_version_range, to_int
from watchdog.sim.faults import SILENCED, FaultState

log = logging.getLogger("watchdog.sim")


@dataclass(frozen=True, slots=True)
class ReceivedFrame:
    """One decoded frame a client sent (for tests: what did the client ask for?)."""

    client_id: int | None
    msg_id: int
    fields: list[str]
    time: float


@dataclass(slots=True)
class Subscriptions:
    pnl: dict[int, str] = field(default_factory=dict)  # reqId -> account
    pnl_single: dict[int, tuple[str, int]] = field(default_factory=dict)
    account_updates: str | None = None
    account_updates_multi: dict[int, str] = field(default_factory=dict)
    account_summary: dict[int, frozenset[str]] = field(default_factory=dict)
    positions: bool = False
    auto_open_orders: bool = False


class ClientConn:
    """One client socket: handshake, then frames to the dispatcher and messages back through the faults."""

    def __init__(self, server: SimServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.client_id: int | None = None
        self.version = 0
        self.options = ""
        self.subs = Subscriptions()
        self.market_data_type = 1  # reqMarketDataType: 1 live, 2 frozen, 3 delayed, 4 delayed frozen
        self.malformed = 0
        self.closed = False
        self._times: collections.deque[float] = collections.deque()
        self._loop = asyncio.get_running_loop()
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)

    def is_done(self) -> bool:
        """A method, not a field test: handlers close the connection while `run` loops over frames."""
        return self.closed

    @property
    def paces_itself(self) -> bool:
        """`+PACEAPI` asks the gateway to slow the client down instead of disconnecting it."""
        return "+PACEAPI" in self.options

    # --- writing ---------------------------------------------------------------------------

    def send(self, fields: list[Field]) -> None:
        """Queue one message, unless a fault swallows or delays it."""
        if self.closed:
            return
        faults = self.server.faults
        if faults.is_muted(self.client_id):
            return
        msg_id = int(fields[0]) if isinstance(fields[0], int) else -1
        if faults.silenced and msg_id in SILENCED:
            return
        data = encode(fields)
        delay = faults.delay_for(msg_id) if self.client_id is not None else 0.0
        if delay > 0:
            self._loop.call_later(delay, self._write, data)
        else:
            self._write(data)

    def _write(self, data: bytes) -> None:
        if self.closed or self.writer.is_closing():
            return
        self.writer.write(data)

    def error(self, req_id: int, code: int, message: str) -> None:
        self.send(m.error(req_id, code, message))

    async def close(self, reset: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        if reset:
            sock = self.writer.get_extra_info("socket")
            if sock is not None:
                # SO_LINGER 0 turns close() into a TCP RST, like a crashed gateway host.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 2.0)
        except (OSError, TimeoutError) as exc:
            log.debug("close of %s: %r", self.peer, exc)

    # --- reading ---------------------------------------------------------------------------

    async def _read(self) -> bytes:
        await self._wait_thawed()
        data = await self.reader.read(65536)
        # A read already in flight when the freeze began must not be processed either.
        await self._wait_thawed()
        return data

    async def _wait_thawed(self) -> None:
        while self.server.faults.is_frozen(self.client_id):
            await self.server.thaw_event().wait()

    async def handshake(self) -> bool:
        """`API\\0` + version range; answer with the negotiated version alone. False: drop the client."""
        try:
            prefix = await asyncio.wait_for(self.reader.readexactly(len(API_PREFIX)), 10.0)
            if prefix != API_PREFIX:
                log.warning("client %s sent garbage before the handshake: %r; dropping", self.peer, prefix)
                return False
            head = await asyncio.wait_for(self.reader.readexactly(4), 10.0)
            (size,) = struct.unpack(">I", head)
            if size > 1024:
                log.warning("client %s sent an absurd handshake length %d; dropping", self.peer, size)
                return False
            payload = await asyncio.wait_for(self.reader.readexactly(size), 10.0)
        except (asyncio.IncompleteReadError, TimeoutError, OSError) as exc:
            log.info("client %s left during the handshake: %r", self.peer, exc)
            return False
        parsed = parse_version_range(payload)
        if parsed is None:
            log.warning("client %s sent a bad version range %r; dropping", self.peer, payload[:64])
            return False
        low, high, self.options = parsed
        if high < m.MIN_CLIENT_VERSION or low > m.SERVER_VERSION:
            log.warning(
                "client %s supports v%d..%d, need %d..%d; dropping",
                self.peer,
                low,
                high,
                m.MIN_CLIENT_VERSION,
                m.SERVER_VERSION,
            )
            return False
        self.version = min(high, m.SERVER_VERSION)
        self.send(m.handshake_reply(self.version, self.server.clock()))
        await self.writer.drain()
        return True

    async def run(self) -> None:
        buf = FrameBuffer.new()
        while not self.closed:
            try:
                chunk = await self._read()
            except (ConnectionError, OSError) as exc:
                log.info("client %s (id %s) connection error: %r", self.peer, self.client_id, exc)
                return
            if not chunk:
                return
            try:
                frames = buf.feed(chunk)
            except FrameError as exc:
                self.malformed += 1
                self.server.malformed_total += 1
                log.warning("client id %s: %s; closing", self.client_id, exc)
                return
            for payload in frames:
                if self.is_done():
                    return
                await self.server.on_frame(self, payload)
            try:
                await self.writer.drain()
            except (ConnectionError, OSError):
                return

    def pace(self, now: float) -> bool:
        """Record one message; True when the client has exceeded the allowed rate."""
        pacing = self.server.faults.pacing
        self._times.append(now)
        while self._times and now - self._times[0] >= 1.0:
            self._times.popleft()
        return pacing.enabled and len(self._times) > pacing.limit_per_second


FrameHandler = Callable[[ClientConn, int, list[str]], Awaitable[None]]
StartHandler = Callable[[ClientConn], None]


class SimServer:
    """Listening socket, connections and the client-id registry."""

    def __init__(
        self,
        faults: Callable[[], FaultState],
        clock: Callable[[], float],
        on_request: FrameHandler,
        on_start: StartHandler,
        thaw_event: Callable[[], asyncio.Event],
    ) -> None:
        self.faults_getter = faults
        self.clock = clock
        self.on_request = on_request
        self.on_start = on_start
        self.thaw_event = thaw_event
        self.host = "127.0.0.1"
        self.port = 0
        self.conns: set[ClientConn] = set()
        self.by_client_id: dict[int, ClientConn] = {}
        self.received: list[ReceivedFrame] = []
        self.malformed_total = 0
        self.unknown_total = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def faults(self) -> FaultState:
        return self.faults_getter()

    async def start_listening(self, host: str | None = None, port: int | None = None) -> None:
        if host is not None:
            self.host = host
        if port is not None:
            self.port = port
        self._server = await asyncio.start_server(self._accept, self.host, self.port, reuse_address=True)
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]

    async def stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def stop(self) -> None:
        await self.stop_listening()
        await self.drop(None)
        for t in list(self._handlers):
            t.cancel()
        if self._handlers:
            await asyncio.gather(*list(self._handlers), return_exceptions=True)

    async def drop(self, client_id: int | None, reset: bool = False) -> int:
        targets = [c for c in self.conns if client_id is None or c.client_id == client_id]
        for c in targets:
            await c.close(reset=reset)
        return len(targets)

    def broadcast(self, fields: list[Field], client_id: int | None = None) -> None:
        for c in list(self.conns):
            if c.client_id is not None and (client_id is None or c.client_id == client_id):
                c.send(fields)

    def connected_clients(self) -> list[int]:
        return sorted(c.client_id for c in self.conns if c.client_id is not None and not c.closed)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        conn = ClientConn(self, reader, writer)
        self.conns.add(conn)
        try:
            if await conn.handshake():
                await conn.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            # One broken connection must never take the gateway down.
            log.exception("client %s (id %s) handler crashed", conn.peer, conn.client_id)
        finally:
            self.conns.discard(conn)
            if conn.client_id is not None and self.by_client_id.get(conn.client_id) is conn:
                del self.by_client_id[conn.client_id]
            await conn.close()
            if task is not None:
                self._handlers.discard(task)

    async def on_frame(self, conn: ClientConn, payload: bytes) -> None:
        fields = payload.decode("utf-8", errors="backslashreplace").split("\0")
        if fields and fields[-1] == "":
            fields.pop()
        try:
            msg_id = int(fields[0])
        except (ValueError, IndexError):
            conn.malformed += 1
            self.malformed_total += 1
            log.warning(
                "client id %s sent a malformed frame (%d so far): %r",
                conn.client_id,
                conn.malformed,
                payload[:80],
            )
            return
        self.received.append(ReceivedFrame(conn.client_id, msg_id, fields, self.clock()))
        if conn.pace(asyncio.get_running_loop().time()):
            if conn.paces_itself:
                await asyncio.sleep(1.0 / max(1, self.faults.pacing.limit_per_second))
            else:
                lim = self.faults.pacing.limit_per_second
                conn.error(
                    -1, 100, f"Max rate of messages per second has been exceeded:max={lim} rec={lim + 1}"
                )
                with contextlib.suppress(ConnectionError, OSError):
                    await conn.writer.drain()
                await conn.close()
                return
        if conn.client_id is None:
            if msg_id != m.IN_START_API:
                log.warning("client %s sent message %d before startApi", conn.peer, msg_id)
                return
            self._start_api(conn, fields)
            return
        try:
            await self.on_request(conn, msg_id, fields)
        except (ValueError, IndexError) as exc:
            conn.malformed += 1
            self.malformed_total += 1
            log.warning(
                "client id %s: malformed message %d (%d so far): %s",
                conn.client_id,
                msg_id,
                conn.malformed,
                exc,
            )
            conn.error(-1, 320, f"Error reading request. Message id {msg_id}: {exc}")

    def _start_api(self, conn: ClientConn, fields: list[str]) -> None:
        cid = to_int(fields[2]) if len(fields) > 2 else 0
        if cid in self.by_client_id and not self.by_client_id[cid].closed:
            log.info("client id %d already in use; refusing %s", cid, conn.peer)
            conn.send(
                m.error(
                    -1,
                    326,
                    "Unable to connect as the client id is already in use. Retry with a unique client id.",
                )
            )
            conn.closed = True
            conn.writer.close()
            return
        conn.client_id = cid
        self.by_client_id[cid] = conn
        # The ReceivedFrame for startApi was logged before the id was known; fix it up.
        last = self.received[-1]
        self.received[-1] = ReceivedFrame(cid, last.msg_id, last.fields, last.time)
        self.on_start(conn)
