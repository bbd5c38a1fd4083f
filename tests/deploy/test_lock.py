"""requirements.lock: every runtime dependency pinned with hashes, fresh against pyproject.toml, and
the versions these tests run with (deploy/test-install.sh checks the production venv the same way)."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.deploy

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "requirements.lock"
# One pin: `name==version \` followed by its `--hash=sha256:...` lines.
PIN = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)\s*\\\n((?:\s+--hash=sha256:[0-9a-f]{64}\s*\\?\n)+)", re.M
)


def _pins() -> dict[str, tuple[str, int]]:
    """Canonical name → (version, number of hashes)."""
    text = LOCK.read_text(encoding="utf-8")
    found = PIN.findall(text)
    return {canonicalize_name(name): (version, hashes.count("--hash=")) for name, version, hashes in found}


def test_every_pin_of_the_lock_is_exact_and_hashed() -> None:
    text = LOCK.read_text(encoding="utf-8")
    requirement_lines = [line for line in text.splitlines() if re.match(r"^[A-Za-z0-9]", line)]
    pins = _pins()
    assert len(pins) >= 6
    assert len(requirement_lines) == len(pins), "a requirement line without ==version and hashes"
    assert all(count >= 1 for _, count in pins.values())
    assert "--index-url" not in text and "--find-links" not in text, "this machine's pip settings leaked"


def test_the_lock_pins_every_runtime_dependency_within_its_range() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = _pins()
    stale = []
    for spec in project["dependencies"]:
        req = Requirement(spec)
        pinned = pins.get(canonicalize_name(req.name))
        if pinned is None or not req.specifier.contains(pinned[0], prereleases=True):
            stale.append(f"{spec}: locked {pinned[0] if pinned else 'nothing'}")
    assert not stale, f"requirements.lock is stale, run `make lock`: {stale}"


def test_the_tests_run_with_exactly_the_locked_versions() -> None:
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}
    wrong = {
        name: (version, installed.get(name))
        for name, (version, _) in _pins().items()
        if installed.get(name) != version
    }
    assert not wrong, f"locked vs installed (rebuild the venv: make .venv/.installed-test): {wrong}"
