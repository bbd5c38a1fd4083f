"""Wire format: every encoder is consumed field-for-field by ibapi's decoder and ib_async's decoder."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ibapi.decoder import Decoder as IbapiDecoder
from ibapi.wrapper import EWrapper

from watchdog.sim import messages as m
from watchdog.sim.book import Book, Execution, SimOrder
from watchdog.sim.codec import FrameBuffer, FrameError, encode, fmt, parse_version_range, split_fields
from watchdog.sim.universe import Universe

U = Universe.builtin()
AAPL, ES, CALL = U.get("AAPL"), U.get("ES"), U.get(700000001)


def _book() -> Book:
    return Book(U, ("DU1",), 1e6, lambda: 1_760_000_000.0)


class CountingIter:
    """An iterator that remembers whether the decoder read every field."""

    def __init__(self, items: list[bytes]) -> None:
        self._it: Iterator[bytes] = iter(items)
        self.left = len(items)

    def __iter__(self) -> CountingIter:
        return self

    def __next__(self) -> bytes:
        v = next(self._it)
        self.left -= 1
        return v


class Sink(EWrapper):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattribute__(self, name: str) -> Any:
        attr = object.__getattribute__(self, name)
        if name[0].islower() and callable(attr) and name not in ("logAnswer",) and not name.startswith("_"):
            calls = object.__getattribute__(self, "calls")
            return lambda *a: calls.append((name, a))
        return attr


def ibapi_decode(fields: list[Any]) -> tuple[list[tuple[str, tuple[Any, ...]]], int]:
    """Decode with ibapi at v178 via its process* methods; returns callbacks and unread field count."""
    text = [fmt(f).encode() for f in fields]
    sink = Sink()
    dec = IbapiDecoder(sink, 178)
    info = dec.msgId2handleInfo[int(text[0])]
    it = CountingIter(text[1:])
    if info.processMeth is not None:
        info.processMeth(dec, it)
    else:
        dec.interpretWithSignature(text[1:], info)
        it.left = 0
    return [c for c in sink.calls if c[0] != "logAnswer"], it.left


def order(status: str = "Submitted") -> SimOrder:
    return SimOrder(12, 7, 1000123, "DU1", AAPL, "SELL", 25, "STP LMT", 101.5, 102.0, outside_rth=True,
                    order_ref="kill-1", status=status)  # fmt: skip


def execution() -> Execution:
    return Execution("0000e0d5.00000001.01.01", 12, 7, 1000123, "DU1", ES, "SLD", 2, 5190.25, 1_760_000_000.0,
                     2, 5190.25, "kill-1", "CME", 4.5, -120.0)  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "callback", "expected_len"),
    [
        (m.open_order(order()), "openOrder", 127),
        (m.order_status(order()), "orderStatus", 12),
        (m.execution(-1, execution()), "execDetails", 32),
        (m.commission_report(execution()), "commissionAndFeesReport", 8),
        (m.contract_details(3, ES), "contractDetails", None),
        (m.contract_details(4, CALL), "contractDetails", None),
        (m.error(5, 202, "Order Canceled - reason:"), "error", 6),
        (m.current_time(1_760_000_000), "currentTime", 3),
        (m.pnl(1, -2600.0, 10.5, 0), "pnl", 5),
        (m.pnl_single(1, 2, 3.5, 4, 5, 6), "pnlSingle", 7),
        (m.account_summary(1, "DU1", "NetLiquidation", "1.00", "USD"), "accountSummary", 7),
        (m.account_value("NetLiquidation", "1.00", "USD", "DU1"), "updateAccountValue", 6),
        (m.account_update_multi(2, "DU1", "", "NetLiquidation", "1", "USD"), "accountUpdateMulti", 8),
        (m.next_valid_id(7), "nextValidId", 3),
        (m.managed_accounts(["DU1", "DU2"]), "managedAccounts", 3),
    ],
)
def test_every_message_is_consumed_exactly_by_ibapi(
    fields: list[Any], callback: str, expected_len: int | None
) -> None:
    if expected_len is not None:
        assert len(fields) == expected_len
    calls, left = ibapi_decode(fields)
    assert [c[0] for c in calls] == [callback]
    assert left == 0


def test_position_and_portfolio_carry_ib_avg_cost() -> None:
    book = _book()
    pos = book.set_position("DU1", ES, -2, 5180.0)
    fields = m.position(pos)
    assert len(fields) == 16
    [(name, (account, contract, qty, avg_cost))], left = ibapi_decode(fields)
    assert (name, account, contract.exchange, float(qty), avg_cost, left) == (
        "position",
        "DU1",
        "",
        -2.0,
        259000.0,
        0,
    )
    port = m.portfolio_value(pos, 5200.0, book.market_value(pos), book.unrealized_of(pos))
    assert len(port) == 20
    [(_, args)], left = ibapi_decode(port)
    assert args[2:7] == (5200.0, -520000.0, 259000.0, -2000.0, 0.0) and left == 0


def test_open_order_decodes_the_fields_that_matter() -> None:
    [(_, (order_id, contract, o, state))], _ = ibapi_decode(m.open_order(order()))
    assert (order_id, contract.symbol, contract.exchange) == (12, "AAPL", "SMART")
    assert (o.action, float(o.totalQuantity), o.orderType, o.lmtPrice, o.auxPrice) == (
        "SELL",
        25.0,
        "STP LMT",
        101.5,
        102.0,
    )
    assert (o.clientId, o.permId, o.outsideRth, o.orderRef, o.account) == (7, 1000123, True, "kill-1", "DU1")
    assert state.status == "Submitted"


def test_numbers_are_written_as_ib_writes_them() -> None:
    assert [fmt(x) for x in (21, 21.0, 0.25, True, False, None, m.UNSET_DOUBLE, -3)] == [
        "21", "21", "0.25", "1", "0", "", "1.7976931348623157E308", "-3",
    ]  # fmt: skip


def test_frames_survive_arbitrary_chunking() -> None:
    data = encode([49, 1]) + encode([4, 2, -1, 2104, "ok", ""]) + encode(["x"])
    for cut in range(1, len(data)):
        buf = FrameBuffer.new()
        frames = buf.feed(data[:cut]) + buf.feed(data[cut:])
        assert [split_fields(f) for f in frames] == [["49", "1"], ["4", "2", "-1", "2104", "ok", ""], ["x"]]


def test_absurd_length_prefix_is_a_frame_error() -> None:
    with pytest.raises(FrameError):
        FrameBuffer.new().feed(struct.pack(">I", 1 << 30) + b"xx")


@given(st.binary(max_size=64))
def test_version_parser_never_crashes_on_garbage(data: bytes) -> None:
    result = parse_version_range(data)
    assert result is None or result[0] <= result[1]


def test_version_ranges_parse() -> None:
    assert parse_version_range(b"v157..178") == (157, 178, "")
    assert parse_version_range(b"v100..226 +PACEAPI") == (100, 226, "+PACEAPI")
    assert parse_version_range(b"v178") == (178, 178, "")
    assert parse_version_range(b"GET / HTTP") is None
