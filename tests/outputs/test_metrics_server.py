"""The /metrics server is bounded: a connection cap, idle connections closed, scrapes served after."""

from __future__ import annotations

import contextlib
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


def _trickle(sock: socket.socket, stop: threading.Event, every: float) -> None:
    """A slowloris: a byte of a never-ending header every `every` seconds, under the per-read timeout."""
    with contextlib.suppress(OSError):
        sock.sendall(b"GET /metrics HTTP/1.1\r\n")
        while not stop.wait(every):
            sock.sendall(b"X")


def _closed_by_server(sock: socket.socket, timeout: float) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_a_byte_a_second_never_holds_a_slot_past_the_request_deadline() -> None:
    registry = CollectorRegistry()
    Counter("probe", "a series to serve", registry=registry).inc()
    # a long per-read timeout, so only the total deadline can end these connections
    s = MetricsServer(registry, max_connections=4, read_timeout=5.0, request_deadline=0.5)
    s.start("127.0.0.1", 0)
    stop = threading.Event()
    slow = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(4)]
    trickles = [threading.Thread(target=_trickle, args=(c, stop, 0.1), daemon=True) for c in slow]
    try:
        for t in trickles:
            t.start()
        t0 = time.monotonic()
        for c in slow:
            assert _closed_by_server(c, 3.0), "a trickling client kept its slot past the request deadline"
        assert time.monotonic() - t0 < 2.5
        with urllib.request.urlopen(f"http://127.0.0.1:{s.port}/metrics", timeout=5) as r:
            assert b"probe_total 1.0" in r.read()
        assert s._httpd is not None and s._httpd.expired >= 4
    finally:
        stop.set()
        for c in slow:
            c.close()
        s.stop()


def test_at_the_cap_a_scrape_evicts_the_oldest_idle_connection() -> None:
    registry = CollectorRegistry()
    Counter("probe", "a series to serve", registry=registry).inc()
    # deadlines far away: only the eviction can let the scrape in quickly
    s = MetricsServer(registry, max_connections=4, read_timeout=30.0, request_deadline=30.0)
    s.start("127.0.0.1", 0)
    before = _handler_threads()
    idle = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(4)]
    try:
        _wait(lambda: _handler_threads() - before == 4, 3, "the cap to fill")
        t0 = time.monotonic()
        with urllib.request.urlopen(f"http://127.0.0.1:{s.port}/metrics", timeout=10) as r:
            assert b"probe_total 1.0" in r.read()
        assert time.monotonic() - t0 < 3.0  # not the 30 s a deadline would take
        assert _closed_by_server(idle[0], 3.0)  # the oldest went
        assert s._httpd is not None and s._httpd.evicted == 1
    finally:
        for c in idle:
            c.close()
        s.stop()
