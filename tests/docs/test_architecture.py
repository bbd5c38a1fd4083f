"""docs/architecture.md stays the map of the tree: every module of `watchdog/` has its line there."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MAP = REPO / "docs" / "architecture.md"


def _module_rows(text: str) -> set[str]:
    """`watchdog/pkg/mod.py`, from a package heading followed by `| \\`mod.py\\` |` rows, or written whole."""
    found: set[str] = set(re.findall(r"`(watchdog/[\w/]+\.py)`", text))
    package = None
    for line in text.splitlines():
        heading = re.match(r"`(watchdog/[\w/]+)/`", line)
        if heading:
            package = heading.group(1)
            continue
        row = re.match(r"\|\s*`([\w]+\.py)`\s*\|", line)
        if row and package:
            found.add(f"{package}/{row.group(1)}")
    return found


def test_every_module_of_the_package_is_on_the_architecture_map() -> None:
    modules = {
        p.relative_to(REPO).as_posix()
        for p in (REPO / "watchdog").rglob("*.py")
        if p.name != "__init__.py" or p.parent.name == "watchdog"
    }
    mapped = _module_rows(MAP.read_text(encoding="utf-8"))
    assert sorted(modules - mapped) == [], "modules missing from docs/architecture.md"
    assert sorted(mapped - modules) == [], "docs/architecture.md names modules that do not exist"
