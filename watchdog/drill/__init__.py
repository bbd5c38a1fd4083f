"""`ibkr-watchdog drill`: the user's config and book rehearsed on the embedded simulator, with a report.

Commands layer (beside `cli` and `demo`): it may import the daemon, the simulator and the config.
"""
