"""The `/metrics` endpoint: prometheus_client's WSGI app on a small threaded server that stops cleanly.

The server is bounded so that no local process can starve the daemon through it (issue 15: 1,020 idle
connections took every descriptor and the kill's latch and audit writes failed):

- at most MAX_CONNECTIONS connections are handled at once (2 x MAX_CONNECTIONS descriptors at worst,
  counting evicted ones that are closing); later ones wait in the kernel's listen backlog, which
  costs the daemon no descriptor;
- a connection must send its whole request (line and headers) within REQUEST_DEADLINE seconds of
  being accepted, and is done within RESPONSE_DEADLINE: the per-read READ_TIMEOUT alone let a client
  sending a byte a second hold its slot for ever (16 of them held every slot);
- at the cap, a new connection evicts the oldest one that has not sent its request yet, so idle or
  slow clients cannot starve a scrape (only connections being answered, which end quickly, make a
  new one wait).

A deadline or an eviction shuts the socket down (the handler's blocked read returns at once); the
server thread checks the deadlines every _POLL_INTERVAL.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import threading
import time
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from watchdog.errors import WatchdogError

log = logging.getLogger(__name__)

# serve_forever checks for shutdown this often; stop() blocks at most this long.
_POLL_INTERVAL = 0.1
MAX_CONNECTIONS = 16  # a Prometheus server scrapes with one; a few people with curl add a few
READ_TIMEOUT = 5.0  # seconds a connection may stay silent (request line, headers) before it is closed
REQUEST_DEADLINE = 5.0  # seconds from accept to the end of the request headers
RESPONSE_DEADLINE = 15.0  # seconds from accept to the end of the whole exchange


@dataclass(slots=True)
class _Connection:
    sock: socket.socket
    accepted: float  # time.monotonic()
    requested: bool = False  # the request line and headers are in
    cut: bool = False  # shut down by a deadline or an eviction; closing

    def cut_off(self) -> None:
        if not self.cut:
            self.cut = True
            with contextlib.suppress(OSError):  # wakes the handler's read; its thread closes the socket
                self.sock.shutdown(socket.SHUT_RDWR)


class MetricsServerError(WatchdogError, OSError):
    """The metrics endpoint could not be served (port in use, bad address); the daemon runs on without it."""


class _QuietHandler(WSGIRequestHandler):
    server: _Server

    def parse_request(self) -> bool:
        ok = super().parse_request()  # reads the headers
        self.server.request_received(self.connection)
        return ok

    def log_message(self, format: str, *args: Any) -> None:
        # One access-log line per scrape would drown the journal.
        return


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a stuck scraper must not hold up shutdown
    block_on_close = False

    max_connections = MAX_CONNECTIONS
    read_timeout = READ_TIMEOUT
    request_deadline = REQUEST_DEADLINE
    response_deadline = RESPONSE_DEADLINE

    def server_activate(self) -> None:
        self._conns: dict[int, _Connection] = {}  # id(socket) → its connection, in accept order
        self._changed = threading.Condition()
        self.evicted = 0  # connections cut at the cap (for tests and a debug line)
        self.expired = 0  # connections cut by a deadline
        super().server_activate()

    def _live(self) -> list[_Connection]:
        return [c for c in self._conns.values() if not c.cut]

    def get_request(self) -> tuple[socket.socket, Any]:
        # At the cap: evict the oldest connection that has not sent its request. With none (all
        # are being answered), wait for one to end, a poll interval at most; the OSError tells
        # socketserver "nothing accepted this round".
        with self._changed:
            if len(self._live()) >= self.max_connections:
                idle = [c for c in self._live() if not c.requested]
                if idle:
                    idle[0].cut_off()
                    self.evicted += 1
                    log.debug("metrics connection cap reached: evicted the oldest idle connection")
                elif not self._changed.wait_for(
                    lambda: len(self._live()) < self.max_connections, timeout=_POLL_INTERVAL
                ):
                    raise OSError(errno.EBUSY, "metrics server at its connection limit")
            # evicted connections still closing count too: at most twice the cap in descriptors
            if len(self._conns) >= 2 * self.max_connections and not self._changed.wait_for(
                lambda: len(self._conns) < 2 * self.max_connections, timeout=_POLL_INTERVAL
            ):
                raise OSError(errno.EBUSY, "metrics server at its connection limit")
        sock, address = super().get_request()
        sock.settimeout(self.read_timeout)  # every read and write of this connection
        with self._changed:
            self._conns[id(sock)] = _Connection(sock, time.monotonic())
        return sock, address

    def request_received(self, sock: socket.socket) -> None:
        with self._changed:
            conn = self._conns.get(id(sock))
            if conn is not None:
                conn.requested = True

    def service_actions(self) -> None:
        """Run by serve_forever on its thread at least every poll interval: enforce the deadlines."""
        now = time.monotonic()
        with self._changed:
            for c in self._live():
                limit = self.response_deadline if c.requested else self.request_deadline
                if now - c.accepted > limit:
                    c.cut_off()
                    self.expired += 1

    def close_request(self, request: Any) -> None:
        try:
            super().close_request(request)
        finally:
            with self._changed:
                self._conns.pop(id(request), None)
                self._changed.notify_all()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A scraper hanging up mid-response is routine; the stdlib would print a traceback to stderr.
        log.debug("metrics request from %s failed", client_address, exc_info=True)


class _Server6(_Server):
    address_family = socket.AF_INET6


class MetricsServer:
    """One listening socket and one thread serving the registry; `stop()` closes both."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        max_connections: int = MAX_CONNECTIONS,
        read_timeout: float = READ_TIMEOUT,
        request_deadline: float = REQUEST_DEADLINE,
        response_deadline: float = RESPONSE_DEADLINE,
    ) -> None:
        self._app = make_wsgi_app(registry)
        self._bounds = {
            "max_connections": max_connections,
            "read_timeout": read_timeout,
            "request_deadline": request_deadline,
            "response_deadline": response_deadline,
        }
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def start(self, host: str, port: int) -> None:
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
            base = _Server6 if family == socket.AF_INET6 else _Server
            cls: type[_Server] = type("BoundedServer", (base,), dict(self._bounds))
            httpd: _Server = make_server(host, port, self._app, server_class=cls, handler_class=_QuietHandler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                why = "address already in use (another ibkr-watchdog instance? set metrics.port)"
            else:
                why = exc.strerror or str(exc)
            raise MetricsServerError(f"cannot serve metrics on {host}:{port}: {why}") from exc
        self._httpd = httpd
        self.port = int(httpd.server_address[1])
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL},
            name="metrics-http",
            daemon=True,
        )
        self._thread.start()
        log.info("serving metrics on http://%s:%d/metrics", host, self.port)

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        thread, self._thread = self._thread, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=2.0)
