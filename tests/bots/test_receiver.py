"""The heartbeat receiver over real loopback HTTP: what it accepts, what it refuses, and its bounds."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from pathlib import Path

import pytest

from tests.bots.conftest import ALPHA_TOKEN, BETA_TOKEN, Served, request, serve
from tests.daemon.conftest import until
from watchdog.bots.listener import ACCEPT_RATE, WINDOW

BEAT = "/v1/heartbeat/alpha"


async def test_a_heartbeat_with_the_right_token_is_accepted_and_recorded(served: Served) -> None:
    code, raw = await request(served.port, BEAT, token=ALPHA_TOKEN)
    assert code == 204, raw
    status = served.registry.get("alpha")
    assert status is not None and status.last_seen == served.clock.now and status.status == "ok"
    assert served.rejected == []


async def test_the_optional_body_keeps_status_and_note(served: Served) -> None:
    body = json.dumps({"status": "degraded", "note": "feed lagging\x07 by 3 s"}).encode()
    code, _ = await request(served.port, BEAT, token=ALPHA_TOKEN, body=body)
    assert code == 204
    status = served.registry.get("alpha")
    assert status is not None and status.status == "degraded" and status.note == "feed lagging by 3 s"


async def test_a_clean_stop_disarms_until_the_next_heartbeat(served: Served) -> None:
    assert (await request(served.port, BEAT, token=ALPHA_TOKEN))[0] == 204
    assert (await request(served.port, BEAT + "/stop", token=ALPHA_TOKEN))[0] == 204
    status = served.registry.get("alpha")
    assert status is not None and status.last_seen is None and status.stopped_at == served.clock.now
    served.clock.now += 10
    assert (await request(served.port, BEAT, token=ALPHA_TOKEN))[0] == 204
    status = served.registry.get("alpha")
    assert status is not None and status.last_seen == served.clock.now and status.stopped_at is None


@pytest.mark.parametrize(
    "token",
    [None, "wrong-token-0123456789abcdef", BETA_TOKEN, ALPHA_TOKEN[:-1], ALPHA_TOKEN + "x"],
    ids=["missing", "wrong", "another-bots", "prefix", "longer"],
)
async def test_a_wrong_or_missing_token_is_refused_counted_and_has_no_effect(
    served: Served, token: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    code, raw = await request(served.port, BEAT, token=token)
    assert code == 401 and b"WWW-Authenticate: Bearer" in raw
    assert served.rejected == ["unauthorized"]
    status = served.registry.get("alpha")
    assert status is not None and status.last_seen is None and status.stopped_at is None
    # a wrong token on /stop cannot disarm either
    assert (await request(served.port, BEAT + "/stop", token=token))[0] == 401
    assert served.registry.get("alpha") == status
    for secret in (ALPHA_TOKEN, BETA_TOKEN, "wrong-token"):
        assert secret not in caplog.text


async def test_the_scheme_must_be_bearer(served: Served) -> None:
    code, _ = await request(served.port, BEAT, headers=(f"Authorization: Basic {ALPHA_TOKEN}",))
    assert code == 401


@pytest.mark.parametrize(
    ("method", "path", "code", "reason"),
    [
        ("POST", "/v1/heartbeat/gamma", 404, "unknown_bot"),
        ("POST", "/v1/heartbeat/alpha/restart", 404, "not_found"),
        ("POST", "/metrics", 404, "not_found"),
        ("GET", BEAT, 405, "method"),
        ("DELETE", BEAT, 405, "method"),
    ],
)
async def test_other_requests_are_refused_without_effect(
    served: Served, method: str, path: str, code: int, reason: str
) -> None:
    got, raw = await request(served.port, path, token=ALPHA_TOKEN, method=method)
    assert got == code, raw
    assert served.rejected == [reason]
    assert all(s.last_seen is None for s in served.registry.statuses().values())


async def test_a_body_over_the_cap_is_refused_with_413(served: Served) -> None:
    body = json.dumps({"note": "x" * 5000}).encode()
    code, _ = await request(served.port, BEAT, token=ALPHA_TOKEN, body=body)
    assert code == 413 and served.rejected == ["too_large"]
    assert served.registry.get("alpha").last_seen is None  # type: ignore[union-attr]


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"status": "fine"}', b'{"note": 5}'], ids=str)
async def test_a_malformed_body_is_a_400_without_effect(served: Served, body: bytes) -> None:
    code, _ = await request(served.port, BEAT, token=ALPHA_TOKEN, body=body)
    assert code == 400 and served.rejected == ["bad_request"]
    assert served.registry.get("alpha").last_seen is None  # type: ignore[union-attr]


async def test_oversized_headers_are_refused(served: Served) -> None:
    code, _ = await request(served.port, BEAT, token=ALPHA_TOKEN, headers=("X-Pad: " + "a" * 10_000,))
    assert code == 431 and served.rejected == ["too_large"]


async def test_a_slow_client_is_cut_off_after_the_read_timeout(tmp_path: Path) -> None:
    s = await serve(tmp_path, read_timeout=0.3)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
        writer.write(b"POST /v1/heartbeat/alpha HTTP/1.1\r\n")  # and never the rest
        raw = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert raw.startswith(b"HTTP/1.1 408") and s.rejected == ["timeout"]
        assert s.receiver.open_connections == 0
    finally:
        await asyncio.wait_for(s.receiver.stop(), 5)


async def test_a_new_connection_over_the_cap_evicts_the_oldest_so_idle_ones_cannot_lock_bots_out(
    tmp_path: Path,
) -> None:
    s = await serve(tmp_path, max_connections=4, read_timeout=30.0)
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        for _ in range(4):
            idle.append(await asyncio.open_connection("127.0.0.1", s.port))
            await until(lambda: s.receiver.open_connections == len(idle), 5, "the connection", every=0.01)
        assert (await request(s.port, BEAT, token=ALPHA_TOKEN))[0] == 204
        assert s.rejected == ["overloaded"] and s.registry.get("alpha").last_seen is not None  # type: ignore[union-attr]
        try:  # the oldest was evicted: reset (or closed) without an answer
            answer = await asyncio.wait_for(idle[0][0].read(), 5)
        except ConnectionError:
            answer = b""
        assert answer == b""
        assert s.receiver.open_connections == 3
    finally:
        for _, w in idle:
            w.close()
        await asyncio.wait_for(s.receiver.stop(), 5)


async def test_stop_closes_idle_connections(tmp_path: Path) -> None:
    s = await serve(tmp_path, read_timeout=30.0)
    reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
    await until(lambda: s.receiver.open_connections == 1, 5, "an open connection", every=0.01)
    await asyncio.wait_for(s.receiver.stop(), 5)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


async def test_a_request_cut_off_midway_is_counted_and_a_bare_probe_is_not(served: Served) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.close()  # a port probe: connect, close
    _, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(b"POST /v1/heartbeat/alpha HTTP/1.1\r\nAuthoriz")
    await writer.drain()
    writer.close()
    await until(lambda: served.receiver.open_connections == 0 and bool(served.rejected), 5, "both handled")
    assert served.rejected == ["bad_request"]
    assert served.registry.get("alpha").last_seen is None  # type: ignore[union-attr]


async def test_no_malformed_or_unauthorized_request_ever_changes_anything(served: Served) -> None:
    """A request can only postpone a kill, never cause one: 300 mangled requests without the token
    (seeded, so a failure replays) leave every bot as it was, and the listener serves on."""
    rng = random.Random(16)
    valid = (
        b"POST /v1/heartbeat/alpha HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong-token-0123456789ab\r\n"
        b'Content-Length: 17\r\n\r\n{"status": "ok"}\n'
    )
    before = dict(served.registry.statuses())
    codes: set[int] = set()
    for _ in range(300):
        data = bytearray(valid)
        for _ in range(rng.randint(1, 8)):  # flip, drop or insert bytes anywhere
            at = rng.randrange(len(data))
            op = rng.random()
            if op < 0.4:
                data[at] = rng.randrange(256)
            elif op < 0.7:
                del data[at]
            else:
                data.insert(at, rng.choice(b"/: \r\n\x00aZ9{}"))
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        writer.write(bytes(data))
        writer.write_eof()
        try:
            raw = await asyncio.wait_for(reader.read(), 5)
        except ConnectionError:
            raw = b""
        writer.close()
        if raw:
            codes.add(int(raw.split(b" ", 2)[1]))
    assert codes <= {400, 401, 404, 405, 408, 413, 431}, codes
    assert {400, 401, 404} <= codes, codes  # the mangling reached the parser, the router and the token check
    assert dict(served.registry.statuses()) == before
    assert (await request(served.port, BEAT, token=ALPHA_TOKEN))[0] == 204  # still serving


async def test_a_flood_evicts_connections_that_sent_nothing_before_one_that_is_mid_request(
    tmp_path: Path,
) -> None:
    """Fairness under a connection flood: the bot that has started its request keeps its slot while
    connect-only clients evict each other, and every eviction is recorded as pressure."""
    s = await serve(tmp_path, max_connections=4, read_timeout=30.0)
    pressure: list[float] = []
    s.receiver._on_pressure = lambda: pressure.append(1.0)
    idle: list[asyncio.StreamWriter] = []
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", s.port)  # the bot, oldest
        writer.write(b"POST /v1/heartbeat/alpha HTTP/1.1\r\nHost: x\r\n")
        await writer.drain()
        await until(lambda: len(s.receiver._partial) == 1, 5, "the bot's first bytes", every=0.01)
        for _ in range(12):  # the flood: connect and send nothing
            idle.append((await asyncio.open_connection("127.0.0.1", s.port))[1])
        await until(lambda: s.receiver.evicted == 9, 5, "nine evictions", every=0.01)
        writer.write(f"Authorization: Bearer {ALPHA_TOKEN}\r\nContent-Length: 0\r\n\r\n".encode())
        raw = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert raw.startswith(b"HTTP/1.1 204"), raw
        assert s.registry.get("alpha").last_seen is not None  # type: ignore[union-attr]
        assert len(pressure) == 9 and s.receiver.last_pressure is not None
        assert s.rejected == ["overloaded"] * 9
    finally:
        for w in idle:
            w.close()
        await asyncio.wait_for(s.receiver.stop(), 5)


async def test_a_deeply_nested_body_is_a_400_and_the_receiver_serves_on(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    body = b'{"note": ' + b"[" * 2040 + b"]" * 2040 + b"}"  # within MAX_BODY; json.loads would recurse
    assert len(body) < 4096
    code, _ = await request(served.port, BEAT, token=ALPHA_TOKEN, body=body)
    assert code == 400 and served.rejected == ["bad_request"]
    assert (await request(served.port, BEAT, token=ALPHA_TOKEN))[0] == 204
    assert "exception" not in caplog.text.lower()


async def test_a_fault_inside_the_receiver_is_answered_500_counted_and_logged_in_one_line(
    served: Served, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(name: str, **_: object) -> None:
        raise RuntimeError(f"disk on fire {ALPHA_TOKEN}")

    monkeypatch.setattr(served.registry, "beat", broken)
    code, _ = await request(served.port, BEAT, token=ALPHA_TOKEN)
    assert code == 500 and served.rejected == ["internal_error"]
    (line,) = [r for r in caplog.records if "receiver fault" in r.getMessage()]
    assert "RuntimeError" in line.getMessage() and line.exc_info is None
    assert ALPHA_TOKEN not in caplog.text
    monkeypatch.undo()
    assert (await request(served.port, BEAT, token=ALPHA_TOKEN))[0] == 204  # serves on
    assert served.receiver.open_connections == 0


async def test_a_burst_of_connections_over_the_accept_budget_pauses_accepting_and_is_pressure(
    tmp_path: Path,
) -> None:
    """Over ACCEPT_RATE a second the listener stops reading its socket until the next window (the
    kernel's backlog waits, the loop does not work for the flood), records it as pressure, and then
    serves again."""
    s = await serve(tmp_path, max_connections=1000, read_timeout=30.0)
    burst = int(ACCEPT_RATE * WINDOW) * 3
    opened: list[asyncio.StreamWriter] = []
    try:
        for _ in range(burst):
            opened.append((await asyncio.wait_for(asyncio.open_connection("127.0.0.1", s.port), 5))[1])
        await until(lambda: s.receiver.paused >= 1, 5, "accepting to pause")
        assert s.receiver.last_pressure is not None and s.receiver.evicted == 0
        await until(lambda: s.receiver.open_connections == burst, 5, "the waiting connections accepted")
    finally:
        for w in opened:
            w.close()
    await until(lambda: s.receiver.open_connections == 0, 5, "the burst closed")
    try:
        assert (await request(s.port, BEAT, token=ALPHA_TOKEN))[0] == 204
    finally:
        await asyncio.wait_for(s.receiver.stop(), 5)
