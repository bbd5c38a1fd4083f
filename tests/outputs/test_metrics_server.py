"""The /metrics server is bounded: a connection cap, idle connections closed, scrapes served after."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter

from watchdog.outputs.metrics_server import MetricsServer


def _handler_threads() -> int:
    return sum(1 for t in threading.enumerate() if "process_request_thread" in t.name)


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:g}s waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def server() -> Iterator[MetricsServer]:
    registry = CollectorRegistry()
    Counter("probe", "a series to serve", registry=registry).inc()
    s = MetricsServer(registry, max_connections=4, read_timeout=0.3)
    s.start("127.0.0.1", 0)
    try:
        yield s
    finally:
        s.stop()


def test_idle_connections_are_capped_then_closed_and_scrapes_go_on(server: MetricsServer) -> None:
    before = _handler_threads()
    idle = [socket.socket() for _ in range(12)]
    try:
        for s in idle:  # connects complete in the kernel (backlog) whether the server accepts or not
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", server.port))
        _wait(lambda: _handler_threads() - before == 4, 3, "the cap to fill")
        for _ in range(10):  # it stays at the cap: the other 8 wait in the kernel's backlog
            assert _handler_threads() - before <= 4
            time.sleep(0.02)
        # every idle connection is closed after read_timeout, in turn; then a scrape is answered
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as r:
            assert b"probe_total 1.0" in r.read()
    finally:
        for s in idle:
            s.close()
    _wait(lambda: _handler_threads() == before, 5, "the handlers to end")
