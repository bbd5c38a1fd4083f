"""Attack 3: the CLI's state dir lookup."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_an_explicit_config_that_does_not_exist_is_not_found_not_invalid_on_disk(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from watchdog.cli import main

    missing = tmp_path / "rules.yml"  # a typo of rules.yaml
    assert main(["status", "--config", str(missing)]) == 2
    err = capsys.readouterr().err
    # seen: "rules.yml is invalid on disk (1 problem; first: ... No such file or directory); a running
    # daemon keeps its last good config. Using the default state dir /var/lib/ibkr-watchdog."
    assert "invalid on disk" not in err and "last good config" not in err, err
    assert "not found" in err or "does not exist" in err, err


def test_plan_with_a_state_dir_that_does_not_exist_is_a_usage_error_like_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from watchdog.cli import main

    typo = tmp_path / "stat"
    assert main(["status", "--state-dir", str(typo)]) == 2
    capsys.readouterr()
    # seen: exit 1, "no readiness plan in …/stat yet: the daemon writes one every
    # kill.readiness_interval (is it running?)" — for a directory that does not exist
    assert main(["plan", "--state-dir", str(typo)]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("seconds", ["nan", "-5"])
def test_kill_wait_refuses_a_wait_that_never_ends_or_never_starts(seconds: str) -> None:
    """`--wait nan`: wait_until's deadline check (monotonic() >= nan) is never true: it polls forever
    (a runner's `kill --wait "$T"` with an unset/garbled T). A negative wait gives up at once."""
    from watchdog.cli import _parser

    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(["kill", "--state-dir", "/tmp", "--wait", seconds])
    assert exc.value.code == 2
