"""Give large blocks back to the system when they are freed, so memory stays flat on a backlog.

A mail of a few megabytes passes through several buffers (the IMAP response, the raw bytes, a
decoded attachment). glibc serves blocks that large from mmap and unmaps them on free, but only
until the first such free: from then on it raises its threshold to the freed size and serves
them from the heap, where a long-lived small object allocated after them pins the space. A
process that files tens of thousands of mails then keeps the high-water mark of its largest
batches. Fixing the threshold keeps large blocks out of the heap for the whole run.

Only glibc has this knob; elsewhere (musl, macOS) nothing is changed.

The cyclic garbage collector is also asked to run less often (`collect_rarely`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging

log = logging.getLogger(__name__)

# glibc's malloc.h: M_MMAP_THRESHOLD. Setting it also turns off the dynamic adjustment.
_M_MMAP_THRESHOLD = -3
# glibc's own starting value: blocks from 128 KiB up are mapped, and returned when freed.
LARGE_BLOCK_BYTES = 128 * 1024


def return_large_blocks(threshold: int = LARGE_BLOCK_BYTES) -> bool:
    """Serve blocks of `threshold` bytes or more from mmap for the rest of this process's life.
    True when the C library took the setting."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    taken = mallopt(_M_MMAP_THRESHOLD, threshold) == 1
    if not taken:
        log.debug("the C library refused M_MMAP_THRESHOLD=%d", threshold)
    return taken


# The collector's youngest generation is examined every 700 new container objects by default.
# Filing a batch makes some hundred thousand (ORM rows and their state, parsed mails), almost
# none of them in reference cycles, so it ran hundreds of times per batch for next to nothing.
YOUNGEST_GENERATION_OBJECTS = 20_000


def collect_rarely(threshold: int = YOUNGEST_GENERATION_OBJECTS) -> None:
    """Examine the youngest generation every `threshold` new objects (the older generations
    keep their default rhythm relative to it), and leave the objects alive now (modules, the
    configuration) out of every collection from now on (gc.freeze)."""
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(threshold, middle, oldest)
