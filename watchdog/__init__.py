"""ibkr-watchdog: an independent risk watchdog daemon for Interactive Brokers accounts."""

from __future__ import annotations

__version__ = "0.2.0.dev0"
__all__ = ["__version__"]
