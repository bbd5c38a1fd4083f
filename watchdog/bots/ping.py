"""`ibkr-watchdog ping NAME`: one heartbeat (or a clean stop) to the dead-man receiver, for shell bots.

Exit 0 when the watchdog answered 204, 1 when it refused or could not be reached, 2 for a bad name,
URL or token file (the reason in one line on stderr; the token never printed).
"""

from __future__ import annotations

import http.client
import json
import sys
import urllib.error
import urllib.parse
import urllib.request

from watchdog.config.bots import BOT_NAME

__all__ = ["DEFAULT_URL", "ping", "ping_command", "read_token"]

DEFAULT_URL = "http://127.0.0.1:9110"
MAX_TOKEN_FILE = 4096  # bytes: a token is one short line


def ping(
    url: str,
    name: str,
    token: str,
    *,
    stop: bool = False,
    status: str = "ok",
    note: str = "",
    timeout: float = 5.0,
) -> int:
    """POST one heartbeat (or `/stop`); returns the HTTP status. Raises OSError when unreachable."""
    target = f"{url.rstrip('/')}/v1/heartbeat/{name}" + ("/stop" if stop else "")
    body = json.dumps({"status": status, "note": note} if note or status != "ok" else {}).encode()
    request = urllib.request.Request(
        target,
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def read_token(token_file: str) -> str:
    """The token in the file: one line of printable ASCII without spaces (as `bots.heartbeats[].token`
    must be), a trailing newline allowed. Raises ValueError with a reason that never shows the
    content (it is secret), OSError when the file cannot be read."""
    with open(token_file, "rb") as f:
        raw = f.read(MAX_TOKEN_FILE + 1)
    if len(raw) > MAX_TOKEN_FILE:
        raise ValueError(f"the token file {token_file} is over {MAX_TOKEN_FILE} bytes (content not shown)")
    token = raw.rstrip(b"\r\n")
    if not token:
        raise ValueError(f"the token file {token_file} is empty")
    if b"\n" in token or b"\r" in token:
        raise ValueError(
            f"the token file {token_file} holds more than one line; a token is one line (content not shown)"
        )
    if any(not 0x21 <= byte <= 0x7E for byte in token):
        raise ValueError(
            f"the token file {token_file} holds spaces, control or non-ASCII characters; a token is "
            "printable ASCII without spaces (content not shown)"
        )
    return token.decode("ascii")


def ping_command(
    name: str,
    url: str,
    token_file: str,
    *,
    stop: bool = False,
    status: str = "ok",
    note: str = "",
    timeout: float = 5.0,
) -> int:
    """Exit 0 heartbeat accepted, 1 refused or undelivered, 2 bad arguments or token file. Every
    problem is one line on stderr; the token never appears in it."""
    if not BOT_NAME.match(name):
        print(f"not a bot name: {name!r} (1-40 lower-case letters, digits, - or _)", file=sys.stderr)
        return 2
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        print(f"--url must be http://HOST:PORT (the watchdog's bots.listen), got: {url!r}", file=sys.stderr)
        return 2
    try:
        token = read_token(token_file)
    except OSError as exc:
        print(f"cannot read the token file {token_file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    try:
        code = ping(url, name, token, stop=stop, status=status, note=note, timeout=timeout)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        reason = str(getattr(exc, "reason", None) or exc or type(exc).__name__).replace(token, "<token>")
        print(f"no heartbeat delivered to {url}: {reason}", file=sys.stderr)
        return 1
    if code == 204:
        return 0
    why = {401: "wrong token", 404: f"no bot named {name!r} (or wrong URL)", 413: "note too long"}.get(
        code, ""
    )
    print(f"heartbeat refused: HTTP {code}{' (' + why + ')' if why else ''}", file=sys.stderr)
    return 1
