"""Every duration is bounded (issue 15, review item E): `for: 999…9s` read as "for inf s" and never fired.
A week at most, inf and nan refused, each a clean one-line error naming file:line:key."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watchdog.config.field_types import MAX_DURATION, parse_duration
from watchdog.config.load import load_config
from watchdog.config.schema import PollingConfig
from watchdog.errors import ConfigError

REPO_RULES = Path(__file__).resolve().parents[2] / "rules.yaml"
TEXT = REPO_RULES.read_text()
# (the line as written in rules.yaml, its key path, its 1-based line number)
SITES = [
    ("  pnl: 1s ", "polling.pnl"),
    ("  verify_timeout: 10s ", "kill.verify_timeout"),
    ("    for: 2s ", "rules[0].for"),
]
for _line, _ in SITES:
    assert _line in TEXT, _line


def _line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


def _with(line: str, value: str) -> str:
    return TEXT.replace(line, line.split(":")[0] + ": " + value + " ", 1)


@pytest.mark.parametrize(("line", "key"), SITES)
@pytest.mark.parametrize("value", ["9" * 5000 + "s", "99999999999999999999999999d", "8d", "604801s"])
def test_a_duration_beyond_a_week_is_an_error_naming_file_line_key(
    tmp_path: Path, line: str, key: str, value: str
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(_with(line, value))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    [problem] = e.value.problems
    text = str(problem)
    assert text.startswith(f"{path}:{_line_of(TEXT, line)}: {key}: must be a duration of at most 7d"), text
    assert len(text) < 300  # a 5,000-digit value is not echoed whole


def test_a_week_itself_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(_with("  verify_timeout: 10s ", "7d"))
    assert load_config(path).kill.verify_timeout == MAX_DURATION


@pytest.mark.parametrize("value", [math.inf, math.nan, -math.inf, MAX_DURATION * 2])
def test_inf_and_nan_are_refused_from_python_too(value: float) -> None:
    with pytest.raises(ValueError, match=r"at most 7d|greater than 0"):
        PollingConfig(pnl=value)


@given(
    digits=st.text("0123456789", min_size=1, max_size=6000), unit=st.sampled_from(["ms", "s", "m", "h", "d"])
)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_duration_text_is_finite_and_at_most_a_week_or_refused(digits: str, unit: str) -> None:
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    if int(digits.lstrip("0") or "0", 10) * scale > MAX_DURATION if len(digits.lstrip("0")) < 20 else True:
        with pytest.raises(ValueError, match=r"^must be a duration of at most 7d \(a week\), got: .{1,80}$"):
            parse_duration(digits + unit)
        return
    seconds = parse_duration(digits + unit)
    assert math.isfinite(seconds) and 0 <= seconds <= MAX_DURATION


def test_a_condition_duration_is_bounded_too(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    rule = "  - name: stale\n    when: data_age > " + "9" * 20 + "s\n    action: alert\n"
    path.write_text(TEXT + "\n" if not TEXT.endswith("\n") else TEXT)
    text = path.read_text()
    text = text.replace("\nrules:\n", "\nrules:\n" + rule, 1)
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"at most 7d"):
        load_config(path)
