"""A large batch's acknowledgements, composed in the preparing processes while it is filed.

Rendering an acknowledgement's templates, composing and checking the message and writing its
copy for the blob store took about 1 ms of the filing process's time per new case, and none
of it needs the database: only the case reference, which the filing assigns. So in the fast
filing of a batch prepared by the worker processes (processor.pipeline), the filing process
decides whether to acknowledge (processor.ack.request_acknowledgement) and goes on with the
next mail, while a worker composes the acknowledgement. Before the batch's rows are written
(processor.db.deferred), the composed mails are queued in the outbox and recorded on their
cases, in the order they were decided and in the batch's transaction: an acknowledgement
exists exactly when its case does, as when it is composed here.

A worker that fails costs nothing: what it did not return is composed here.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from email.policy import SMTP
from pathlib import Path
from typing import TYPE_CHECKING

from processor.ack import AckRequest, compose_requested
from processor.blobstore import BlobStore, StagedFile
from processor.compose import OutgoingCopy, outgoing_copy
from processor.errors import ComplaintsError
from processor.prepare import Claim, Preparer, crosses_processes, remove_staged, worker_store
from processor.render import TemplateRenderer

# A worker process imports this module to compose (`_compose_chunk`): it imports nothing of the
# database, whose modules (SQLAlchemy, the models) took a worker 0.75 s to load, once per run.
if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger("processor.composing")

# Requests sent to a worker together: one round trip per few mails, and the first ones back
# long before the batch ends.
CHUNK_REQUESTS = 16


@dataclass(frozen=True, slots=True)
class Composed:
    """An acknowledgement composed: its bytes, what its record on the case holds, and the
    bytes' file staged for the blob store (None when the store had them already)."""

    raw: bytes
    copy: OutgoingCopy
    staged: StagedFile | None


@dataclass(frozen=True, slots=True)
class NotComposed:
    """Composing refused the acknowledgement (processor.errors.ComplaintsError)."""

    error: str  # the exception's class name, as the case's ack-skipped event gives it
    detail: str


Result = Composed | NotComposed
# Called in the filing process, in the order the requests were made, with the result and,
# for a composed mail, the SHA-256 of its bytes staged in the blob store.
Finish = Callable[[Result, str | None], None]
# A chunk of requests, its future in the worker processes (None: composed here) and the
# claim by which this process can still compose it itself (processor.prepare.Claim).
_Sent = tuple[list[tuple[AckRequest, Finish]], Future[list[Result] | None] | None,
              Claim | None]


crosses_processes(AckRequest, Composed, NotComposed, OutgoingCopy)


def compose(request: AckRequest, renderer: TemplateRenderer,
            store: BlobStore | None) -> Result:
    try:
        message = compose_requested(request, renderer)
    except ComplaintsError as exc:
        return NotComposed(exc.__class__.__name__, str(exc))
    raw = message.as_bytes(policy=SMTP)
    staged = store.stage_detached((raw,), hashlib.sha256(raw).hexdigest(), len(raw)) \
        if store is not None else None
    return Composed(raw, outgoing_copy(message), staged)


def _compose_chunk(requests: Sequence[AckRequest], directories: tuple[str, ...],
                   default_language: str, store_root: str) -> list[Result]:
    """In a worker process."""
    renderer = _renderer(directories, default_language)
    store = worker_store(store_root)
    return [compose(request, renderer, store) for request in requests]


@functools.cache
def _renderer(directories: tuple[str, ...], default_language: str) -> TemplateRenderer:
    return TemplateRenderer([Path(d) for d in directories], default_language)


class ComposingElsewhere:
    """The acknowledgements of one batch under way in the worker processes."""

    def __init__(self, preparer: Preparer, renderer: TemplateRenderer,
                 store: BlobStore) -> None:
        self.preparer, self.renderer, self.store = preparer, renderer, store
        self._waiting: list[tuple[AckRequest, Finish]] = []
        self._sent: list[_Sent] = []

    def add(self, request: AckRequest, finish: Finish) -> None:
        self._waiting.append((request, finish))
        if len(self._waiting) >= CHUNK_REQUESTS:
            self._send()

    def _send(self) -> None:
        chunk, self._waiting = self._waiting, []
        called = self.preparer.call_claimable(
            _compose_chunk, [request for request, _ in chunk],
            tuple(str(d) for d in self.renderer.directories), self.renderer.default_language,
            str(self.store.root))
        self._sent.append((chunk, *called) if called is not None else (chunk, None, None))

    def finish(self, session: Session) -> None:
        """Queue every acknowledgement requested so far, in order (DeferredRows calls this).

        The batch waits for them, so what no worker has started yet is composed here rather
        than waited for: the last chunks would otherwise wait behind the next batch's."""
        if self._waiting:
            self._sent.append((self._waiting, None, None))
            self._waiting = []
        sent, self._sent = self._sent, []
        # Composed here from the last chunk back, one at a time, while the workers go on from
        # the first: a chunk is taken back only when its turn comes, so the workers may start
        # it meanwhile. Taken back all at once, two in five were composed here. A chunk
        # already in the pool is taken back too, unless a worker has started it: it would
        # wait there behind a chunk of the next batch's preparation.
        here: dict[int, list[Result]] = {}
        try:
            for index in range(len(sent) - 1, -1, -1):
                chunk, future, claim = sent[index]
                if future is None or future.cancel() or (claim is not None and claim.take()):
                    here[index] = [compose(request, self.renderer, None)
                                   for request, _ in chunk]
        except BaseException:
            self._sent = sent  # cancel() removes what the workers staged
            raise
        for index, (chunk, future, _) in enumerate(sent):
            try:
                results = here[index] if index in here else self._results(chunk, future)
            except BaseException:  # interrupted while waiting: cancel() removes their files
                self._sent = sent[index:]
                raise
            for done, ((_, finish), result) in enumerate(zip(chunk, results, strict=True)):
                try:
                    finish(result, self._stored(result))
                except BaseException:
                    # The batch fails: files adopted so far go with its rollback, the rest
                    # of this chunk's here, the later chunks' in cancel().
                    remove_staged([r.staged for r in results[done + 1:]
                                   if isinstance(r, Composed) and r.staged is not None])
                    self._sent = sent[index + 1:]
                    raise

    def _stored(self, result: Result) -> str | None:
        if not isinstance(result, Composed):
            return None
        if result.staged is None:  # composed here, or the store had the bytes already
            return self.store.put(result.raw)
        self.store.adopt(result.staged)  # the batch's rollback removes it
        return result.staged.sha256

    def _results(self, chunk: list[tuple[AckRequest, Finish]],
                 future: Future[list[Result] | None] | None) -> list[Result]:
        if future is not None:
            try:
                results = future.result()
                if results is not None:  # None: the worker skipped it: composed below
                    return results
            except Exception as exc:  # noqa: BLE001 - a dead or failing worker process
                log.warning("a preparing process failed composing acknowledgements (%s: %s); "
                            "composing them here", exc.__class__.__name__, exc)
        return [compose(request, self.renderer, None) for request, _ in chunk]

    def cancel(self) -> None:
        """The batch failed: what the workers staged for it goes."""
        self._waiting = []
        for _, future, _ in self._sent:
            if future is not None and not future.cancel():
                future.add_done_callback(_remove_staged_of)
        self._sent = []


def _remove_staged_of(future: Future[list[Result] | None]) -> None:
    results = None if future.cancelled() or future.exception() is not None else future.result()
    if results is not None:  # None: taken back before a worker started it, nothing staged
        remove_staged([r.staged for r in results
                       if isinstance(r, Composed) and r.staged is not None])


def composing_elsewhere(session: Session) -> ComposingElsewhere | None:
    """This batch's acknowledgements under way elsewhere, or None: compose them here."""
    from processor.db.deferred import deferring  # the filing process's side (see the imports)

    deferred = deferring(session)
    if deferred is None:
        return None
    for work in deferred.unfinished:
        if isinstance(work, ComposingElsewhere):
            return work
    return None
