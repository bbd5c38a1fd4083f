"""The `/metrics` endpoint: prometheus_client's WSGI app on a small threaded server that stops cleanly.

The server is bounded so that no local process can starve the daemon through it (issue 15: 1,020 idle
connections took every descriptor and the kill's latch and audit writes failed): at most
MAX_CONNECTIONS requests are handled at once, and while that many are open the server accepts no more
(later ones wait in the kernel's listen backlog, which costs the daemon no descriptor); a connection
that sends nothing for READ_TIMEOUT seconds is closed.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
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


class MetricsServerError(WatchdogError, OSError):
    """The metrics endpoint could not be served (port in use, bad address); the daemon runs on without it."""


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        # One access-log line per scrape would drown the journal.
        return


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a stuck scraper must not hold up shutdown
    block_on_close = False

    max_connections = MAX_CONNECTIONS
    read_timeout = READ_TIMEOUT

    def server_activate(self) -> None:
        self._slots = threading.BoundedSemaphore(self.max_connections)
        super().server_activate()

    def get_request(self) -> tuple[socket.socket, Any]:
        # Accept only with a free slot. Waiting here (not spinning) until one frees or the poll
        # interval passes; the OSError tells socketserver "nothing accepted this round".
        if not self._slots.acquire(timeout=_POLL_INTERVAL):
            raise OSError(errno.EBUSY, "metrics server at its connection limit")
        try:
            sock, address = super().get_request()
        except BaseException:
            self._slots.release()
            raise
        sock.settimeout(self.read_timeout)  # every read and write of this connection
        return sock, address

    def close_request(self, request: Any) -> None:
        try:
            super().close_request(request)
        finally:
            self._slots.release()

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
    ) -> None:
        self._app = make_wsgi_app(registry)
        self._bounds = {"max_connections": max_connections, "read_timeout": read_timeout}
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
