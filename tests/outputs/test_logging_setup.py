"""Log lines: one per record, secrets masked, and a slow writer never blocks the caller."""

from __future__ import annotations

import io
import json
import logging
import threading
import time

from watchdog.outputs import logging_setup as logsetup


def test_secrets_in_urls_and_query_strings_are_masked() -> None:
    text = "sending to tgram://123:ABCsecret@chat and https://h/x?token=s3cr3t&x=1"
    masked = logsetup.redact(text)
    assert "ABCsecret" not in masked
    assert "s3cr3t" not in masked
    assert "tgram://***@chat" in masked


def test_each_record_is_one_line_even_with_a_traceback() -> None:
    out = io.StringIO()
    logsetup.configure("INFO", stream=out)
    log = logging.getLogger("watchdog.test")
    try:
        raise ValueError("boom json://user:pw@host")
    except ValueError:
        log.exception("poll failed")
    log.info("second")
    logsetup.flush()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert "poll failed" in lines[0]
    assert "ValueError: boom" in lines[0]
    assert "pw@" not in lines[0]
    assert lines[1].endswith("watchdog.test: second")


def test_json_lines_parse() -> None:
    out = io.StringIO()
    logsetup.configure("INFO", as_json=True, stream=out)
    logging.getLogger("watchdog.test").warning("gateway %s", "down")
    logsetup.flush()
    record = json.loads(out.getvalue())
    assert record["level"] == "warning"
    assert record["msg"] == "gateway down"


class _BlockedStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def write(self, s: str) -> int:
        self.gate.wait(10)
        return super().write(s)


def test_a_stalled_writer_drops_and_counts_instead_of_blocking() -> None:
    stream = _BlockedStream()
    logsetup.configure("INFO", stream=stream, queue_size=2)
    log = logging.getLogger("watchdog.test")
    for i in range(50):  # would block on the first write if logging were synchronous
        log.info("line %d", i)
    handler = logsetup._Installed.handler
    assert handler is not None
    assert handler.dropped > 0
    stream.gate.set()
    deadline = time.monotonic() + 5
    while not handler.queue.empty() and time.monotonic() < deadline:  # the writer thread catches up
        time.sleep(0.01)
    log.info("after the stall")
    logsetup.flush()
    assert "earlier log records dropped" in stream.getvalue()


def test_a_newline_in_outside_text_cannot_forge_a_log_line() -> None:
    # code 202: ib_async keeps its own line for codes the gateway connection does not log itself
    out = io.StringIO()
    logsetup.configure("INFO", stream=out)
    forged = "Order rejected\n2026-11-30T10:00:00.000Z INFO    watchdog.kill: kill K1 flat\r\x1b[2K"
    logging.getLogger("ib_async.wrapper").error("Error 202, reqId 7: %s", forged)
    try:
        raise RuntimeError(forged)
    except RuntimeError:
        logging.getLogger("watchdog.test").exception("webhook answered %r", "x\u2028y")
    logsetup.flush()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith(
        "Error 202, reqId 7: Order rejected\\n2026-11-30T10:00:00.000Z INFO    watchdog.kill: "
        "kill K1 flat\\r\\x1b[2K"
    )
    assert "\x1b" not in out.getvalue() and "\u2028" not in out.getvalue()
    assert "RuntimeError: Order rejected | 2026" in lines[1]  # still one line
    assert "'x\\u2028y'" in lines[1]


def test_escaping_is_idempotent_and_keeps_tabs() -> None:
    once = logsetup.escape_control("a\tb\nc\x00d\x9be")
    assert once == "a\tb\\nc\\x00d\\x9be"
    assert logsetup.escape_control(once) == once


def test_cancel_confirmations_from_ib_async_are_not_errors() -> None:
    """Issue 14 #10: every cancel of the watchdog's own orders logged an ERROR line (202) from ib_async."""
    out = io.StringIO()
    logsetup.configure("INFO", as_json=True, stream=out)
    wrapper = logging.getLogger("ib_async.wrapper")
    wrapper.error("Error 202, reqId 17: Order Canceled - reason:")  # what ib_async's wrapper.error writes
    wrapper.error("Error 326, reqId -1: Unable to connect as the client id is already in use")
    logsetup.flush()
    levels = [(r["level"], r["msg"][:9]) for r in map(json.loads, out.getvalue().splitlines())]
    assert levels == [("info", "Error 202"), ("error", "Error 326")]  # a real error stays ERROR
