"""Configuration: strict YAML, secret references, the pydantic schema, every error with file:line.

Its one job is to turn `rules.yaml` into a frozen, validated `Config` (or a `ConfigError` that
lists every problem at once). It may import only the ground floor (`watchdog.model`,
`watchdog.errors`); every other package reads its settings from here.
"""

from __future__ import annotations

from watchdog.config.load import load_config
from watchdog.config.schema import Condition, Config, KillConfig, Rule

__all__ = ["Condition", "Config", "KillConfig", "Rule", "load_config"]
