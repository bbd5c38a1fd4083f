"""The heartbeat receiver: a minimal, bounded HTTP/1.1 listener for bots (`POST /v1/heartbeat/NAME`).

    POST /v1/heartbeat/NAME       Authorization: Bearer TOKEN   → 204  (arms / postpones NAME's dead-man)
    POST /v1/heartbeat/NAME/stop  Authorization: Bearer TOKEN   → 204  (clean stop: disarmed until the next)
    optional JSON body {"status": "ok" | "degraded", "note": "..."} (at most MAX_BODY bytes)

Anything else is refused without effect: 401 wrong or missing token, 404 unknown bot or path,
405 not POST, 413 body too large, 400 malformed, 408 too slow. A request can only postpone a kill
(or disarm it on a clean stop), never cause one. Tokens are compared in constant time
(`hmac.compare_digest`) and never logged.

Bounded, so that a flood cannot slow the kill path that shares this event loop: at most
`max_connections` connections are open at once — a new one evicts the oldest (closed at once), so
idle connections cannot lock a bot out: its request arrives milliseconds after its connect — a
request must arrive whole within READ_TIMEOUT, and headers and body are size-capped. One request
per connection (`Connection: close`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from watchdog.bots.registry import BotRegistry
from watchdog.config.bots import BotsConfig

__all__ = ["MAX_BODY", "READ_TIMEOUT", "REJECT_REASONS", "HeartbeatReceiver", "Response"]

log = logging.getLogger("watchdog.bots.receiver")

READ_TIMEOUT = 5.0  # seconds for a whole request (line, headers, body) to arrive
MAX_HEADER = 8192  # bytes of request line + headers
MAX_BODY = 4096
PREFIX = "/v1/heartbeat/"
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
)
STATUSES = ("ok", "degraded")
_REASON_TEXT = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
}
LOG_EVERY = 60.0  # seconds between log lines for the same kind of refusal


@dataclass(frozen=True, slots=True)
class Response:
    code: int
    reason: str = ""  # the rejection reason (REJECT_REASONS), "" when accepted
    extra: tuple[tuple[str, str], ...] = ()

    def encode(self) -> bytes:
        head = f"HTTP/1.1 {self.code} {_REASON_TEXT.get(self.code, 'Error')}\r\nConnection: close\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in self.extra)
        if self.code == 204:
            return (head + "\r\n").encode()
        body = (self.reason or _REASON_TEXT.get(self.code, "error")).encode() + b"\n"
        head += f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n\r\n"
        return head.encode() + body


def _reject(code: int, reason: str, *extra: tuple[str, str]) -> Response:
    return Response(code, reason, extra)


class HeartbeatReceiver:
    """Serves the heartbeat endpoint on the running loop; `start()` binds, `stop()` closes everything."""

    def __init__(
        self,
        config: BotsConfig,
        registry: BotRegistry,
        *,
        on_rejected: Callable[[str], None] | None = None,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        self._tokens = {b.name: b.token.get_secret_value().encode() for b in config.heartbeats}
        self._registry = registry
        self._on_rejected = on_rejected
        self._max_connections = config.max_connections
        self._read_timeout = read_timeout
        self._address = config.address
        self._server: asyncio.Server | None = None
        # open connections, oldest first: the one to evict when a new connection needs a slot
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._logged: dict[str, float] = {}
        self.port = 0

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    async def start(self) -> int:
        """Bind the listener; returns the bound port (0 in the config = any free port). Raises OSError."""
        host, port = self._address
        self._server = await asyncio.start_server(self._accept, host, port, limit=MAX_HEADER, backlog=512)
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.debug("bot heartbeats on http://%s:%d%sNAME", host, self.port, PREFIX)
        return self.port

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 2.0)

    # ------------------------------------------------------------------ connections
    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A plain callback (not a coroutine): an eviction is one abort and one cancel, at once.
        while len(self._connections) >= self._max_connections:
            oldest, oldest_writer = next(iter(self._connections.items()))
            del self._connections[oldest]
            oldest_writer.transport.abort()
            oldest.cancel()
            self._count("overloaded")
        task = asyncio.ensure_future(self._serve(reader, writer))
        self._connections[task] = writer
        task.add_done_callback(lambda t: self._connections.pop(t, None))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                async with asyncio.timeout(self._read_timeout):
                    response = await self._respond(reader)
            except TimeoutError:
                response = _reject(408, "timeout")
            except asyncio.LimitOverrunError:
                response = _reject(431, "too_large")
            except asyncio.IncompleteReadError as exc:
                response = None  # the client went away mid-request: nobody to answer
                if exc.partial:  # (a bare connect-and-close, e.g. a port probe, is not a request)
                    self._count("bad_request")
            except ConnectionError:
                response = None
                self._count("bad_request")
            if response is None:
                return
            if response.reason:
                self._count(response.reason)
            writer.write(response.encode())
            with contextlib.suppress(ConnectionError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await writer.drain()
        finally:
            writer.close()

    async def _respond(self, reader: asyncio.StreamReader) -> Response:
        head = await reader.readuntil(b"\r\n\r\n")
        try:
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ")
        except ValueError:
            return _reject(400, "bad_request")
        if not version.startswith("HTTP/1."):
            return _reject(400, "bad_request")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep:
                return _reject(400, "bad_request")
            headers[name.strip().lower()] = value.strip()
        path = target.split("?", 1)[0]
        if not path.startswith(PREFIX):
            return _reject(404, "not_found")
        name, _, action = path[len(PREFIX) :].partition("/")
        if action not in ("", "stop"):
            return _reject(404, "not_found")
        if method != "POST":
            return _reject(405, "method", ("Allow", "POST"))
        token = self._tokens.get(name)
        if token is None:
            return _reject(404, "unknown_bot")
        if not self._authorized(headers.get("authorization", ""), token):
            return _reject(401, "unauthorized", ("WWW-Authenticate", 'Bearer realm="ibkr-watchdog"'))
        if "transfer-encoding" in headers:
            return _reject(400, "bad_request")  # only Content-Length bodies (no chunked uploads)
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            return _reject(400, "bad_request")
        if length < 0:
            return _reject(400, "bad_request")
        if length > MAX_BODY:
            return _reject(413, "too_large")
        body = await reader.readexactly(length) if length else b""
        parsed = _parse_body(body)
        if parsed is None:
            return _reject(400, "bad_request")
        if action == "stop":
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

    def _count(self, reason: str) -> None:
        if self._on_rejected is not None:
            self._on_rejected(reason)
        now = time.monotonic()
        if now - self._logged.get(reason, -LOG_EVERY) >= LOG_EVERY:
            self._logged[reason] = now
            # never the token or the request itself: only the kind of refusal
            log.warning("bot heartbeat refused (%s); further refusals of this kind counted quietly", reason)


def _parse_body(body: bytes) -> tuple[str, str] | None:
    """(status, note) from the optional JSON body; None when it is not what the API accepts."""
    if not body.strip():
        return "ok", ""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    status, note = data.get("status", "ok"), data.get("note", "")
    if status not in STATUSES or not isinstance(note, str):
        return None
    return status, note
