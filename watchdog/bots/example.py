"""An example bot for the dead-man's switch: README's asyncio heartbeat task, run as its own process.

    python -m watchdog.bots.example URL NAME TOKEN_FILE EVERY

The demo (`--scenario dead-bot`) and the process tests run it as the trading bot. Standard library
only: a real bot copies `heartbeat()` (README, "Dead-man's switch") rather than importing this.

Heartbeats every EVERY seconds; prints `beat` after each accepted one (the test's sync point).
SIGTERM is a planned stop: `POST …/stop` first, then exit 0. SIGKILL is a crash: nothing is sent.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import urllib.request


def post(url: str, token: str) -> int:
    request = urllib.request.Request(
        url, data=b"", method="POST", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=2) as response:
        return int(response.status)


async def heartbeat(url: str, name: str, token: str, every: float) -> None:
    """The README's task: beside the strategy on the same loop, so a hung loop stops heartbeating too."""
    while True:
        try:
            await asyncio.to_thread(post, f"{url}/v1/heartbeat/{name}", token)
            print("beat", flush=True)
        except OSError as exc:  # the watchdog is down or unreachable: keep trying
            print(f"heartbeat failed: {exc}", file=sys.stderr, flush=True)
        await asyncio.sleep(every)


async def main(url: str, name: str, token: str, every: float) -> int:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    task = asyncio.ensure_future(heartbeat(url, name, token, every))
    await stop.wait()
    task.cancel()
    await asyncio.to_thread(post, f"{url}/v1/heartbeat/{name}/stop", token)  # a planned stop
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    with open(sys.argv[3], encoding="utf-8") as f:
        secret = f.read().strip()
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2], secret, float(sys.argv[4]))))
