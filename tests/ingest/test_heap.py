"""Large blocks go back to the system when freed (processor.heap), in a fresh process each."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc",
    reason="the threshold is glibc's; elsewhere return_large_blocks changes nothing")

# A run's pattern: a large buffer freed early (which, by default, makes glibc serve later large
# blocks from the heap), then mails of a megabyte each, every one followed by a small object
# that outlives it. Prints how much the resident set grew once the mails are gone.
_SCRIPT = """
import os, sys
from processor.heap import return_large_blocks
if sys.argv[1] == "fixed":
    assert return_large_blocks()
page = os.sysconf("SC_PAGE_SIZE")
def resident():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * page
first = bytearray(8 << 20)
del first
before = resident()
mails, survivors = [], []
for _ in range(64):
    mail = bytearray(1 << 20)
    mail[::page] = b"x" * len(mail[::page])  # touched, as a fetched mail is
    mails.append(mail)
    survivors.append(bytearray(3000))
del mails
print(resident() - before)
"""


def _growth(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", _SCRIPT, mode], capture_output=True, text=True,
                          check=True, timeout=60)
    return int(done.stdout.strip())


def test_freed_large_blocks_leave_the_resident_set() -> None:
    assert _growth("fixed") < 8 << 20


def test_without_it_the_heap_keeps_them() -> None:
    # The premise of processor.heap: on this libc the default keeps the freed megabytes.
    assert _growth("default") > 32 << 20
