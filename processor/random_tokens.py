"""Random tokens (Message-IDs, MIME boundaries) from the operating system's CSPRNG, read a
block at a time.

One `os.urandom` call per token cost the filing thread far more than the token: the call lets
go of the interpreter lock, and taking it back waits behind the connection thread, which is
busy fetching (43 µs a call in a profiled poll, 3 µs alone; benchmarks/RESULTS.md). The bytes
are the same CSPRNG's, read POOL_BYTES at a time, and each is handed out once. A forked child
starts with an empty pool, or parent and child would hand out the same tokens.
"""

from __future__ import annotations

import base64
import os
import threading

POOL_BYTES = 4096

_lock = threading.Lock()
_pool = b""
_taken = 0


def token_bytes(count: int) -> bytes:
    global _pool, _taken
    with _lock:
        if _taken + count > len(_pool):
            _pool, _taken = os.urandom(max(POOL_BYTES, count)), 0
        _taken += count
        return _pool[_taken - count:_taken]


def token_urlsafe(count: int) -> str:
    """`count` random bytes as unpadded URL-safe base64, as secrets.token_urlsafe gives."""
    return base64.urlsafe_b64encode(token_bytes(count)).rstrip(b"=").decode("ascii")


def token_hex(count: int) -> str:
    return token_bytes(count).hex()


def _forget() -> None:
    # A new lock too: the fork may have happened while another thread held the parent's.
    global _lock, _pool, _taken
    _lock, _pool, _taken = threading.Lock(), b"", 0


os.register_at_fork(after_in_child=_forget)
