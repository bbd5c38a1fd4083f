"""Hostile or odd input files: every one is a clean ConfigError (exit 2), never a crash or a hang."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watchdog.commands.check import check_command
from watchdog.config.input_file import MAX_CONFIG_BYTES
from watchdog.config.load import load_config
from watchdog.config.schema import Config, NotificationsConfig
from watchdog.errors import ConfigError
from watchdog.outputs.targets import load_targets

REPO_RULES = Path(__file__).resolve().parents[2] / "rules.yaml"
TEXT = REPO_RULES.read_text()
PORT_LINE = "  port: 4002 "
ATTEMPTS_LINE = "  max_attempts: 3 "
assert PORT_LINE in TEXT and ATTEMPTS_LINE in TEXT


def _with(line: str, value: str) -> str:
    return TEXT.replace(line, line.split(":")[0] + ": " + value + " ", 1)


def _in_thread(fn: object, timeout: float = 5.0) -> object:
    """Run `fn` in a daemon thread so a hanging open() fails the test instead of hanging pytest."""
    out: list[object] = []

    def run() -> None:
        try:
            out.append(fn())  # type: ignore[operator]
        except BaseException as exc:  # handed back to the test
            out.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    assert out, f"still blocked after {timeout:g}s"
    return out[0]


def test_an_integer_of_5000_digits_is_a_config_error_and_check_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(_with(PORT_LINE, "9" * 5000))
    with pytest.raises(ConfigError, match=r"rules.yaml:13: gateway.port: number too long \(5000 digits") as e:
        load_config(path)
    assert len(e.value.problems) == 1  # no second "must be a whole number" about the dropped value
    assert check_command(str(path)) == 2
    err = capsys.readouterr().err
    assert "number too long" in err and "nothing was changed" in err
    assert len(err) < 2000  # the number itself is not echoed


def test_a_long_integer_from_an_environment_variable_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(_with(PORT_LINE, "${GW_PORT}"))
    with pytest.raises(ConfigError, match=r"gateway.port"):
        load_config(path, environ={"GW_PORT": "7" * 5000})


ODD = st.one_of(
    st.integers(min_value=31, max_value=6000).map(lambda n: "9" * n),
    st.integers(min_value=31, max_value=6000).map(lambda n: "-" + "1" * n),
    st.integers(min_value=1, max_value=6000).map(lambda n: "1" * n + ".5"),
    st.integers(min_value=1, max_value=400).map(lambda n: "0." + "3" * n),
    st.sampled_from(["0x10", "1_000", "1e400", "-.inf", ".NaN", "+0", "-0", "00", "1.", ".5", "!!int 3"]),
    st.sampled_from(['"\\x1b[31m"', '"a\\nb"', '"\\0"', "'\u202e'", '"\\uFFFF"', "[[[[]]]]", "{a: {}}"]),
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\n\r"), max_size=40).map(repr),
)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("odd") / "rules.yaml"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=ODD, where=st.sampled_from([PORT_LINE, ATTEMPTS_LINE]))
def test_odd_scalars_load_or_raise_config_error(scratch: Path, value: str, where: str) -> None:
    scratch.write_text(_with(where, value))
    error: ConfigError | None = None
    try:
        config = load_config(scratch)
    except ConfigError as exc:
        error = exc
    if error is None:
        assert isinstance(config, Config)
    else:
        assert error.problems
        assert all(len(str(p)) < 1000 for p in error.problems)


def test_a_fifo_in_place_of_rules_yaml_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    os.mkfifo(path)  # no writer: a plain open() would block for ever
    result = _in_thread(lambda: load_config(path))
    assert isinstance(result, ConfigError)
    assert str(result.problems[0]) == f"{path}: not a regular file (a FIFO); refused"


def test_a_config_over_one_mebibyte_is_refused_with_its_size(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(TEXT + "#" * MAX_CONFIG_BYTES)
    size = path.stat().st_size
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value.problems[0]) == (
        f"{path}: too large ({size} bytes; the limit is {MAX_CONFIG_BYTES} bytes)"
    )


def test_a_fifo_or_a_huge_urls_file_is_a_problem_not_a_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "urls.fifo"
    os.mkfifo(fifo)
    result = _in_thread(lambda: load_targets(NotificationsConfig(urls_file=str(fifo))))
    assert result == ([], [f"{fifo}: notification URLs: not a regular file (a FIFO); refused"])
    big = tmp_path / "urls.txt"
    big.write_text("json://127.0.0.1:1/x\n" * (MAX_CONFIG_BYTES // 10))
    targets, problems = load_targets(NotificationsConfig(urls_file=str(big)))
    assert targets == [] and "too large" in problems[0] and str(big) in problems[0]
