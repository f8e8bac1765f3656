"""Tokens for Message-IDs and MIME boundaries: never handed out twice, not even to a forked
child, which starts from what its parent had read of the CSPRNG."""

from __future__ import annotations

import os
import re
import select
import signal
import sys

import pytest

from processor import random_tokens
from processor.compose import make_message_id


def test_tokens_are_distinct_and_shaped_like_the_secrets_modules() -> None:
    seen = {random_tokens.token_urlsafe(18) for _ in range(3 * random_tokens.POOL_BYTES // 18)}
    assert len(seen) == 3 * random_tokens.POOL_BYTES // 18  # across several pools
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{24}", token) for token in seen)
    assert re.fullmatch(r"[0-9a-f]{24}", random_tokens.token_hex(12))
    assert len(random_tokens.token_bytes(5000)) == 5000  # larger than a pool


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_repeat_its_parents_tokens() -> None:
    random_tokens.token_bytes(1)  # the pool holds bytes not handed out yet
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next Message-ID, to the parent
        try:
            os.write(write, make_message_id("desk.example.com", "desk").encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        childs = pipe.read().decode()
    os.waitpid(pid, 0)
    parents = make_message_id("desk.example.com", "desk")
    assert childs.startswith("<") and childs != parents, (childs, parents)
    assert sys.modules["processor.random_tokens"] is random_tokens


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs fork and pidfd_open")
def test_a_child_forked_while_the_lock_was_held_still_makes_tokens() -> None:
    """As if another thread held the lock at the fork: the child's copy of it would stay
    held forever, and its first Message-ID would hang."""
    with random_tokens._lock:
        pid = os.fork()
        if pid == 0:
            try:
                make_message_id("desk.example.com", "desk")
            finally:
                os._exit(0)
    exited = os.pidfd_open(pid)  # readable once the child has exited
    try:
        if not select.select([exited], [], [], 30)[0]:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung on the lock it inherited")
    finally:
        os.close(exited)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
