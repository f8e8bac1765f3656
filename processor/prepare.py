"""Before a batch is filed: parse each mail, compute its dedup key and classify it.

This is pure work on the fetched bytes, so it runs outside the batch's transaction and, when
the batch is large enough to pay for it, in worker processes (`processing.parse_processes`):
while this process files one batch in the database, the workers prepare the next (see
processor.poller). A mail over PREPARE_HERE_BYTES is always prepared in this process, since
sending it to another would hold it twice. A worker process that dies takes nothing with it:
the batch is prepared here instead.
"""

from __future__ import annotations

import collections
import dataclasses
import fcntl
import functools
import hashlib
import itertools
import logging
import multiprocessing
import multiprocessing.forkserver
import operator
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from types import MappingProxyType
from typing import Any

from processor.blobstore import BlobStore, StagedFile
from processor.classify import Classification, RuleSet, classify, conditions, model
from processor.dedup import dedup_key
from processor.heap import collect_rarely, return_large_blocks
from processor.imap import FetchedMail
from processor.mail import Address, Attachment, ParsedMessage, parse_message
from processor.mail.limits import ParseLimits

log = logging.getLogger("processor.prepare")

# Rule sets and parsed mails hold read-only mappings; between processes they travel as copies.
def _read_only(mapping: dict[object, object]) -> MappingProxyType[object, object]:
    return MappingProxyType(mapping)


ForkingPickler.register(MappingProxyType, lambda proxy: (_read_only, (dict(proxy),)))


def crosses_processes(*classes: type) -> None:
    """Send instances of these frozen, slotted dataclasses between processes as the values of
    their fields. Pickled as they are, each object goes through the __getstate__ and
    __setstate__ that dataclasses give a slotted class, which look the class's fields up
    again for every object: a prepared batch took twice as long to pickle and to unpickle.
    A class whose __init__ only sets its fields is called with them; one that computes some
    (__post_init__) has them set as they were (`_rebuilt`), as pickle itself would."""
    for cls in classes:
        fields = dataclasses.fields(cls)
        names = tuple(field.name for field in fields)
        getter = operator.attrgetter(*names)
        values = getter if len(names) > 1 else lambda obj, get=getter: (get(obj),)
        if all(field.init for field in fields) and not hasattr(cls, "__post_init__"):
            ForkingPickler.register(cls, functools.partial(_called, cls, values))
        else:
            ForkingPickler.register(cls, functools.partial(_reduced, cls, names, values))


def _called(cls: type, values: Callable[[object], tuple[object, ...]],
            obj: object) -> tuple[Callable[..., object], tuple[object, ...]]:
    return cls, values(obj)


def _reduced(cls: type, names: tuple[str, ...], values: Callable[[object], tuple[object, ...]],
             obj: object) -> tuple[Callable[..., object], tuple[object, ...]]:
    return _rebuilt, (cls, names, values(obj))


def _rebuilt(cls: type, names: tuple[str, ...], values: tuple[object, ...]) -> object:
    made: object = object.__new__(cls)
    for name, value in zip(names, values, strict=True):
        object.__setattr__(made, name, value)
    return made


# A larger mail is prepared here: sent to a worker it would be held twice for a moment (its
# pickled copy), which for the largest (a 30 MB scan) would be most of the memory a poll
# needs. Below it, a few large mails prepared here (decoding and hashing their attachments,
# then decoding them again to store them) cost the filing process about 0.15 s each: with
# 2 MB here, the benchmark's 0.35% of mails of 2.7-4.3 MB took a sixth of its CPU.
PREPARE_HERE_BYTES = 8 * 1024 * 1024
# Below this many mails a batch is prepared here: shipping it costs more than it saves.
MIN_PARALLEL_MAILS = 24
# Mails sent to a worker together. Each chunk's result must travel back through this process
# (whose threads share one interpreter lock with the filing) before the next is sent; 50 keeps
# a worker busy about 80 ms per chunk, longer than that trip (benchmarks/RESULTS.md).
CHUNK_MAILS = 50
# What the pipes to and from the worker processes hold before a writer waits (Linux's most
# for an unprivileged process; the default is 64 KiB).
PIPE_BYTES = 1024 * 1024


class PrepareFailed(Exception):
    """Parsing or fingerprinting raised (the parser promises not to; never trust it)."""


@dataclass(frozen=True, slots=True)
class Recipients:
    """What deciding which of our addresses a mail reached needs: all of them, and the
    mailbox's first, for a mail that names none (Bcc)."""

    ours: frozenset[str]
    fallback: str


@dataclass(frozen=True, slots=True)
class Prepared:
    mail: FetchedMail
    message: ParsedMessage | BaseException
    key: str | None
    # Under the rules the batch was prepared with; None without rules or if classifying
    # failed (the filing stage then classifies again, and quarantines on failure).
    classification: Classification | None
    raw_sha256: str | None = None  # when a worker process computed it


# What travels between the filing process and the worker processes: the rule set and limits
# a batch is prepared under, and what preparing it gives back (a test in
# tests/ingest/test_prepare.py keeps this list whole).
crosses_processes(
    Recipients, ParseLimits, StagedFile, ParsedMessage, Address, Attachment,
    model.Classification, model.Details, model.RuleMatch, model.RuleSet, model.Rule,
    model.Actions, model.Category, conditions.ContainsAny, conditions.ContainsAll,
    conditions.Regex, conditions.Equals, conditions.DomainIn, conditions.All, conditions.Any,
    conditions.Not)


def received_by(message: ParsedMessage, recipients: Recipients) -> list[str]:
    """Which of our monitored addresses this mail reached (To, Cc, or the delivery headers)."""
    seen = {a.address.lower() for a in message.recipients}
    for header in ("delivered-to", "x-original-to"):
        seen.update(v.strip().strip("<>").lower() for v in message.headers.get(header, ()))
    found = sorted(seen & recipients.ours)
    return found or [recipients.fallback]


def prepare_one(raw: bytes, limits: ParseLimits, rules: RuleSet | None,
                recipients: Recipients, *, keep_decoded: bool = False
                ) -> tuple[ParsedMessage | BaseException, str | None, Classification | None]:
    """`keep_decoded`: see parse_message; for a caller that stages the attachments next."""
    try:
        message = parse_message(raw, limits, keep_decoded=keep_decoded)
        key = dedup_key(raw, message)
    except Exception as exc:  # noqa: BLE001 - quarantined with this reason
        return PrepareFailed(f"{exc.__class__.__name__}: {exc}"), None, None
    classification = None
    if rules is not None:
        try:
            classification = classify(message, rules, received_by(message, recipients)[0])
        except Exception:  # noqa: BLE001 - classified again when filed, to report it there
            classification = None
    return message, key, classification


# What a worker process returns for one mail: prepare_one's result, the mail's files it
# wrote to the blob store for the filing process to adopt, and the raw bytes' SHA-256.
Outcome = tuple[ParsedMessage | BaseException, str | None, Classification | None,
                tuple[StagedFile, ...], str | None]


def _prepare_chunk(raws: list[bytes], limits: ParseLimits, rules: RuleSet | None,
                   recipients: Recipients, store_root: str | None) -> list[Outcome]:
    store = worker_store(store_root) if store_root else None
    outcomes = []
    for raw in raws:
        # Staged here, the attachments are written from the bytes decoded to hash them: a
        # second decoding was a tenth of this process's time (benchmarks/RESULTS.md). Held
        # whole, they stay within a shipped mail's size (PREPARE_HERE_BYTES), and they go
        # with _detach_raw, before the mail is sent back.
        message, key, classification = prepare_one(raw, limits, rules, recipients,
                                                   keep_decoded=store is not None)
        raw_sha256, staged = _stage(store, raw, message) if store is not None else (None, ())
        outcomes.append((_detach_raw(message, raw), key, classification, staged, raw_sha256))
    return outcomes


@functools.cache
def worker_store(root: str) -> BlobStore:
    """In a worker process: the blob store at `root`, opened once."""
    return BlobStore(Path(root))


def _stage(store: BlobStore, raw: bytes, message: ParsedMessage | BaseException
           ) -> tuple[str | None, tuple[StagedFile, ...]]:
    """Write the mail's raw bytes and decoded attachments to the store's temporary files here,
    in parallel with the filing, which then only adopts them: creating and writing a few files
    per mail was a quarter of the filing process's time. Returns the raw bytes' SHA-256 too,
    which the filing process then need not compute. Anything that fails here is left to the
    filing process, which stores (or quarantines) the mail itself."""
    if isinstance(message, BaseException):
        return None, ()
    staged: list[StagedFile] = []
    try:
        raw_sha256 = hashlib.sha256(raw).hexdigest()
        # The raw bytes were hashed just now: not again as they are written.
        wanted: list[tuple[Iterable[bytes], str, int, bool]] = [
            ((raw,), raw_sha256, len(raw), False)]
        # Bytes the parser kept were hashed just now too; others are decoded again, and
        # checked against the parser's hash as they are written.
        wanted += [(a.chunks(), a.sha256, a.size, a.decoded is None)
                   for a in message.attachments]
        for pieces, sha256, size, check in wanted:
            written = store.stage_detached(pieces, sha256, size, check=check)
            if written is not None:
                staged.append(written)
    except Exception:  # noqa: BLE001 - the filing process tries again and reports it
        remove_staged(staged)
        return None, ()
    return raw_sha256, tuple(staged)


def remove_staged(staged: Sequence[StagedFile]) -> None:
    for item in staged:
        Path(item.path).unlink(missing_ok=True)


def _worker_started(main_pid: int, claims: Claims | None = None) -> None:
    """A worker process's initializer. Like the service, it gives the space of large mails
    back once it is done with them, and runs the cycle collector rarely (processor.heap):
    parsing makes as many short-lived objects as filing, and the worker took 2 s less CPU
    in a poll of 10,000 mails, which it paced (benchmarks/RESULTS.md)."""
    global _worker_claims
    _worker_claims = claims
    return_large_blocks()
    collect_rarely()
    _die_with_parent(main_pid)


# --- calls the caller may take back until a worker starts them

# Slots shared by the filing process and its workers, one per claimable call in the pool
# (reused in turn: far more than are ever under way at once). A slot holds the call's stamp
# while nobody runs it, minus the stamp once a worker has started it, 0 once the caller has
# taken it back. Stamps only grow, so a reused slot never passes for an earlier call's.
CLAIM_SLOTS = 1024
Claims = Any  # multiprocessing.Array("q", CLAIM_SLOTS): its type is private to multiprocessing
_worker_claims: Claims | None = None  # in a worker process, from its initializer


class Claim:
    """A call handed to the worker processes that the caller can still do itself: `take`
    succeeds until a worker starts it, and then the worker skips it (its future's result is
    None). A call that is in the pool but has not started (behind another chunk) would
    otherwise have to be waited for: the filing process waited for acknowledgements
    queued behind a batch's preparation for 8% of its time (benchmarks/RESULTS.md)."""

    def __init__(self, claims: Claims, slot: int, stamp: int) -> None:
        self._claims, self._slot, self._stamp = claims, slot, stamp

    def take(self) -> bool:
        with self._claims.get_lock():
            if self._claims[self._slot] != self._stamp:
                return False  # started by a worker (or taken already)
            self._claims[self._slot] = 0
            return True


def _run_claimed(slot: int, stamp: int, function: Callable[..., Any], *args: Any) -> Any:
    """In a worker process: run the call unless the caller has taken it back (then None)."""
    claims = _worker_claims
    if claims is None:  # a pool started without claims: nobody can take a call back
        return function(*args)
    with claims.get_lock():
        ours = claims[slot] == stamp
        if ours:
            claims[slot] = -stamp
    return function(*args) if ours else None


def _die_with_parent(main_pid: int) -> None:
    """In a worker process: exit when the service that started it is gone, even killed by
    SIGKILL. Otherwise the worker would wait for work forever, holding the service's log
    pipes open (and, through multiprocessing's forkserver, the forkserver itself)."""
    def watch() -> None:
        while _alive(main_pid):
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="watch-service", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[0] != b"Z"  # a zombie is gone
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


# Stands for the mail's raw bytes in the lazily decoded attachments of a mail sent back by a
# worker process; the filing process puts its own copy of the bytes in its place.
_DETACHED = b""


def _detach_raw(message: ParsedMessage | BaseException,
                raw: bytes) -> ParsedMessage | BaseException:
    """In a worker process: the parsed mail without the raw bytes its lazy attachments hold,
    which the filing process has already, nor the decoded bytes the parser kept for staging;
    sent back with them, a mail with attachments crossed between the processes twice (a
    third of the pickled bytes of a batch)."""
    return _rebind(message, raw, _DETACHED)


def _share_raw(message: ParsedMessage | BaseException,
               raw: bytes) -> ParsedMessage | BaseException:
    """In the filing process: point the attachments of a mail prepared by a worker process at
    our raw bytes, so they decode from the batch that is held once."""
    return _rebind(message, _DETACHED, raw)


def _rebind(message: ParsedMessage | BaseException, old: bytes,
            new: bytes) -> ParsedMessage | BaseException:
    if isinstance(message, BaseException) or not message.attachments:
        return message
    attachments = tuple(_rebound(attachment, old, new) for attachment in message.attachments)
    return dataclasses.replace(message, attachments=attachments)


def _rebound(attachment: Attachment, old: bytes, new: bytes) -> Attachment:
    changes: dict[str, Any] = {} if attachment.decoded is None else {"decoded": None}
    for name in ("source", "pieces"):
        lazy = getattr(attachment, name)
        if isinstance(lazy, functools.partial) and lazy.args and (
                lazy.args[0] is old or lazy.args[0] == old):
            changes[name] = functools.partial(lazy.func, new, *lazy.args[1:])
    return dataclasses.replace(attachment, **changes) if changes else attachment


class PreparedBatch:
    """The preparation of one batch, under way in worker processes or deferred to `result`."""

    def __init__(self, mails: Sequence[FetchedMail], limits: ParseLimits,
                 rules: RuleSet | None, recipients: Recipients,
                 futures: dict[int, Future[list[Outcome]]], store: BlobStore | None = None
                 ) -> None:
        self.mails, self.limits, self.rules, self.recipients = mails, limits, rules, recipients
        self._futures = futures  # index of a chunk's first mail -> its preparation
        self._store = store
        self._result: list[Prepared] | None = None

    def result(self) -> list[Prepared]:
        """The prepared mails; files the workers staged are adopted by the blob store in the
        calling thread, whose transaction will refer to them (see BlobStore.adopt)."""
        if self._result is None:
            self._result = self._collect()
        return self._result

    def cancel(self) -> None:
        """Not to be filed: stop what has not started, and remove what the workers staged.
        After `result` the staged files belong to the blob store (its `discard`)."""
        if self._result is not None:
            return
        for future in self._futures.values():
            if not future.cancel():
                future.add_done_callback(_remove_staged_of)

    def _collect(self) -> list[Prepared]:
        done: dict[int, Outcome] = {}
        for start, future in self._futures.items():
            try:
                for offset, outcome in enumerate(future.result()):
                    done[start + offset] = outcome
            except Exception as exc:  # noqa: BLE001 - a dead or failing worker process
                log.warning("a preparing process failed (%s: %s); preparing its mails here",
                            exc.__class__.__name__, exc)
        prepared = []
        for index, mail in enumerate(self.mails):
            if index in done:
                message, key, classification, staged, raw_sha256 = done[index]
                for item in staged:
                    if self._store is not None:
                        self._store.adopt(item)
                    else:
                        remove_staged([item])
                prepared.append(Prepared(mail, _share_raw(message, mail.raw), key,
                                         classification, raw_sha256))
            else:
                prepared.append(Prepared(mail, *prepare_one(mail.raw, self.limits, self.rules,
                                                            self.recipients)))
        return prepared


def _remove_staged_of(future: Future[list[Outcome]]) -> None:
    if not future.cancelled() and future.exception() is None:
        for *_, staged, _raw_sha256 in future.result():
            remove_staged(staged)


class _Dispatcher:
    """Hands work to a process pool a little at a time, urgent work first.

    The pool runs what it is given in order. A batch's acknowledgements (processor.composing)
    are needed before the batch can be committed, while the next batch, given to the pool
    before them, is not needed until then: given at once, the acknowledgements waited behind
    the whole next batch, and the filing process waited with them. So at most `in_flight`
    chunks are in the pool at a time, and urgent work goes in first as soon as one is done.

    The preparer lets each process run one chunk with a second waiting behind it. With only
    the running one for later work (fc7a2b7, since undone), the process sat idle after each
    chunk while the result and the next chunk went through threads of the filing process,
    which waited for its interpreter lock: 14% of a worker's time in a poll of 10,000 mails,
    and polls 0.6-1.2 s slower (benchmarks/RESULTS.md). Urgent work waits for at most the
    chunk running and the one behind it, so the filing process composes more of its
    acknowledgements itself (12% of its time): less than the worker lost idling.
    """

    def __init__(self, executor: ProcessPoolExecutor, in_flight: int) -> None:
        self.executor = executor
        self.broken = False
        self._limit = in_flight
        self._in_flight = 0
        self._lock = threading.Lock()
        self._urgent: collections.deque[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]]
        self._urgent = collections.deque()
        self._later: collections.deque[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]]
        self._later = collections.deque()

    def submit(self, urgent: bool, function: Callable[..., Any], *args: Any) -> Future[Any]:
        ours: Future[Any] = Future()
        with self._lock:
            (self._urgent if urgent else self._later).append((ours, function, args))
        self._pump()
        return ours

    def _pump(self) -> None:
        while True:
            with self._lock:
                if self._in_flight >= self._limit or not (self._urgent or self._later):
                    return
                ours, function, args = (self._urgent or self._later).popleft()
                if not ours.set_running_or_notify_cancel():  # cancelled while it waited
                    continue
                self._in_flight += 1
            try:
                theirs = self.executor.submit(function, *args)
            except BaseException as exc:  # noqa: BLE001 - a broken pool: the caller works here
                self.broken = True
                with self._lock:
                    self._in_flight -= 1
                ours.set_exception(exc)
                continue
            theirs.add_done_callback(functools.partial(self._done, ours))

    def _done(self, ours: Future[Any], theirs: Future[Any]) -> None:
        with self._lock:
            self._in_flight -= 1
        if theirs.cancelled():
            ours.set_exception(BrokenProcessPool("the worker processes were shut down"))
        elif theirs.exception() is not None:
            if isinstance(theirs.exception(), BrokenProcessPool):
                self.broken = True
            ours.set_exception(theirs.exception())  # type: ignore[arg-type]
        else:
            ours.set_result(theirs.result())
        self._pump()

    def close(self) -> None:
        with self._lock:
            waiting = [*self._urgent, *self._later]
            self._urgent.clear()
            self._later.clear()
        for ours, _, _ in waiting:
            ours.cancel()
        self.executor.shutdown(wait=True, cancel_futures=True)


class Preparer:
    """Worker processes for `prepare`, started on first use and kept for the process's life."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._pool_of: _Dispatcher | None = None
        self._claims: Claims | None = None  # the pool's (see Claim)
        self._stamps = itertools.count(1)
        # Batches are given from a connection's thread (processor.connection_thread),
        # acknowledgements from the filing thread, and `run` polls several mailboxes at once:
        # one pool for them all.
        self._pool_lock = threading.Lock()

    @staticmethod
    def automatic() -> int:
        """One process per core beyond the one filing, at most four."""
        return max(0, min(4, (os.cpu_count() or 1) - 1))

    def submit(self, mails: Sequence[FetchedMail], limits: ParseLimits, rules: RuleSet | None,
               recipients: Recipients, store: BlobStore | None = None) -> PreparedBatch:
        """Start preparing `mails` (in order); the small ones go to the worker processes,
        which also stage their files in `store` when given (see `_stage`)."""
        futures = {}
        shippable = [i for i, m in enumerate(mails) if len(m.raw) <= PREPARE_HERE_BYTES]
        if self.processes > 0 and len(shippable) >= MIN_PARALLEL_MAILS:
            pool = self._pool()
            # Chunks of consecutive small mails; a large mail between them is prepared here.
            runs: list[list[int]] = []
            for index in shippable:
                if runs and runs[-1][-1] == index - 1 and len(runs[-1]) < CHUNK_MAILS:
                    runs[-1].append(index)
                else:
                    runs.append([index])
            for run in runs:
                futures[run[0]] = pool.submit(
                    False, _prepare_chunk, [mails[i].raw for i in run], limits, rules,
                    recipients, str(store.root) if store is not None else None)
        return PreparedBatch(mails, limits, rules, recipients, futures, store)

    def start_early(self) -> None:
        """Start the process the workers are forked from now, while this one goes on starting
        (configuration, database, the mailbox's login): it loads the parsing code once, which
        took 0.3-0.6 s before the first batch could be prepared. Nothing more is started
        until there is work, and a server that cannot be started now is tried again then."""
        if self.processes <= 0:
            return
        try:
            _forkserver()
            multiprocessing.forkserver.ensure_running()
        except Exception as exc:  # noqa: BLE001 - never fatal: the pool starts it when needed
            log.debug("the preparing processes' server did not start early: %s", exc)

    def call(self, function: Callable[..., Any], *args: Any) -> Future[Any] | None:
        """Run `function(*args)` in a worker process before any batch still waiting to be
        prepared; None when there are no worker processes."""
        if self.processes <= 0:
            return None
        return self._pool().submit(True, function, *args)

    def call_claimable(self, function: Callable[..., Any], *args: Any
                       ) -> tuple[Future[Any], Claim] | None:
        """As `call`, with a Claim by which the caller can do the call itself instead, until a
        worker process starts it; the future's result is then None."""
        if self.processes <= 0:
            return None
        with self._pool_lock:
            pool, claims = self._locked_pool(), self._claims
            stamp = next(self._stamps)
        assert claims is not None  # made with the pool
        slot = stamp % CLAIM_SLOTS
        with claims.get_lock():
            claims[slot] = stamp
        return (pool.submit(True, _run_claimed, slot, stamp, function, *args),
                Claim(claims, slot, stamp))

    def _pool(self) -> _Dispatcher:
        with self._pool_lock:
            return self._locked_pool()

    def _locked_pool(self) -> _Dispatcher:
        if self._pool_of is not None and self._pool_of.broken:
            # A worker process died (or the pool could not start one): the work given to it
            # is done here by its callers, and later work goes to a new pool.
            log.warning("the preparing processes failed; starting new ones")
            self._pool_of.executor.shutdown(wait=False, cancel_futures=True)
            self._pool_of = None
        if self._pool_of is None:
            context = _forkserver()
            self._claims = context.Array("q", CLAIM_SLOTS)
            executor = ProcessPoolExecutor(self.processes, mp_context=context,
                                           initializer=_worker_started,
                                           initargs=(os.getpid(), self._claims))
            widen_pipes(executor)
            # One chunk running in each process and one waiting behind it, so a process
            # never waits for the filing process to hand it the next (see _Dispatcher).
            self._pool_of = _Dispatcher(executor, 2 * self.processes)
        return self._pool_of

    def close(self) -> None:
        with self._pool_lock:
            if self._pool_of is not None:
                self._pool_of.close()
                self._pool_of = None


def _forkserver() -> multiprocessing.context.BaseContext:
    """The context worker processes start in: forked from a server process that loaded this
    module, never from this one, which runs threads (mailbox workers, the sender)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["processor.prepare"])
    return context


def widen_pipes(executor: ProcessPoolExecutor) -> None:
    """Let the pipes that carry chunks to the worker processes and results back hold
    PIPE_BYTES. With 64 KiB, a chunk of mails (about 2 MB) crossed in 30 writes, and after
    each one the thread writing it waited for the interpreter lock, held by the filing:
    the workers sat waiting for their input, and the poll of the benchmark's 10,000 mails
    took 1.5-2 s longer. Where the pipes cannot be widened (not Linux, or the queues'
    insides changed), they stay as they are: slower, not wrong."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is None:
        return
    # The standard library keeps these pipes private: looked up with care.
    ends = [getattr(getattr(executor, "_call_queue", None), "_writer", None),
            getattr(getattr(executor, "_result_queue", None), "_writer", None)]
    for end in ends:
        if end is None:
            log.debug("a preparing process's pipe was not found; left as it is")
            continue
        try:
            fcntl.fcntl(end.fileno(), set_size, PIPE_BYTES)
        except OSError as exc:  # over /proc/sys/fs/pipe-max-size, or out of pipe quota
            log.debug("a preparing process's pipe stays as it is: %s", exc)
