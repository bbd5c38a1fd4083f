"""The README's reference facts match the code: rule metrics, config keys, Prometheus series, alerts, links.

These complement `test_readme.py` (which runs the commands): a renamed key, metric or alert, a new one
the README does not list, or a dead link fails here instead of misleading a reader.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from tests.docs.readme_commands import README, REPO
from watchdog.cli import _parser
from watchdog.config.bots import BotsConfig
from watchdog.config.conditions import METRICS, MetricKind
from watchdog.config.schema import Config, Rule
from watchdog.demo import SCENARIOS
from watchdog.outputs.metrics import Metrics

TEXT = README.read_text(encoding="utf-8")
PROSE = re.sub(r"^```.*?^```", "", TEXT, flags=re.MULTILINE | re.DOTALL)  # fenced blocks removed
SPANS = re.findall(r"`([^`\n]+)`", PROSE)
UNIT_WORDS = {
    MetricKind.MONEY: "money",
    MetricKind.PERCENT: "%",
    MetricKind.RATIO: "ratio",
    MetricKind.COUNT: "count",
    MetricKind.RATE: "per minute",
    MetricKind.SECONDS: "duration",
}


def _section(title: str) -> str:
    start = TEXT.index(title)
    end = TEXT.find("\n#", start + len(title))
    return TEXT[start : end if end > 0 else len(TEXT)]


def test_the_rule_metric_table_lists_every_metric_a_rule_accepts_with_its_unit() -> None:
    rows = re.findall(
        r"^\| `(\w+)` \| ([^|]+) \|", _section("### Metrics a rule can use"), flags=re.MULTILINE
    )
    table = {name: unit.strip() for name, unit in rows}
    assert set(table) == set(METRICS), (
        f"missing {set(METRICS) - set(table)}, unknown {set(table) - set(METRICS)}"
    )
    wrong = {n: (table[n], UNIT_WORDS[i.kind]) for n, i in METRICS.items() if table[n] != UNIT_WORDS[i.kind]}
    assert not wrong, f"README unit vs the metric's kind: {wrong}"


def _keys(model: type[BaseModel]) -> set[str]:
    return {f.alias or name for name, f in model.model_fields.items()}


SECTIONS: dict[str, type[BaseModel]] = {
    name: f.annotation
    for name, f in Config.model_fields.items()
    if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel)
}


def test_every_config_key_of_every_section_is_in_the_readme() -> None:
    assert {"gateway", "heartbeat", "polling", "metrics", "notifications", "kill", "logging"} <= set(SECTIONS)
    missing = [
        f"{s}.{k}" for s, model in SECTIONS.items() for k in sorted(_keys(model)) if f"{s}.{k}" not in TEXT
    ]
    top = [k for k in _keys(Config) if k not in SECTIONS and f"`{k}`" not in TEXT]
    assert not missing and not top, f"keys the README does not mention: {missing + top}"


def test_every_config_key_the_readme_names_exists() -> None:
    dotted = (re.fullmatch(r"([a-z_]+)\.([a-z_]+)", s) for s in SPANS)
    files = {"py", "md", "yaml", "yml", "json"}  # `gateway.py` is a module, not a key
    named = [m.groups() for m in dotted if m and m.group(1) in SECTIONS and m.group(2) not in files]
    assert len(named) > 20
    unknown = [f"{s}.{k}" for s, k in named if k not in _keys(SECTIONS[s])]
    assert not unknown, unknown


def test_the_readme_rule_example_uses_every_rule_key_and_loads() -> None:
    example = next(
        b
        for b in re.findall(r"^```yaml\n(.*?)^```", TEXT, flags=re.MULTILINE | re.DOTALL)
        if b.startswith("rules:")
    )
    rule = yaml.safe_load(example)["rules"][0]
    # `schedule:` is the alternative to `when:`; `bot:` belongs to a bot_silence rule (the dead-man example)
    assert set(rule) | {"schedule", "bot"} == _keys(Rule)
    assert "    bot: alpha" in TEXT
    Rule.model_validate(rule)


def _exported_series() -> set[str]:
    suffixes = {"counter": ("_total",), "histogram": ("", "_bucket", "_count", "_sum"), "gauge": ("",)}
    return {
        fam.name + suffix
        for fam in Metrics(process_metrics=False).registry.collect()
        for suffix in suffixes.get(fam.type, ("",))
    }


def test_every_prometheus_series_the_readme_names_is_exported() -> None:
    named = set(re.findall(r"\bibkr_watchdog_\w+", TEXT))
    assert len(named) > 10
    unknown = named - _exported_series()
    assert not unknown, unknown


def test_the_readme_lists_every_shipped_alert_rule() -> None:
    alerts = yaml.safe_load((REPO / "deploy" / "prometheus" / "alerts.yml").read_text(encoding="utf-8"))
    names = {r["alert"] for g in alerts["groups"] for r in g["rules"] if "alert" in r}
    assert len(names) > 5
    missing = {n for n in names if not re.search(rf"\b{n}\b", TEXT)}
    assert not missing, missing


def _slug(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(md: Path) -> set[str]:
    text = md.read_text(encoding="utf-8")
    text = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    heads = {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, flags=re.MULTILINE)}
    return heads | set(re.findall(r'<a id="([^"]+)">', text))


# Produced by the benchmark work (`make bench`), which lands separately: its link is checked by the
# test below as soon as the file exists, and is the only link allowed to dangle until then.
BENCHMARKS = "BENCHMARKS.md"


def _local_links() -> list[str]:
    links = re.findall(r"\]\(([^)\s]+)\)", PROSE)
    return [x for x in links if not re.match(r"[a-z]+://", x)]


@pytest.mark.skipif(not (REPO / BENCHMARKS).exists(), reason=f"{BENCHMARKS} has not landed yet")
def test_the_benchmarks_file_the_readme_links_exists() -> None:
    assert BENCHMARKS in _local_links()
    assert (REPO / BENCHMARKS).read_text(encoding="utf-8").strip()


def test_every_relative_link_and_anchor_in_the_readme_resolves() -> None:
    local = [x for x in _local_links() if x != BENCHMARKS]
    assert len(local) > 10
    broken = []
    for link in local:
        path, _, anchor = link.partition("#")
        target = REPO / path if path else README
        if not target.exists():
            broken.append(f"{link}: no such file")
        elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
            broken.append(f"{link}: no heading with that anchor in {path or 'README.md'}")
    assert not broken, broken


@pytest.mark.parametrize(
    "span", [s for s in SPANS if s.startswith("ibkr-watchdog ")], ids=lambda s: s.replace(" ", "_")
)
def test_every_inline_cli_command_in_the_prose_parses(span: str) -> None:
    argv = shlex.split(span)[1:]
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse's way of saying "unknown flag / missing argument"
        raise AssertionError(f"`{span}` does not parse: exit {exc.code}") from None
    if args.command == "demo":
        assert args.scenario in SCENARIOS


def test_every_inline_make_target_exists() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    for span in (s for s in SPANS if s.startswith("make ")):
        for target in span.split()[1:]:
            assert re.search(rf"^{re.escape(target)}:", makefile, flags=re.MULTILINE), span


def test_the_dead_man_examples_load_and_compile() -> None:
    start = TEXT.index("### Dead-man's switch for your bots")
    section = TEXT[start : TEXT.index("\n### ", start + 4)]  # its code blocks hold `#` comment lines
    (config,) = re.findall(r"^```yaml\n(.*?)^```", section, flags=re.MULTILINE | re.DOTALL)
    data = yaml.safe_load(config)
    bots = BotsConfig.model_validate(data["bots"])
    rule = Rule.model_validate(data["rules"][0])
    assert rule.bot == bots.heartbeats[0].name and rule.when is not None
    assert rule.when.metric == "bot_silence" and rule.when.value == 15.0
    (python,) = re.findall(r"^```python\n(.*?)^```", section, flags=re.MULTILINE | re.DOTALL)
    assert len([ln for ln in python.splitlines() if ln.strip() and not ln.startswith("#")]) <= 12
    compile(python, "README.md", "exec")  # the ten lines a bot copies are valid Python
