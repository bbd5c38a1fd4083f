"""Logging for journald: one line per event, `key=value` or JSON, with secrets redacted."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import TextIO

# apprise URLs and anything that looks like user:password@ or token= must never reach a log line.
_SECRET_PATTERNS = (
    re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^\s'\"]*@"),  # scheme://user:pass@host
    re.compile(r"(?P<key>(?:token|password|passwd|secret|apikey|api_key|key)=)[^&\s'\"]+", re.IGNORECASE),
)


def redact(text: str) -> str:
    """Mask credentials embedded in URLs and query strings."""
    text = _SECRET_PATTERNS[0].sub(lambda m: f"{m.group('scheme')}***@", text)
    return _SECRET_PATTERNS[1].sub(lambda m: f"{m.group('key')}***", text)


class _Formatter(logging.Formatter):
    def __init__(self, *, as_json: bool) -> None:
        super().__init__()
        self.as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        message = redact(record.getMessage())
        if record.exc_info:
            message += " | " + redact(self.formatException(record.exc_info)).replace("\n", " | ")
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


def configure(level: str = "INFO", *, as_json: bool = False, stream: TextIO | None = None) -> None:
    """Route every logger to one stream handler (stderr → journald under systemd)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_ibkr_watchdog", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_Formatter(as_json=as_json))
    handler._ibkr_watchdog = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # ib_async logs every API error and many routine messages at INFO/ERROR; keep ours readable.
    logging.getLogger("ib_async").setLevel(max(logging.getLevelName(level), logging.WARNING))
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
