"""The daemon's Python stack works under the kernel rule behind MemoryDenyWriteExecute=yes.

systemd enforces MemoryDenyWriteExecute with seccomp; Linux >= 6.3 offers the same rule as
prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN), which survives execve. The child imports what the
daemon and the OnFailure notifier import, runs ctypes callbacks (libffi), and proves the rule is on.
"""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

pytestmark = pytest.mark.deploy

PR_GET_MDWE = 66

CHILD = """
import ctypes, mmap, sys
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(66, 0, 0, 0, 0) & 1, "MDWE is not in force"
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    sys.exit("a writable+executable mapping was allowed")
except PermissionError:
    pass
import asyncio, ssl, apprise, ib_async, pydantic, yaml, prometheus_client, apscheduler
import watchdog.cli, watchdog.daemon.lifecycle, watchdog.config.load
callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(lambda x: x + 1)
assert callback(41) == 42
asyncio.run(asyncio.sleep(0))
print("stack ok")
"""


# A first interpreter switches the rule on and execs the real child: no preexec_fn in a threaded pytest.
LAUNCHER = """
import ctypes, os, sys
if ctypes.CDLL(None, use_errno=True).prctl(65, 1, 0, 0, 0) != 0:
    sys.exit("prctl(PR_SET_MDWE) failed")
os.execv(sys.executable, [sys.executable, "-c", sys.argv[1]])
"""


def _kernel_has_mdwe() -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    return bool(libc.prctl(PR_GET_MDWE, 0, 0, 0, 0) >= 0)


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or not _kernel_has_mdwe(), reason="needs Linux >= 6.3"
)
def test_the_python_stack_runs_without_writable_executable_memory() -> None:
    done = subprocess.run(
        [sys.executable, "-c", LAUNCHER, CHILD],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "stack ok"
