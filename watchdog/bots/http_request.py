"""Reading one heartbeat request from the bytes a connection delivered: pure, synchronous, bounded.

The receiver (`receiver.py`) feeds a connection's bytes here as they arrive; `Head.parse` reads the
request line and headers once they are complete (`\\r\\n\\r\\n`), `parse_body` the optional JSON body.
Nothing here touches a socket or a bot: the receiver decides what an accepted request does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

__all__ = [
    "MAX_BODY",
    "MAX_DEPTH",
    "MAX_HEADER",
    "PREFIX",
    "STATUSES",
    "Head",
    "Response",
    "parse_body",
    "reject",
]

MAX_HEADER = 8192  # bytes of request line + headers
MAX_BODY = 4096
MAX_DEPTH = 4  # nesting of the JSON body ({"status": …, "note": …} is 1): deeper is refused unparsed
PREFIX = "/v1/heartbeat/"
STATUSES = ("ok", "degraded")
_REASON_TEXT = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
}


@dataclass(frozen=True, slots=True)
class Response:
    code: int
    reason: str = ""  # the rejection reason (receiver.REJECT_REASONS), "" when accepted
    extra: tuple[tuple[str, str], ...] = ()

    def encode(self) -> bytes:
        head = f"HTTP/1.1 {self.code} {_REASON_TEXT.get(self.code, 'Error')}\r\nConnection: close\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in self.extra)
        if self.code == 204:
            return (head + "\r\n").encode()
        body = (self.reason or _REASON_TEXT.get(self.code, "error")).encode() + b"\n"
        head += f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n\r\n"
        return head.encode() + body


def reject(code: int, reason: str, *extra: tuple[str, str]) -> Response:
    return Response(code, reason, extra)


@dataclass(frozen=True, slots=True)
class Head:
    """A parsed request line and headers: which bot, heartbeat or stop, and how long the body is."""

    method: str
    name: str
    action: str  # "" (heartbeat) or "stop"
    authorization: str
    length: int

    @staticmethod
    def parse(head: bytes) -> Head | Response:
        """The head up to (excluding) the blank line; a Response when it is refused as it stands."""
        try:
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ")
        except ValueError:
            return reject(400, "bad_request")
        if not version.startswith("HTTP/1."):
            return reject(400, "bad_request")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep:
                return reject(400, "bad_request")
            headers[name.strip().lower()] = value.strip()
        path = target.split("?", 1)[0]
        if not path.startswith(PREFIX):
            return reject(404, "not_found")
        bot, _, action = path[len(PREFIX) :].partition("/")
        if action not in ("", "stop"):
            return reject(404, "not_found")
        if method != "POST":
            return reject(405, "method", ("Allow", "POST"))
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            length = -1
        if "transfer-encoding" in headers or length < 0:
            length = -1  # only Content-Length bodies (no chunked uploads); refused after the token check
        return Head(method, bot, action, headers.get("authorization", ""), length)


def _depth(body: bytes) -> int:
    """The deepest nesting of [ and { outside strings: checked before json.loads, which recurses."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif byte in b"]}":
            depth -= 1
    return deepest


def parse_body(body: bytes) -> tuple[str, str] | None:
    """(status, note) from the optional JSON body; None when it is not what the API accepts."""
    if not body.strip():
        return "ok", ""
    if _depth(body) > MAX_DEPTH:
        return None  # a deeply nested body would make json.loads recurse to RecursionError
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    status, note = data.get("status", "ok"), data.get("note", "")
    if status not in STATUSES or not isinstance(note, str):
        return None
    return status, note
