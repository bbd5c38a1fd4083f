"""A small systemd unit-file reader for the deploy tests: sections, repeated keys, continuations."""

from __future__ import annotations

from pathlib import Path

SYSTEMD_DIR = Path(__file__).resolve().parents[2] / "systemd"

Unit = dict[str, dict[str, list[str]]]


def read_unit(path: Path) -> Unit:
    """Parse a unit file; every key maps to all its values in order (systemd keys may repeat)."""
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith(("#", ";"))):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], {})
            continue
        if section is None or "=" not in line:
            raise ValueError(f"{path.name}: cannot parse {raw!r}")
        key, value = line.split("=", 1)
        section.setdefault(key.strip(), []).append(" ".join(value.split()))
    return unit


def last(unit: Unit, section: str, key: str) -> str | None:
    """The effective value of a single-valued key (the last assignment wins), or None."""
    values = unit.get(section, {}).get(key)
    return values[-1] if values else None
