"""Reading a file the operator points us at (rules.yaml, the URLs file, a secret): regular, bounded, no hang.

A FIFO, a device or a directory put where a config file should be would block a reader (a FIFO with no
writer blocks `open()` itself) or feed it without end; a huge file would take memory in proportion.
Both are refused with one line naming the file and the reason, before more than `limit` bytes are read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_CONFIG_BYTES = 1024 * 1024  # rules.yaml and the notification URLs file: a real one is a few KiB


class InputFileError(ValueError):
    """The file cannot be used: unreadable, not a regular file, or over the limit (the message says which)."""


def read_input_file(path: str | Path, *, limit: int = MAX_CONFIG_BYTES) -> tuple[bytes, int]:
    """The file's bytes and its mode bits. Raises InputFileError (never blocks on a FIFO or a device).

    `open()` uses O_NONBLOCK so a FIFO without a writer does not block; `fstat` of the opened file
    (not of the name, which could be swapped in between) decides whether it is regular.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        raise InputFileError(f"cannot read the file: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputFileError(f"not a regular file ({_kind(st.st_mode)}); refused")
        if st.st_size > limit:
            raise InputFileError(f"too large ({st.st_size} bytes; the limit is {limit} bytes)")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:  # the file may grow after fstat: read at most limit + 1 bytes
            chunk = os.read(fd, min(65536, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise InputFileError(f"too large (more than {limit} bytes)")
        return b"".join(chunks), st.st_mode
    except OSError as exc:
        raise InputFileError(f"cannot read the file: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a plain file"
