"""An asyncio TCP proxy on 127.0.0.1 for faults the simulator cannot make: blackhole, reset, latency."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
import struct


class Mode(enum.Enum):
    PASS = "pass"
    BLACKHOLE = "blackhole"  # sockets stay open, nothing is forwarded either way (a dead route)


class TcpProxy:
    """`await TcpProxy(upstream_port).start()` → clients connect to `proxy.port` instead of the gateway."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.mode = Mode.PASS
        self.latency = 0.0  # seconds added to every chunk, both directions
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await self.reset_all(rst=False)
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def reset_all(self, rst: bool = True) -> int:
        """Close every proxied connection on both sides (with a TCP RST when `rst`); returns how many."""
        writers, self._writers = list(self._writers), set()
        for w in writers:
            sock = w.get_extra_info("socket")
            if rst and sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            w.close()
        for w in writers:
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(w.wait_closed(), 1.0)
        return len(writers) // 2

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            return
        self._writers.update((client_w, up_w))
        pumps = [
            asyncio.ensure_future(self._pump(client_r, up_w)),
            asyncio.ensure_future(self._pump(up_r, client_w)),
        ]
        for p in pumps:
            self._tasks.add(p)
            p.add_done_callback(self._tasks.discard)
        await asyncio.gather(*pumps, return_exceptions=True)
        for w in (client_w, up_w):
            self._writers.discard(w)
            w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if self.mode is Mode.BLACKHOLE:
                    continue  # swallowed: the peer never hears of it, and no FIN or RST either
                if self.latency > 0:
                    await asyncio.sleep(self.latency)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()
