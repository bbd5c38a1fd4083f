"""JSON for state files: a key given twice is damage, never "the last one wins".

`json.loads` keeps the last of duplicate keys, so `{"state": "tripped", "state": "armed"}` would read
ARMED and a second `"dry_run": true` would make a kill a dry run. Every state file is read through
`loads` here; a duplicate raises ValueError (the caller treats the file as damaged: fail safe).
"""

from __future__ import annotations

import json
from typing import Any


class DuplicateKeyError(ValueError):
    """A JSON object names the same key twice."""


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKeyError(f"duplicate key {key!r}")
        out[key] = value
    return out


def loads(raw: str | bytes) -> Any:
    """`json.loads` that refuses duplicate keys at any depth; ValueError on bad JSON."""
    return json.loads(raw, object_pairs_hook=_unique)
