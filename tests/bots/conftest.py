"""Fixtures: a heartbeat receiver on an ephemeral loopback port, and a raw HTTP client for it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from watchdog.bots.receiver import HeartbeatReceiver
from watchdog.bots.registry import BotRegistry
from watchdog.config.bots import BotsConfig

ALPHA_TOKEN = "alpha-token-0123456789abcdef"
BETA_TOKEN = "beta-token-0123456789abcdef"


def bots_config(max_connections: int = 64) -> BotsConfig:
    return BotsConfig.model_validate(
        {
            "listen": "127.0.0.1:0",
            "max_connections": max_connections,
            "heartbeats": [
                {"name": "alpha", "token": ALPHA_TOKEN, "accounts": ["DU111111"]},
                {"name": "beta", "token": BETA_TOKEN},
            ],
        }
    )


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Served:
    receiver: HeartbeatReceiver
    registry: BotRegistry
    clock: Clock
    rejected: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.receiver.port


async def request(
    port: int,
    path: str,
    *,
    token: str | None = None,
    body: bytes = b"",
    method: str = "POST",
    headers: tuple[str, ...] = (),
) -> tuple[int, bytes]:
    """One HTTP/1.1 request over a fresh connection: (status code, raw response)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}", *headers]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    code = int(raw.split(b" ", 2)[1]) if raw else 0
    return code, raw


async def serve(tmp_path: Path, *, max_connections: int = 64, read_timeout: float = 5.0) -> Served:
    clock = Clock()
    config = bots_config(max_connections)
    registry = BotRegistry(config, tmp_path / "state", clock)
    rejected: list[str] = []
    receiver = HeartbeatReceiver(config, registry, on_rejected=rejected.append, read_timeout=read_timeout)
    await asyncio.wait_for(receiver.start(), 5)
    return Served(receiver, registry, clock, rejected)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    s = await serve(tmp_path)
    try:
        yield s
    finally:
        await asyncio.wait_for(s.receiver.stop(), 5)
