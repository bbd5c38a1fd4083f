"""A bare-socket TWS API client for tests that need to send what no real client would."""

from __future__ import annotations

import asyncio
import contextlib
import struct

from watchdog.sim.codec import Field, FrameBuffer, encode, encode_raw, split_fields


class RawClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.buf = FrameBuffer.new()
        self.pending: list[list[str]] = []

    @classmethod
    async def open(cls, host: str, port: int) -> RawClient:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
        return cls(reader, writer)

    async def handshake(self, client_id: int, versions: str = "v157..178") -> list[str]:
        self.writer.write(b"API\0" + encode_raw(versions))
        reply = await self.recv()
        self.send([71, 2, client_id, ""])
        return reply

    def send(self, fields: list[Field]) -> None:
        self.writer.write(encode(fields))

    def send_bytes(self, data: bytes) -> None:
        self.writer.write(data)

    def send_payload(self, payload: bytes) -> None:
        self.writer.write(struct.pack(">I", len(payload)) + payload)

    async def recv(self, within: float = 2.0) -> list[str]:
        async with asyncio.timeout(within):
            while not self.pending:
                chunk = await self.reader.read(65536)
                if not chunk:
                    raise ConnectionError("closed by the simulator")
                self.pending.extend(split_fields(p) for p in self.buf.feed(chunk))
        return self.pending.pop(0)

    async def recv_msg(self, msg_id: int, within: float = 2.0) -> list[str]:
        async with asyncio.timeout(within):
            while True:
                fields = await self.recv(within)
                if fields and fields[0] == str(msg_id):
                    return fields

    async def closed_by_peer(self, within: float = 2.0) -> bool:
        """True when the simulator closes the socket (everything sent before is drained)."""
        try:
            async with asyncio.timeout(within):
                while await self.reader.read(65536):
                    pass
        except TimeoutError:
            return False
        except ConnectionError:
            return True
        return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), 2)
