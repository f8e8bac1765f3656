"""Batches fetched ahead of the filing, on the connection's thread (processor.connection_thread).

The filing thread takes the batches in order (`next_batch`) and, after filing one, says so
(`filed`) and asks for the queue to be topped up again (`fill`, given to the connection's
thread). The batch being filed counts as held until it is filed, as the ones waiting do. Only the
connection's thread asks the server anything, so the filing thread never waits for the
server to say which batch comes next or to send its bytes, unless no batch is ready at all.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

Sized = tuple[list[int], dict[int, int]]  # a batch's UIDs, and the size of each
B = TypeVar("B")

_UNASKED = object()


class FetchAhead(Generic[B]):
    """The queue of fetched batches not yet filed.

    `fits(queued, upcoming)` says whether the batch `upcoming` may be fetched while the
    batches whose sizes are `queued` wait to be filed; the first is always fetched."""

    def __init__(self, batches: Iterator[Sized], fetch: Callable[[Sized], B],
                 sizes_of: Callable[[B], dict[int, int]],
                 fits: Callable[[list[dict[int, int]], dict[int, int]], bool]) -> None:
        self._batches, self._fetch, self._sizes_of, self._fits = batches, fetch, sizes_of, fits
        self._ready: collections.deque[B] = collections.deque()
        self._filing: B | None = None  # taken by the filing thread, not yet filed
        self._upcoming: object = _UNASKED  # the next batch to fetch: Sized, None at the end
        self._changed = threading.Condition()
        self._ended = False  # no batch is left to fetch
        self._failed: BaseException | None = None
        self._stopped = False

    # -- on the connection's thread -------------------------------------------------------
    def fill(self) -> None:
        """Fetch batches until the queue is full or none is left. A failure is kept for
        `next_batch` to raise on the filing thread; nothing is fetched after it."""
        if self._failed is not None:
            return  # the connection failed: the filing raises it once the fetched are filed
        try:
            while not self._stopped:
                if self._upcoming is _UNASKED:
                    self._upcoming = next(self._batches, None)
                upcoming = self._upcoming
                if upcoming is None:
                    with self._changed:
                        self._ended = True
                        self._changed.notify_all()
                    return
                assert isinstance(upcoming, tuple)
                with self._changed:
                    held = [self._filing] if self._filing is not None else []
                    queued = [self._sizes_of(batch) for batch in [*held, *self._ready]]
                if queued and not self._fits(queued, upcoming[1]):
                    return
                fetched = self._fetch(upcoming)
                self._upcoming = _UNASKED
                with self._changed:
                    self._ready.append(fetched)
                    self._changed.notify_all()
        except BaseException as exc:  # noqa: BLE001 - raised on the filing thread, by next_batch
            with self._changed:
                self._failed = exc
                self._changed.notify_all()

    # -- on the filing thread -------------------------------------------------------------
    def next_batch(self) -> B | None:
        """The next batch to file, waiting for it if need be; None when none is left.

        After a fetch failed, the batches fetched whole before it are still given to be
        filed (their bytes are all here, and filing them loses nothing), then the failure
        is raised."""
        with self._changed:
            self._changed.wait_for(lambda: self._ready or self._ended or self._failed)
            if self._ready:
                self._filing = self._ready.popleft()
                return self._filing
            if self._failed is not None:
                raise self._failed
            return None

    def filed(self) -> None:
        """The batch last taken is filed: it no longer counts as held."""
        with self._changed:
            self._filing = None

    def stop(self) -> None:
        """Fetch nothing more (a `fill` under way ends after its current batch)."""
        self._stopped = True

    def unfiled(self) -> list[B]:
        """The batches fetched and not taken; call after the connection's thread has ended."""
        with self._changed:
            left, self._ready = list(self._ready), collections.deque()
        return left
