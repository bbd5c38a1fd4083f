"""`ibkr-watchdog ping NAME`: one heartbeat (or a clean stop) to the dead-man receiver, for shell bots.

Exit 0 when the watchdog answered 204, 1 otherwise (the reason on stderr; the token never printed).
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

__all__ = ["DEFAULT_URL", "ping", "ping_command"]

DEFAULT_URL = "http://127.0.0.1:9110"


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
    try:
        token = Path(token_file).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        print(
            f"cannot read the token file {token_file}: {getattr(exc, 'strerror', None) or exc}",
            file=sys.stderr,
        )
        return 2
    if not token:
        print(f"the token file {token_file} is empty", file=sys.stderr)
        return 2
    try:
        code = ping(url, name, token, stop=stop, status=status, note=note, timeout=timeout)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        print(f"no heartbeat delivered to {url}: {reason}", file=sys.stderr)
        return 1
    if code == 204:
        return 0
    why = {401: "wrong token", 404: f"no bot named {name!r} (or wrong URL)", 413: "note too long"}.get(
        code, ""
    )
    print(f"heartbeat refused: HTTP {code}{' (' + why + ')' if why else ''}", file=sys.stderr)
    return 1
