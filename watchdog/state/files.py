"""The state directory held open: files opened relative to it, never through a link, even without free fds.

Two threats shape this layer (issue 15):

- **Links.** A `watchdog.pid` or `audit.jsonl` that is a symbolic link made the daemon truncate or
  append to the link's target. Every file here is opened relative to a descriptor of the directory
  (`dir_fd`) with `O_NOFOLLOW`, replaced with `rename` (which replaces a link, never its target),
  and a directory writable by group or others, or owned by another user, is refused at open: whoever
  can write in it could plant such links.
- **Hostile files.** A FIFO under a state file's name froze the event loop (`open` waits for a
  writer), a link to a file outside re-armed the watchdog through `requests/`, a 300 MB file took
  453 MB. Every state file is read or appended to through `open_file`: relative to the directory's
  descriptor, `O_NOFOLLOW`, `O_NONBLOCK` (a FIFO never blocks), then `fstat`: a regular file, one
  link, owned by us or root, not writable by group or others, and not larger than its bound.
  A file that fails is an `UnsafeFile`; what a caller then does is the store's one policy
  (`watchdog.state.store.ON_UNUSABLE`): refuse, read fail-safe, or set the file aside.
- **Descriptor exhaustion.** With every descriptor taken (1,020 idle connections to /metrics under
  the default limit of 1,024), the kill's latch, pending-kill and audit writes failed with EMFILE.
  The directory descriptor is opened once and kept (its fsync needs no new descriptor), the audit
  log keeps its own descriptor open (`AuditLog.open`), and one spare descriptor (on /dev/null) is
  held in reserve: when opening a file fails with EMFILE or ENFILE, the spare is closed and the open
  retried in the slot it frees, then the spare is taken back. An atomic replace needs exactly one
  new descriptor at a time (the temp file), so one spare is enough for the loop's sequential writes.
  Why not only keep files open: the latch and pending kill are replaced atomically (temp file +
  rename), and each replacement is a new file, so it needs a new descriptor however it is done.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import threading
import time
import weakref
from pathlib import Path

from watchdog.errors import StateError

_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC
_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE)
MAX_STATE_FILE = 16 * 1024 * 1024  # bytes: the largest state file read (the latch of a big book is ~100 KB)


class UnsafeFile(OSError):
    """A state file that must not be trusted: a link, not a regular file (FIFO, device, directory),
    more than one hard link, owned by another user, writable by group or others, or too large."""


def _unsafe_open_error(exc: OSError, name: str) -> OSError:
    """ELOOP (a link under O_NOFOLLOW) and ENXIO (a FIFO without reader, opened O_NONBLOCK for
    writing) are the file's fault, not the system's: say so as an UnsafeFile."""
    if exc.errno == errno.ELOOP:
        return UnsafeFile(errno.ELOOP, why(exc))
    if exc.errno == errno.ENXIO:
        return UnsafeFile(errno.ENXIO, f"{name} is not a regular file (a FIFO or a device)")
    return exc


def close_all(fds: list[int | None]) -> None:
    for fd in fds:
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


class StateDirectory:
    """One state directory: an O_DIRECTORY descriptor opened on first use and kept, plus a spare.

    Methods raise OSError like `os.open` does (ELOOP for a link); `open_dir` raises StateError for a
    directory that is unsafe to use, with one line naming it and what to do.
    """

    def __init__(self, path: Path, *, create: bool = True, parent: StateDirectory | None = None) -> None:
        self.path = Path(path)
        self.create = create  # False: a missing directory is an error, not made here
        # set: `path` is opened by its name relative to the parent's descriptor, never through a link
        self.parent = parent
        # [directory fd, spare fd]; a list so the finalizer closes what is open when it runs
        self._fds: list[int | None] = [None, None]
        self._finalizer = weakref.finalize(self, close_all, self._fds)
        self._spare_lock = threading.Lock()  # the loop is the only writer; a lock costs nothing

    # ------------------------------------------------------------------ the directory
    @property
    def fd(self) -> int:
        """The directory's descriptor (opened, and checked, on first use)."""
        fd = self._fds[0]
        return self.open_dir() if fd is None else fd

    def open_dir(self) -> int:
        """Create the directory if missing (0750), open and check it, reserve the spare descriptor."""
        if self._fds[0] is not None:
            return self._fds[0]
        try:
            fd = self._open_directory()
        except OSError as exc:
            reason = why(exc) if exc.errno == errno.ELOOP else exc.strerror or str(exc)
            raise StateError(f"cannot use state directory {self.path}: {reason}") from exc
        try:
            problem = unsafe_reason(os.fstat(fd), "state directory")
        except OSError as exc:
            problem = exc.strerror or str(exc)
        if problem:
            os.close(fd)
            raise StateError(f"refusing state directory {self.path}: {problem}")
        self._fds[0] = fd
        self._take_spare()
        return fd

    def _open_directory(self) -> int:
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
        if self.parent is None:
            if self.create:
                self.path.mkdir(parents=True, exist_ok=True, mode=0o750)
            return os.open(self.path, flags)
        name, parent_fd = self.path.name, self.parent.fd
        if self.create:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o750, dir_fd=parent_fd)
        return os.open(name, flags | os.O_NOFOLLOW, dir_fd=parent_fd)

    def subdirectory(self, name: str, *, create: bool = False) -> StateDirectory:
        """`name` inside this directory, opened relative to it (never through a link) and checked
        like this one when first used (StateError: not ours or root's, or writable by others)."""
        return StateDirectory(self.path / name, create=create, parent=self)

    def names(self) -> list[str]:
        """The names in the directory, sorted (read through its descriptor)."""
        return sorted(os.listdir(self.fd))

    def close(self) -> None:
        close_all(self._fds)
        self._fds[0] = self._fds[1] = None

    def fsync(self) -> None:
        """Make renames and unlinks in the directory durable (no new descriptor needed)."""
        os.fsync(self.fd)

    # ------------------------------------------------------------------ files
    def open(self, name: str, flags: int, mode: int = 0o640) -> int:
        """`os.open(name, flags | O_NOFOLLOW)` relative to the directory; falls back on the spare slot."""
        dir_fd = self.fd
        try:
            return os.open(name, flags | _NOFOLLOW, mode, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno not in _OUT_OF_DESCRIPTORS or self._fds[1] is None:
                raise
        with self._spare_lock:
            spare, self._fds[1] = self._fds[1], None
        if spare is None:
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
        os.close(spare)  # frees a slot: the retry takes it (the loop is the only writer here)
        return os.open(name, flags | _NOFOLLOW, mode, dir_fd=dir_fd)

    def release(self, fd: int) -> None:
        """Close a descriptor from `open` and take the spare back if it was spent."""
        os.close(fd)
        if self._fds[1] is None:
            self._take_spare()

    def open_file(
        self, name: str, flags: int, mode: int = 0o640, *, limit: int | None = MAX_STATE_FILE
    ) -> int:
        """The one way a state file is opened: `open` with O_NONBLOCK (a FIFO never blocks), then
        checked with `check_file` (`limit`: its largest size in bytes, None for no bound). Raises
        FileNotFoundError, UnsafeFile (the file is the problem), or OSError (the system is)."""
        try:
            fd = self.open(name, flags | os.O_NONBLOCK, mode)
        except OSError as exc:
            raise _unsafe_open_error(exc, name) from None
        try:
            check_file(fd, name, limit=limit)
        except OSError:
            self.release(fd)
            raise
        return fd

    def read(self, name: str, limit: int = MAX_STATE_FILE, *, tail: bool = False) -> bytes | None:
        """The file's bytes, None when it does not exist; `tail`: a larger file gives its last `limit`
        bytes instead of UnsafeFile. Raises UnsafeFile or OSError (see `open_file`)."""
        try:
            fd = self.open_file(name, os.O_RDONLY, limit=None if tail else limit)
        except FileNotFoundError:
            return None
        try:
            if tail:
                size = os.fstat(fd).st_size
                os.lseek(fd, max(0, size - limit), os.SEEK_SET)
            chunks: list[bytes] = []
            size = 0
            while chunk := os.read(fd, min(1 << 20, limit - size + 1)):
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:  # grew after the fstat: the bound holds all the same
                    if tail:
                        break
                    raise UnsafeFile(errno.EFBIG, f"{name} is larger than {limit} bytes")
            return b"".join(chunks)[:limit]
        finally:
            self.release(fd)

    def set_aside(self, name: str) -> str | None:
        """Rename `name` out of the way so a fresh file can take its place: to `NAME.damaged`, or
        `NAME.damaged.TIME` when an earlier one is still there (kept for a person to read). A link
        is renamed, never followed. The new name, or None when it is gone or cannot be moved."""
        aside = f"{name}.damaged"
        with contextlib.suppress(FileNotFoundError):
            os.stat(aside, dir_fd=self.fd, follow_symlinks=False)
            aside = f"{aside}.{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(2)}"
        try:
            os.rename(name, aside, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except OSError:
            return None
        with contextlib.suppress(OSError):
            self.fsync()
        return aside

    def replace(self, name: str, data: bytes, *, durable: bool = True) -> None:
        """Replace `name` with `data` all at once (temp file, rename); `durable` fsyncs file and directory.

        A link named `name` is replaced, its target never touched."""
        tmp = f".{name}.{secrets.token_hex(4)}.tmp"
        fd = self.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if durable:
                    os.fsync(fd)
            finally:
                self.release(fd)
            os.replace(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=self.fd)
            raise
        if durable:
            self.fsync()

    def unlink(self, name: str) -> None:
        os.unlink(name, dir_fd=self.fd)

    def fsync_file(self, name: str) -> None:
        """fsync an existing file by name (after writes with durable=False); a missing file is skipped."""
        try:
            fd = self.open_file(name, os.O_RDONLY, limit=None)
        except FileNotFoundError:
            return
        try:
            os.fsync(fd)
        finally:
            self.release(fd)

    def same_file(self, name: str, fd: int) -> bool:
        """True when `name` (not followed) still names the file open as `fd` (not rotated or replaced)."""
        try:
            now = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        return (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)

    def _take_spare(self) -> None:
        with self._spare_lock:
            if self._fds[1] is not None:
                return
            with contextlib.suppress(OSError):  # none free now: the next release tries again
                self._fds[1] = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)


def why(exc: OSError) -> str:
    """An error from this module (StateError is an OSError too) in words for a one-line message."""
    if exc.errno == errno.ELOOP:
        return "it is a symbolic link; refused (state files are never opened through a link)"
    return exc.strerror or str(exc)


def check_file(fd: int, name: str, *, limit: int | None = None) -> None:
    """UnsafeFile unless `fd` is a regular file with one link, owned by us (or root), not writable by
    group or others, and (with `limit`) not larger than `limit` bytes."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFile(errno.EINVAL, f"{name} is not a regular file")
    if st.st_nlink != 1:  # another name for it elsewhere: what we write would show up there too
        raise UnsafeFile(errno.EMLINK, f"{name} has {st.st_nlink} hard links (a state file has one)")
    problem = unsafe_reason(st, name)
    if problem:
        raise UnsafeFile(errno.EPERM, problem)
    if limit is not None and st.st_size > limit:
        raise UnsafeFile(errno.EFBIG, f"{name} is larger than {limit} bytes ({st.st_size})")


def unsafe_reason(st: os.stat_result, what: str, uid: int | None = None) -> str:
    """Why a state directory or file with this stat is unsafe to trust, or "" when it is fine.

    `uid` is the process's effective uid (default: ours). Owned by it or by root is fine; root
    itself (an operator running `status` or `kill` as root) accepts any owner. Group or others
    must not be able to write: they could plant links or replace files."""
    mode = stat.S_IMODE(st.st_mode)
    uid = os.geteuid() if uid is None else uid
    if uid != 0 and st.st_uid not in (uid, 0):
        return (
            f"{what} is owned by uid {st.st_uid}, not by this process (uid {uid}); "
            f"chown it to the user the watchdog runs as"
        )
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{what} is writable by group or others (mode {mode:o}); chmod go-w it (0750 is right)"
    return ""
