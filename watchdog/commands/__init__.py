"""The operator commands: kill, reset, status, history, report, check (the CLI parses, these act)."""
