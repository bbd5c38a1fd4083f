"""sd_notify datagrams reach a real AF_UNIX socket; without systemd everything is a silent no-op."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from watchdog.outputs.systemd_notify import SdNotifier, watchdog_interval


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2.0)
    try:
        yield path, sock
    finally:
        sock.close()


def test_it_sends_ready_with_status_in_one_datagram(notify_socket: tuple[str, socket.socket]) -> None:
    path, sock = notify_socket
    assert SdNotifier(path).ready("watching 2 accounts")
    assert sock.recv(4096) == b"READY=1\nSTATUS=watching 2 accounts"


def test_it_sends_watchdog_status_and_stopping(notify_socket: tuple[str, socket.socket]) -> None:
    path, sock = notify_socket
    n = SdNotifier(path)
    assert n.watchdog() and n.status("gateway down\nsince 12:00") and n.stopping()
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert sock.recv(4096) == b"STATUS=gateway down since 12:00"  # a newline would start a bogus field
    assert sock.recv(4096) == b"STOPPING=1"


def test_reloading_carries_the_monotonic_timestamp(notify_socket: tuple[str, socket.socket]) -> None:
    path, sock = notify_socket
    assert SdNotifier(path, monotonic_ns=lambda: 5_000_123_456).reloading()
    assert sock.recv(4096) == b"RELOADING=1\nMONOTONIC_USEC=5000123"


def test_it_reads_the_socket_from_the_environment(
    notify_socket: tuple[str, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, sock = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    n = SdNotifier()
    assert n.enabled and n.ready()
    assert sock.recv(4096) == b"READY=1"


def test_it_uses_the_abstract_namespace_for_an_at_sign() -> None:
    name = f"@ibkr-watchdog-test-{os.getpid()}-{id(object())}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name[1:].encode())
        sock.settimeout(2.0)
        assert SdNotifier(name).watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"


def test_it_is_a_no_op_without_notify_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = SdNotifier()
    assert not n.enabled
    assert n.ready() is False and n.watchdog() is False and n.stopping() is False


def test_it_never_raises_when_systemd_is_gone(tmp_path: Path) -> None:
    n = SdNotifier(str(tmp_path / "absent.sock"))
    assert n.enabled
    assert n.ready() is False and n.watchdog() is False  # ENOENT swallowed twice, logged once


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "5000000"}, 5.0),
        ({"WATCHDOG_USEC": "5000000", "WATCHDOG_PID": "4242"}, 5.0),
        ({"WATCHDOG_USEC": "5000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
    ],
)
def test_watchdog_interval_follows_watchdog_usec_and_pid(env: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval(env, pid=4242) == expected
