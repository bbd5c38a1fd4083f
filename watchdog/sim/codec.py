"""TWS API wire codec: length-prefixed frames of NUL-terminated text fields."""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

UNSET_INT = 2147483647
UNSET_DOUBLE = 1.7976931348623157e308
UNSET_DOUBLE_TEXT = "1.7976931348623157E308"
# A real gateway never sends frames anywhere near this; a bigger length prefix means garbage.
MAX_FRAME = 16 * 1024 * 1024
API_PREFIX = b"API\0"

Field = str | int | float | bool | None


def fmt(value: Field) -> str:
    """One field as IB writes it: ints as ints, whole floats without `.0`, unset double spelled like Java."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value == UNSET_DOUBLE:
            return UNSET_DOUBLE_TEXT
        if math.isinf(value):
            return "Infinite"
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    return value


def encode(fields: Iterable[Field]) -> bytes:
    """A full frame: 4-byte big-endian length, then every field followed by NUL."""
    payload = "".join(fmt(f) + "\0" for f in fields).encode("utf-8", errors="backslashreplace")
    return struct.pack(">I", len(payload)) + payload


def encode_raw(text: str) -> bytes:
    """A length-prefixed frame holding raw text (the client's version range is sent like this)."""
    payload = text.encode()
    return struct.pack(">I", len(payload)) + payload


def split_fields(payload: bytes) -> list[str]:
    """Frame payload to text fields; tolerant of a missing final NUL and of bad UTF-8."""
    text = payload.decode("utf-8", errors="backslashreplace")
    parts = text.split("\0")
    if parts and parts[-1] == "":
        parts.pop()
    return parts


class FrameError(ValueError):
    """The byte stream cannot be a TWS API frame (absurd length prefix)."""


@dataclass(slots=True)
class FrameBuffer:
    """Accumulates bytes and yields complete frame payloads."""

    data: bytearray

    @classmethod
    def new(cls) -> FrameBuffer:
        return cls(bytearray())

    def feed(self, chunk: bytes) -> list[bytes]:
        self.data += chunk
        out: list[bytes] = []
        while len(self.data) >= 4:
            (size,) = struct.unpack(">I", self.data[:4])
            if size > MAX_FRAME:
                raise FrameError(f"frame length {size} exceeds {MAX_FRAME}")
            if len(self.data) < 4 + size:
                break
            out.append(bytes(self.data[4 : 4 + size]))
            del self.data[: 4 + size]
        return out


def parse_version_range(payload: bytes) -> tuple[int, int, str] | None:
    """`v157..178 +PACEAPI` -> (157, 178, "+PACEAPI"); None when it is not a version range."""
    try:
        text = payload.decode("ascii").rstrip("\0")
    except UnicodeDecodeError:
        return None
    head, _, options = text.partition(" ")
    if not head.startswith("v"):
        return None
    lo, sep, hi = head[1:].partition("..")
    try:
        low = int(lo)
        high = int(hi) if sep else low
    except ValueError:
        return None
    if low <= 0 or high < low:
        return None
    return low, high, options.strip()


def to_int(value: str, default: int = 0) -> int:
    """Lenient int parse for client fields: empty means the default, floats like `10.0` are accepted."""
    if value == "":
        return default
    try:
        return int(value)
    except ValueError:
        return int(float(value))


def to_float(value: str, default: float = 0.0) -> float:
    """Lenient float parse; empty and the unset marker give the default."""
    if value == "" or value == UNSET_DOUBLE_TEXT:
        return default
    f = float(value)
    return default if f == UNSET_DOUBLE else f


def to_bool(value: str) -> bool:
    return value not in ("", "0", "false", "False")


def field_at(fields: Sequence[str], index: int) -> str:
    """Field `index` or empty when the client sent fewer fields."""
    return fields[index] if 0 <= index < len(fields) else ""
