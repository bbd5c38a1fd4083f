"""The rules.yaml loader: every kind of problem, with its line, all at once."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from watchdog.config.load import load_config
from watchdog.config.schema import Config
from watchdog.errors import ConfigError
from watchdog.model import Action, Severity

REPO_RULES = Path(__file__).resolve().parents[2] / "rules.yaml"

BASE = """\
gateway:
  port: 4002
  client_id: 99
  paper: true
  accounts: [DU1, DU2]
rules:
  - name: loss
    when: "daily_pnl <= -2500"
"""


def write(tmp_path: Path, text: str, name: str = "rules.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    p.chmod(0o600)
    return p


def problems(tmp_path: Path, text: str, **kw: object) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(path, environ={}, **kw)  # type: ignore[arg-type]
    # every problem reads `FILE:LINE: path: message`; strip the directory for short assertions
    return [str(p).replace(str(tmp_path) + "/", "") for p in e.value.problems]


def test_the_repository_example_loads_cleanly() -> None:
    config = load_config(REPO_RULES, environ={})
    assert isinstance(config, Config)
    assert config.gateway.paper is True
    assert config.gateway.accounts == ("DU111111", "DU222222")
    assert (config.gateway.port, config.gateway.client_id) == (4002, 99)
    assert (config.heartbeat.interval, config.heartbeat.timeout) == (1.0, 1.5)
    loss = config.rules[0]
    assert (loss.name, loss.action, loss.for_, loss.warn_at) == ("daily-loss", Action.CLOSE_ALL, 2.0, 0.8)
    assert loss.when is not None and (loss.when.metric, loss.when.op, loss.when.value) == (
        "daily_pnl",
        "<=",
        -2500,
    )
    flatten = next(r for r in config.rules if r.schedule is not None)
    assert flatten.enabled is False  # a demo must never trip on wall-clock time
    assert config.notifications.targets == ()
    assert config.quiet_windows[0].duration == 7200


def test_a_minimal_file_gets_the_defaults() -> None:
    config = Config.model_validate({"gateway": {"port": 4002, "client_id": 1, "paper": True}})
    assert config.rules == () and config.metrics.port == 9108


def test_a_yaml_syntax_error_names_its_line(tmp_path: Path) -> None:
    assert problems(tmp_path, 'gateway:\n  port: 4002\n  host: "unterminated\n') == [
        "rules.yaml:4: YAML syntax error: while scanning a quoted scalar; found unexpected end of stream"
    ]


def test_unknown_keys_are_errors_with_a_suggestion(tmp_path: Path) -> None:
    out = problems(tmp_path, BASE.replace("  paper: true\n", "  paper: true\n  acounts: [DU3]\n"))
    assert len(out) == 1
    assert out[0].startswith("rules.yaml:5: gateway.acounts: unknown key 'acounts'; did you mean 'accounts'?")


def test_duplicate_keys_name_both_lines(tmp_path: Path) -> None:
    out = problems(tmp_path, BASE.replace("  client_id: 99\n", "  client_id: 99\n  client_id: 98\n"))
    assert out == ["rules.yaml:4: gateway.client_id: duplicate key 'client_id' (first on line 3)"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("  paper: off", "rules.yaml:4: gateway.paper: must be true or false, got: 'off'"),
        ("  paper: yes", "rules.yaml:4: gateway.paper: must be true or false, got: 'yes'"),
        ("  paper: no", "rules.yaml:4: gateway.paper: must be true or false, got: 'no'"),
        ("  paper: on", "rules.yaml:4: gateway.paper: must be true or false, got: 'on'"),
        ("  paper: 1", "rules.yaml:4: gateway.paper: must be true or false, got: 1"),
        ("  paper: 2026-01-02", "rules.yaml:4: gateway.paper: must be true or false, got: '2026-01-02'"),
    ],
)
def test_yaml_1_1_booleans_are_not_booleans(tmp_path: Path, line: str, expected: str) -> None:
    assert problems(tmp_path, BASE.replace("  paper: true", line)) == [expected]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("017", "gateway.port: must be a whole number, got: '017'"),
        ("0x10", "gateway.port: must be a whole number, got: '0x10'"),
        ("1e3", "gateway.port: must be a whole number, got: '1e3'"),
        ("1:30", "gateway.port: must be a whole number, got: '1:30'"),
        ("4002.0", "gateway.port: must be a whole number, got: 4002.0"),
        ("'4002'", "gateway.port: must be a whole number, got: '4002'"),
    ],
)
def test_yaml_1_1_numbers_are_not_silently_converted(tmp_path: Path, value: str, expected: str) -> None:
    assert problems(tmp_path, BASE.replace("port: 4002", f"port: {value}")) == [f"rules.yaml:2: {expected}"]


def test_a_scientific_threshold_is_refused(tmp_path: Path) -> None:
    out = problems(
        tmp_path, BASE.replace('"daily_pnl <= -2500"', "{metric: daily_pnl, op: '<=', value: -1e3}")
    )
    assert out == ["rules.yaml:8: rules[0].when.value: must be a number like -2500, 3% or 2s, got: '-1e3'"]


def test_wrong_types_and_range_errors_read_plainly(tmp_path: Path) -> None:
    text = (
        BASE
        + "    for: 2\n    action: kill\n    consecutive: 0\n    warn_at: 0.8\nheartbeat:\n  timeout: 90s\n"
    )
    assert problems(tmp_path, text) == [
        "rules.yaml:9: rules[0].for: must be a duration with a unit (2ms or 2s?), got: 2",
        "rules.yaml:10: rules[0].action: must be one of 'alert', 'cancel_all' or 'close_all', got: 'kill'",
        "rules.yaml:11: rules[0].consecutive: must be at least 1, got: 0",
        "rules.yaml:12: rules[0].warn_at: must be a percentage like 3%, got: 0.8",
        "rules.yaml:14: heartbeat.timeout: must be between 50ms and 60s, got: 90s",
    ]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = """\
    gateway:
      port: 99999
      client_id: 99
      paper: off
      accounts: [DU1, DU2]
    heartbeat:
      interval: 1s
      interval: 2s
    rules:
      - name: a
        when: "daly_pnl <= -2500"
      - name: a
        when: "daily_pnl <= -3%"
        scope: DU3
      - name: sched
        schedule: {cron: "61 15 * * *"}
    quiet_windows:
      - {name: q, cron: "45 23 * * *", duration: 2h, rules: [nope]}
    """
    out = problems(tmp_path, text)
    assert [p.split(": ")[0] for p in out] == [
        "rules.yaml:2",
        "rules.yaml:4",
        "rules.yaml:8",
        "rules.yaml:11",
        "rules.yaml:12",
        "rules.yaml:13",
        "rules.yaml:14",
        "rules.yaml:16",
        "rules.yaml:18",
    ]
    text_out = "\n".join(out)
    assert "gateway.port: must be at most 65535, got: 99999" in text_out
    assert "heartbeat.interval: duplicate key 'interval' (first on line 7)" in text_out
    assert (
        "unknown metric 'daly_pnl' (did you mean 'daily_pnl'?); known metrics: daily_pnl, daily_pnl_pct"
        in text_out
    )
    assert "rules[1].name: duplicate rule name 'a' (also rules[0])" in text_out
    assert "use daily_pnl_pct for a percentage" in text_out
    assert "rules[1].scope: unknown scope 'DU3'" in text_out
    assert "invalid cron expression '61 15 * * *'" in text_out
    assert "quiet_windows[0].rules[0]: no rule named 'nope'" in text_out


@pytest.mark.parametrize(
    ("rule_yaml", "expected"),
    [
        ("    when: {metric: daily_pnl, value: -2500}", "metric 'daily_pnl' needs op"),
        ("    when: {metric: daily_pnl, op: '<='}", "metric 'daily_pnl' needs value"),
        (
            "    when: {metric: daily_pnl, op: '<=', value: -1, any: ['cushion < 5%']}",
            "exactly one of metric",
        ),
        ("    when: {all: []}", "needs at least one condition"),
        ("    when: {op: '<', value: 1}", "exactly one of metric"),
        ("    when: 'daily_pnl =< -2500'", "cannot read condition 'daily_pnl =< -2500'"),
        ("    when: 'daily_pnl < -1 and cushion < 5% or data_age > 5s'", "mixes 'and' and 'or'"),
        ("    when: 'cushion < 5'", "cushion is a ratio: write 5% or 0.05"),
        ("    when: 'daily_pnl_pct < -3'", "daily_pnl_pct is a percentage: write it with %"),
        ("    when: 'data_age > 60'", "data_age is a duration: write it with a unit"),
        ("    when: 'daily_pnl < -2500'\n    schedule: {cron: '0 9 * * *'}", "it has both"),
        ("    action: alert", "needs exactly one of when: (a condition) or schedule:"),
        (
            "    when: 'daily_pnl < -2500 or cushion < 5%'\n    warn_at: 80%",
            "warn_at needs a single comparison",
        ),
        ("    when: 'daily_pnl < -2500'\n    warn_at: 100%", "warn_at must be between 0% and 100%"),
        ("    schedule: {cron: '0 9 * * *'}\n    for: 2s", "for does not apply"),
        ("    schedule: {cron: '0 9 * * *', timezone: Mars/Base}", "unknown time zone 'Mars/Base'"),
        ("    when: 'daily_pnl < -2500'\n    scope: everyone", "unknown scope 'everyone'"),
    ],
)
def test_rule_consistency_problems_are_reported(tmp_path: Path, rule_yaml: str, expected: str) -> None:
    text = BASE.replace('    when: "daily_pnl <= -2500"', rule_yaml)
    out = problems(tmp_path, text)
    assert len(out) == 1, out
    assert expected in out[0]
    assert out[0].startswith(("rules.yaml:7:", "rules.yaml:8:", "rules.yaml:9:"))


def test_paper_is_mandatory(tmp_path: Path) -> None:
    assert problems(tmp_path, BASE.replace("  paper: true\n", "")) == [
        "rules.yaml:1: gateway.paper: is required"
    ]


def test_a_missing_gateway_section_is_reported(tmp_path: Path) -> None:
    assert problems(tmp_path, "rules: []\n") == ["rules.yaml:1: gateway: is required"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "rules.yaml:1: the file is empty"),
        ("- a\n- b\n", "rules.yaml:1: the file must be a mapping of sections (gateway:, rules:, ...)"),
        (BASE + "extra: &x [1]\nmore: *x\n", "rules.yaml:10: more: YAML anchors and aliases"),
        (BASE + "extra: !!binary aGVsbG8=\n", "rules.yaml:9: extra: YAML tag 'tag:yaml.org,2002:binary'"),
        (BASE + "1: x\n", "rules.yaml:9: keys must be plain names, got: '1'"),
        (BASE + "<<: {a: 1}\n", "rules.yaml:9: <<: unknown key '<<'"),
        (BASE + "---\nb: 1\n", "rules.yaml:9: YAML syntax error: expected a single document"),
    ],
)
def test_yaml_features_outside_the_strict_subset_are_refused(
    tmp_path: Path, text: str, expected: str
) -> None:
    out = problems(tmp_path, text)
    assert any(p.startswith(expected) for p in out), out


def test_an_unreadable_or_binary_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bin.yaml"
    bad.write_bytes(b"gateway: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(bad)


def test_deep_nesting_is_refused_without_a_crash(tmp_path: Path) -> None:
    out = problems(tmp_path, BASE + "extra: " + "[" * 60 + "]" * 60 + "\n")
    assert any("nested deeper than" in p for p in out)


def test_structured_and_one_line_conditions_mean_the_same(tmp_path: Path) -> None:
    text = BASE + textwrap.indent(
        textwrap.dedent("""\
        - name: structured
          when:
            any:
              - {metric: cushion, op: "<", value: 5%}
              - all:
                  - {metric: daily_pnl, op: "<=", value: -2500}
                  - {metric: heartbeat_rtt, op: ">", value: 500ms}
        - name: oneline
          when: "cushion < 0.05 or daily_pnl <= -2500"
          severity: warning
        """),
        "  ",
    )
    config = load_config(write(tmp_path, text), environ={})
    s, o = config.rules[1], config.rules[2]
    assert s.when is not None and s.when.any is not None
    assert s.when.any[0].value == pytest.approx(0.05)
    assert s.when.any[1].all is not None and s.when.any[1].all[1].value == pytest.approx(0.5)
    assert o.when is not None and o.when.any is not None
    assert [(c.metric, c.op, c.value) for c in o.when.any] == [
        ("cushion", "<", 0.05),
        ("daily_pnl", "<=", -2500),
    ]
    assert o.severity is Severity.WARNING


def test_a_config_built_in_python_is_cross_checked_too() -> None:
    rule = {"name": "a", "when": "daily_pnl < 0"}
    with pytest.raises(ValueError, match=r"rules\[1\]\.name: duplicate rule name 'a'"):
        Config.model_validate(
            {"gateway": {"port": 4002, "client_id": 1, "paper": True}, "rules": [rule, rule]}
        )


def test_a_loaded_config_round_trips_through_python() -> None:
    config = load_config(REPO_RULES, environ={})
    assert Config.model_validate(config.model_dump(by_alias=True)) == config


def test_the_pure_python_parser_is_just_as_strict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from watchdog.config import strict_yaml as yamlstrict

    monkeypatch.setattr(yamlstrict, "_Loader", yamlstrict._PyLoader)  # as without libyaml
    text = BASE.replace("  paper: true\n", "  paper: off\n  port: 4001\n") + "x: &a [1]\ny: *a\n"
    known = (
        "gateway, heartbeat, polling, metrics, state_dir, notifications, kill, logging, quiet_windows, "
        "bots, rules"
    )
    assert problems(tmp_path, text) == [
        "rules.yaml:4: gateway.paper: must be true or false, got: 'off'",
        "rules.yaml:5: gateway.port: duplicate key 'port' (first on line 2)",
        f"rules.yaml:10: x: unknown key 'x' (known keys here: {known})",
        "rules.yaml:11: y: YAML anchors and aliases (*name) are not supported: write the value out",
        f"rules.yaml:11: y: unknown key 'y' (known keys here: {known})",
    ]


def test_an_order_quantity_limit_under_one_unit_is_refused_at_load(tmp_path: Path) -> None:
    """Review of issue 13: 0.5 was accepted and crashed the kill while formatting its refusal."""
    out = problems(tmp_path, BASE + "kill:\n  max_order_quantity: 0.5\n")
    assert out == [
        "rules.yaml:10: kill.max_order_quantity: must be at least 1 (whole shares / contracts per closing "
        "order), got: 0.5"
    ]
