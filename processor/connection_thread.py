"""One mailbox connection's commands, run in order on a thread of their own during a poll.

While a batch is filed, the server can be moving the one filed before it and sending the ones
queued after it: the filing process then never sits idle waiting for the server's answer to a
MOVE, or for the bytes of a batch it asked for ahead of time. On the benchmark's 10,000 mails,
those round trips were a seventh of the filing thread's time (benchmarks/RESULTS.md), and on
a server across a network they are longer.

An IMAP connection is one conversation: a single thread holds it, and takes the commands in
the order they were given. The order of the promise is kept by who gives them: a batch's move
is given only after its commit (processor.poller).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class ConnectionThread:
    """Commands for one connection, run one at a time in the order given."""

    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"imap-{name}")
        self._given: list[Future[Any]] = []  # what was given without waiting for it

    def submit(self, command: Callable[..., T], *args: Any) -> Future[T]:
        """Run `command(*args)` after everything given before; its result or error comes
        through the future."""
        return self._executor.submit(command, *args)

    def call(self, command: Callable[..., T], *args: Any) -> T:
        """Run `command(*args)` after everything given before, and wait for it."""
        return self.submit(command, *args).result()

    def give(self, command: Callable[..., object], *args: Any) -> None:
        """Run `command(*args)` after everything given before, without waiting; an error it
        raises is raised by the next `check` (or `close`)."""
        self._given.append(self.submit(command, *args))
        self.check()

    def check(self) -> None:
        """Raise the first error of what was given and has ended."""
        while self._given and self._given[0].done():
            self._given.pop(0).result()

    def close(self) -> None:
        """Wait for everything given (a filed batch's move is worth finishing), then raise its
        first error, if any."""
        self._executor.shutdown(wait=True)
        given, self._given = self._given, []
        for future in given:
            future.result()
