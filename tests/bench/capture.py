"""A local HTTP endpoint that records what apprise's json:// POSTs, with the receive time of each body."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass(frozen=True, slots=True)
class Received:
    at: float  # time.time() when the body was read
    body: dict[str, Any]


@dataclass
class CaptureServer:
    """`with CaptureServer() as cap:` → `cap.url("path")` for apprise; `cap.bodies()` thread-safely."""

    port: int = 0
    _received: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def url(self, path: str = "watchdog") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def titles(self) -> list[str]:
        return [str(r.body.get("title", "")) for r in self.received()]

    def __enter__(self) -> CaptureServer:
        cap = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                at = time.time()
                body = json.loads(raw or b"{}")
                with cap._lock:
                    cap._received.append(Received(at, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2)
