"""Logging for journald: one line per event, plain or JSON, with secrets redacted, never blocking.

Text from outside (gateway error texts, webhook answers, config values, exception messages) can
hold a newline, a carriage return or a terminal escape; every one is written escaped (`\\n`, `\\x1b`),
so no outside text can forge a log line of its own or repaint an operator's terminal.

Records go through a bounded queue to a writer thread: a stalled journald or a full pipe can
delay log lines, never the event loop and so never a kill. When the queue is full, records are
dropped and counted, and the next line that gets through says how many were lost.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import json
import logging
import logging.handlers
import queue
import re
import sys
import time
import traceback
from collections.abc import Iterable
from typing import TextIO

QUEUE_SIZE = 10_000

# apprise URLs and anything that looks like user:password@ or token= must never reach a log line.
_SECRET_PATTERNS = (
    re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^\s'\"]*@"),  # scheme://user:pass@host
    re.compile(r"(?P<key>(?:token|password|passwd|secret|apikey|api_key|key)=)[^&\s'\"]+", re.IGNORECASE),
)


# C0 and C1 controls, DEL, the Unicode line/paragraph separators and the bidi overrides (which can
# make a line read backwards on a terminal). Tab stays: it cannot start a line.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r"}


def escape_control(text: str) -> str:
    """`text` with every control character spelled out (`\\n`, `\\r`, `\\x1b`, `\\u2028`): one line."""
    return _CONTROL.sub(_escape_one, text)


def _escape_one(m: re.Match[str]) -> str:
    ch = m.group(0)
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


# Values the running daemon's config took from ${VAR}, file: or credential: (`mask_values`): masked
# whole in every log line and notification, e.g. a gateway host from ${VAR} in "cannot connect to …".
MASK_MIN = 4  # shorter values ("1", "on") are too common to mask and tell nothing
MASKED_KEPT = 1_000  # a bound: values of the last configs loaded
_masked: tuple[str, ...] = ()


def mask_values(values: Iterable[str]) -> None:
    """Add values to mask whole (longest first) in every log line and notification of this process."""
    global _masked
    merged = {*_masked, *(v for v in values if len(v) >= MASK_MIN)}
    _masked = tuple(sorted(merged, key=len, reverse=True))[:MASKED_KEPT]


def mask(text: str) -> str:
    """`text` with every value given to `mask_values` replaced by ***."""
    for value in _masked:
        if value in text:
            text = text.replace(value, "***")
    return text


def redact(text: str) -> str:
    """Mask credentials embedded in URLs and query strings, and the values given to `mask_values`."""
    text = _SECRET_PATTERNS[0].sub(lambda m: f"{m.group('scheme')}***@", text)
    return mask(_SECRET_PATTERNS[1].sub(lambda m: f"{m.group('key')}***", text))


class _Formatter(logging.Formatter):
    def __init__(self, *, as_json: bool) -> None:
        super().__init__()
        self.as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        message = escape_control(redact(record.getMessage()))
        if record.exc_info:
            message += " | " + _one_line(redact(self.formatException(record.exc_info)))
        if self.as_json:
            return json.dumps(
                {
                    "ts": round(record.created, 3),
                    "level": record.levelname.lower(),
                    "logger": record.name,
                    "msg": message,
                },
                ensure_ascii=False,
            )
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z {record.levelname:<7} {record.name}: {message}"


def _one_line(trace: str) -> str:
    """A traceback on one line: its own line breaks become ` | `, anything else is escaped."""
    return " | ".join(escape_control(line) for line in trace.rstrip().split("\n"))


class DroppingQueueHandler(logging.handlers.QueueHandler):
    """Never blocks the caller: a full queue drops the record and counts it."""

    def __init__(self, q: queue.Queue[logging.LogRecord]) -> None:
        super().__init__(q)
        self.dropped = 0

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # format here, in the caller's thread, so the writer thread gets plain text (one line)
        message = escape_control(record.getMessage())
        if record.exc_info:
            message += " | " + _one_line("".join(traceback.format_exception(*record.exc_info)))
        record = copy.copy(record)
        record.msg, record.args, record.exc_info, record.exc_text = message, None, None, None
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        if self.dropped:
            record.msg = f"[{self.dropped} earlier log records dropped: log writer too slow] {record.msg}"
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1
            return
        self.dropped = 0


class _Writer(logging.handlers.QueueListener):
    """The writer thread; stopping it is bounded even when the stream is stuck."""

    STOP_WAIT = 2.0

    def stop(self) -> None:
        thread = self._thread
        if thread is None:
            return
        # a stuck stream: the daemon thread is abandoned, exit must not hang on it
        with contextlib.suppress(queue.Full):
            self.queue.put(self._sentinel, timeout=self.STOP_WAIT)  # type: ignore[attr-defined]
        thread.join(self.STOP_WAIT)
        self._thread = None


class _Installed:
    """The handler and writer thread `configure` set up, so a second call replaces them cleanly."""

    handler: DroppingQueueHandler | None = None
    listener: _Writer | None = None

    @classmethod
    def remove(cls) -> None:
        if cls.handler is not None:
            logging.getLogger().removeHandler(cls.handler)
        if cls.listener is not None:
            cls.listener.stop()  # flushes what is queued
        cls.handler = cls.listener = None


def flush() -> None:
    """Stop the writer thread after it wrote everything queued (tests; process exit does it too)."""
    _Installed.remove()


def configure(
    level: str = "INFO", *, as_json: bool = False, stream: TextIO | None = None, queue_size: int = QUEUE_SIZE
) -> None:
    """Route every logger through a bounded queue to one stream (stderr → journald under systemd)."""
    _Installed.remove()
    root = logging.getLogger()
    writer = logging.StreamHandler(stream or sys.stderr)
    writer.setFormatter(_Formatter(as_json=as_json))
    records: queue.Queue[logging.LogRecord] = queue.Queue(queue_size)
    handler = DroppingQueueHandler(records)
    listener = _Writer(records, writer, respect_handler_level=False)
    listener.start()
    _Installed.handler, _Installed.listener = handler, listener
    root.addHandler(handler)
    root.setLevel(level)
    # ib_async logs every API error and many routine messages at INFO/ERROR; keep ours readable.
    logging.getLogger("ib_async").setLevel(max(logging.getLevelName(level), logging.WARNING))
    wrapper = logging.getLogger("ib_async.wrapper")
    if not any(isinstance(f, CancelConfirmations) for f in wrapper.filters):
        wrapper.addFilter(CancelConfirmations())
    quiet_scheduler()


class CancelConfirmations(logging.Filter):
    """ib_async logs error 202 ("Order Canceled") at ERROR, though it confirms a cancel — every kill's
    own cancels flooded `journalctl -p err`. It is logged at INFO instead; real errors stay ERROR."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and str(record.msg).startswith("Error 202,"):
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def quiet_scheduler() -> None:
    """APScheduler warns each time a job is skipped because its previous run is still going; with a
    heartbeat timeout longer than its interval that is normal, not news. Job errors still show."""
    logging.getLogger("apscheduler").setLevel(logging.ERROR)


atexit.register(_Installed.remove)
