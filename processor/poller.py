"""The loop: fetch new mail in batches, file each batch in one transaction, then act on the server.

Order of operations for every batch, which is what makes the "never lose a mail" promise:
  1. fetch with BODY.PEEK[] (nothing changes on the server);
  2. write raw bytes and attachments to the blob store and fsync them;
  3. commit the messages, cases, quarantine entries and the advanced folder cursor together;
  4. only then move (or flag) the mails on the server.
A crash between 3 and 4 leaves committed mail in the folder at or below the cursor; the next
poll finds it first (`_finish_pending`) and moves it according to what was recorded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from processor import failpoints
from processor.ahead import FetchAhead
from processor.config import MailboxSettings
from processor.connection_thread import ConnectionThread
from processor.coordination import HeldLease
from processor.db import conflicts_as, session_scope
from processor.db.models import PollRun
from processor.db.store import copies_for_uids, mailbox_state
from processor.errors import ConcurrentWrite, LeaseLost, MailboxError, MailboxUnavailable
from processor.imap import FetchedMail, FolderStatus, MailboxConnection
from processor.logsetup import held_logs
from processor.pipeline import (
    IngestContext,
    MailOutcome,
    NeedsCare,
    ingest_batch,
    quarantine_mail,
)
from processor.prepare import Prepared, PreparedBatch
from processor.runtime import Runtime

log = logging.getLogger("processor.poller")
T = TypeVar("T")

# A batch's mails are all held until its commit, and the batches fetched ahead of it while
# they are prepared (see _poll): at most BATCHES_AHEAD of them, and only while the batches not
# yet filed hold at most MAX_UNFILED_BYTES (one batch ahead always).
# Four ahead, not two: the preparing processes then have work in hand whatever the batch being
# filed costs them (composing its acknowledgements), and the filing waits for them less; 8%
# faster on the benchmark (benchmarks/RESULTS.md). Within 18 MB, not 24: batches of small
# mails are mostly cut at 6 MB too, so 24 MB held a fourth full batch through most of a
# backlog, 8-10 MiB of peak memory for no throughput measurable beside the noise.
MAX_BATCH_BYTES = 6 * 1024 * 1024
BATCHES_AHEAD = 4
MAX_UNFILED_BYTES = 3 * MAX_BATCH_BYTES
# A batch that collides with another worker's commit is rolled back and filed again; after
# this many tries the colliding mails are filed one by one (and quarantined if they still fail).
CONFLICT_RETRIES = 4


@dataclass(slots=True)
class PollStats:
    mailbox: str
    fetched: int = 0
    stored: int = 0
    duplicates: int = 0
    ignored: int = 0
    quarantined: int = 0
    errors: int = 0
    pending_finished: int = 0
    duration_ms: int = 0
    skipped: bool = False  # another worker held the folder's lease
    failed: str | None = None  # why the mailbox could not be polled at all (cannot connect)
    # Filed mails the server refused to move (or flag): they stay in the folder, and each
    # poll asks again (see Poller._tidy); `refused` is the server's last answer.
    unmoved: int = 0
    refused: str | None = None

    def count(self, outcome: MailOutcome) -> None:
        self.fetched += 1
        if outcome.outcome == "stored":
            self.stored += 1
        elif outcome.outcome == "duplicate":
            self.duplicates += 1
        elif outcome.outcome == "ignored":
            self.ignored += 1
        else:
            self.quarantined += 1


Progress = Callable[[int], None]


@dataclass(slots=True)
class Fetched:
    """A batch fetched from the server and being prepared, not yet filed."""

    batch: list[int]
    prepared: PreparedBatch
    oversized: list[int]
    sizes: dict[int, int]


@dataclass
class Poller:
    """Polls one configured mailbox; the same object is reused across polls by `run`."""

    runtime: Runtime
    mailbox: MailboxSettings
    should_stop: Callable[[], bool] = lambda: False
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # The folder's lease when several workers may run; every batch commit is fenced by it.
    lease: HeldLease | None = None

    def __post_init__(self) -> None:
        self.settings, self.engine = self.runtime.settings, self.runtime.engine
        self.store = self.runtime.store
        # Why filed mail can be neither moved nor marked in this poll, if it cannot (_poll).
        self._untouchable: str | None = None
        # The connection's own thread while new mail is ingested (_poll).
        self._server: ConnectionThread | None = None

    def poll(self, connection: MailboxConnection,
             on_backlog: Callable[[int], Progress | None] | None = None) -> PollStats:
        """One pass over the folder: finish pending server actions, then ingest new mail."""
        started = time.monotonic()
        stats = PollStats(self.mailbox.name)
        run_id = self._start_run()
        try:
            self._poll(connection, stats, on_backlog)
        except Exception as exc:
            stats.errors += 1
            self._finish_run(run_id, stats, started, error=str(exc))
            raise
        self._finish_run(run_id, stats, started)
        return stats

    def _poll(self, connection: MailboxConnection, stats: PollStats,
              on_backlog: Callable[[int], Progress | None] | None) -> None:
        mb = self.mailbox
        leave = self.settings.processing.after_processing == "leave"
        for folder in () if leave else (mb.processed_folder, mb.quarantine_folder):
            try:
                connection.ensure_folder(folder)
            except MailboxUnavailable:
                raise
            except MailboxError as exc:  # moving there is refused too: mail is filed all the same
                self._refused(stats, exc, folder)
        status = connection.select(mb.folder, readonly=leave)
        self._untouchable = None if leave else self._why_untouchable(status)
        if self._untouchable is not None:
            stats.refused = self._untouchable
            log.warning("%s: %s", mb.name, self._untouchable)
        with session_scope(self.engine) as session:
            state = mailbox_state(session, mb.name, mb.folder, self.clock())
            if state.uidvalidity != status.uidvalidity:
                if state.uidvalidity is not None:
                    log.warning("%s/%s: UIDVALIDITY changed from %s to %s; rescanning the folder "
                                "(stored mail is recognised and not doubled)", mb.name, mb.folder,
                                state.uidvalidity, status.uidvalidity)
                state.uidvalidity, state.last_uid = status.uidvalidity, 0
                state.updated_at = self.clock()
            last_uid = state.last_uid
        ctx = self.runtime.ingest_context(mb, mb.folder, status.uidvalidity, self.clock)
        stats.pending_finished = self._finish_pending(connection, ctx, last_uid, stats)
        new_uids = connection.uids_after(last_uid)
        if not new_uids:
            return
        progress = on_backlog(len(new_uids)) if on_backlog else None
        # From here the connection belongs to its own thread (processor.connection_thread):
        # batches are fetched ahead and filed ones moved while this thread files the next.
        server = ConnectionThread(mb.name)
        self._server = server
        # Batches ahead: fetched and handed to the preparing processes before the one in
        # hand is filed, so parsing and classifying them overlap with the filing, and the
        # processes have work while this one commits, moves and fetches: as many as fit,
        # with the next to file, in MAX_UNFILED_BYTES, so a stretch of large mails does not
        # hold several full batches at once.
        ahead: FetchAhead[Fetched] = FetchAhead(
            self._batches(connection, new_uids),
            lambda sized: self._fetch(connection, ctx, sized), lambda fetched: fetched.sizes,
            lambda queued, upcoming: len(queued) <= BATCHES_AHEAD and self._held(
                *queued, upcoming) <= MAX_UNFILED_BYTES)
        try:
            server.give(ahead.fill)
            while True:
                current = ahead.next_batch()
                if current is None:
                    return
                if self.should_stop():
                    log.info("%s: stopping before the next batch as asked", mb.name)
                    current.prepared.cancel()  # not filed: the files its workers wrote go
                    return
                with held_logs():  # the batch's lines in one write, once it is committed
                    outcomes = self._ingest(connection, ctx, current)
                ahead.filed()
                server.give(ahead.fill)  # top the queue up, before this batch's move
                for outcome in outcomes:
                    stats.count(outcome)
                if progress:
                    progress(len(outcomes))
                server.give(self._act_on_server, connection, outcomes, stats)
                if len(outcomes) < len(current.batch):  # stopped in the middle of the batch
                    return
        finally:
            self._server = None
            ahead.stop()
            try:
                server.close()  # the moves given finish, and their errors are raised
            finally:
                for fetched in ahead.unfiled():  # not filed: the files their workers wrote go
                    fetched.prepared.cancel()

    def _why_untouchable(self, status: FolderStatus) -> str | None:
        """Why nothing filed can be moved or marked in this folder, asked before trying: the
        server would refuse every move of a folder it opened read-only, and in flag mode
        would answer OK to the STORE of a keyword it does not keep, and drop it. Then the
        search for mail still to move or mark would find every mail ever filed, each poll."""
        folder, flag = self.mailbox.folder, self.settings.processing.processed_flag
        hint = ('(hint: set [processing] after_processing = "leave" to say so, or let the '
                'account change the folder)')
        if status.read_only:
            return (f"the server lets the account only read {folder!r} (it opened it "
                    f"read-only), so filed mail stays there, unmoved and unmarked {hint}")
        if self.settings.processing.after_processing == "flag" and \
                not status.keeps_keyword(flag):
            kept = " ".join(status.permanent_flags or ()) or "none"
            return (f"the server keeps no keyword {flag} in {folder!r} (its PERMANENTFLAGS: "
                    f"{kept}), so filed mail stays unmarked (hint: set [processing] "
                    'after_processing = "move", or "leave" to say so, or let the account '
                    "change flags in the folder)")
        return None

    # -- batches ------------------------------------------------------------------------------
    def _batches(self, connection: MailboxConnection,
                 uids: Sequence[int]) -> Iterator[tuple[list[int], dict[int, int]]]:
        """Group UIDs by count and by total size, so a batch of large mails stays small; each
        batch comes with the sizes of its mails (asked once per window)."""
        size_limit = self.settings.processing.max_message_bytes
        count_limit = self.settings.processing.batch_size
        for start in range(0, len(uids), count_limit):
            window = list(uids[start:start + count_limit])
            sizes = connection.sizes(window)
            batch: list[int] = []
            batch_bytes = 0
            for uid in window:
                if uid not in sizes:  # expunged meanwhile
                    continue
                size = min(sizes[uid], size_limit)
                if batch and batch_bytes + size > MAX_BATCH_BYTES:
                    yield batch, {uid: sizes[uid] for uid in batch}
                    batch, batch_bytes = [], 0
                batch.append(uid)
                batch_bytes += size
            if batch:
                yield batch, {uid: sizes[uid] for uid in batch}

    def _held(self, *sizes: dict[int, int]) -> int:
        """The raw bytes batches with these sizes hold once fetched (a mail over the size
        limit is never fetched)."""
        limit = self.settings.processing.max_message_bytes
        return sum(size for batch in sizes for size in batch.values() if size <= limit)

    def _fetch(self, connection: MailboxConnection, ctx: IngestContext,
               sized: tuple[list[int], dict[int, int]]) -> Fetched:
        """Fetch a batch and start preparing it (processor.prepare)."""
        batch, sizes = sized
        size_limit = self.settings.processing.max_message_bytes
        oversized = [uid for uid in batch if sizes.get(uid, 0) > size_limit]
        regular = [uid for uid in batch if uid not in oversized]
        mails = list(connection.fetch(regular, sizes))
        prepared = self.runtime.preparer.submit(mails, ctx.limits, ctx.rules, ctx.recipients,
                                                self.store)
        return Fetched(batch, prepared, oversized, sizes)

    def _ingest(self, connection: MailboxConnection, ctx: IngestContext,
                fetched: Fetched) -> list[MailOutcome]:
        batch, oversized, sizes = fetched.batch, fetched.oversized, fetched.sizes
        mails = fetched.prepared.result()
        attempt, careful = 0, False
        while True:
            attempt += 1
            try:
                outcomes = self._file(connection, ctx, batch, mails, oversized, sizes,
                                      retry_conflicts=attempt <= CONFLICT_RETRIES,
                                      careful=careful)
                break
            except ConcurrentWrite as exc:
                self.store.discard()
                log.info("%s: batch collided with another worker (%s); filing it again "
                         "(attempt %d)", ctx.mailbox.name, exc, attempt + 1)
            except LeaseLost:
                self.store.discard()
                raise
            except Exception as exc:
                # NeedsCare, or a row refused at the commit: find the mail, one at a time.
                self.store.discard()
                if careful:
                    raise
                careful = True
                log.info("%s: %s; filing the batch again mail by mail", ctx.mailbox.name,
                         exc if isinstance(exc, NeedsCare) else f"{exc.__class__.__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}")
            except BaseException:
                self.store.discard()  # the transaction rolled back: its staged files go too
                raise
        failpoints.reach("after-commit")
        return sorted(outcomes, key=lambda o: o.uid)

    def _file(self, connection: MailboxConnection, ctx: IngestContext, batch: list[int],
              mails: list[Prepared], oversized: list[int], sizes: dict[int, int], *,
              retry_conflicts: bool, careful: bool) -> list[MailOutcome]:
        # Committed without waiting for the disk: _act_on_server syncs it before the server
        # lets go of the mail (processor.db.durability).
        with conflicts_as(ConcurrentWrite, enabled=retry_conflicts), \
                session_scope(self.runtime.filing.engine) as session:
            outcomes = ingest_batch(session, self.store, ctx, mails, self.should_stop,
                                    retry_conflicts=retry_conflicts, careful=careful)
            if len(outcomes) == len(mails):
                for uid in oversized:
                    outcomes.append(self._quarantine_oversized(session, connection, ctx, uid,
                                                               sizes[uid]))
            cursor = _contiguous_cursor(batch, {o.uid for o in outcomes})
            state = mailbox_state(session, ctx.mailbox.name, ctx.folder, self.clock())
            if cursor > state.last_uid:
                state.last_uid = cursor
                state.updated_at = self.clock()
            # The bytes must be durable before the commit that lets us touch the server copy.
            self.store.sync()
            if self.lease is not None:
                self.lease.fence(session)  # still ours? (row-locked until the commit)
            failpoints.reach("before-commit")
        return outcomes

    def _quarantine_oversized(self, session: object, connection: MailboxConnection,
                              ctx: IngestContext, uid: int, size: int) -> MailOutcome:
        """Kept unparsed, its bytes go from the server to the blob store through a temporary
        file, never held whole: a mail of a gigabyte must not take the desk's memory with it
        (and, killed for it, be fetched again at every start)."""
        reason = (f"mail of {size} bytes is over the limit of "
                  f"{self.settings.processing.max_message_bytes} bytes; kept unparsed")
        log.warning("%s: uid %s quarantined: %s", ctx.mailbox.name, uid, reason)
        raw_sha256 = None
        spooled = self._on_connection(connection.fetch_spooled, uid)
        if spooled is not None:  # else gone meanwhile: the record stays, without the bytes
            with spooled:
                raw_sha256 = self.store.put_stream(spooled.chunks(), spooled.sha256,
                                                   spooled.size)
                size = spooled.size
        quarantine_mail(session, self.store, ctx, FetchedMail(uid, b"", size),  # type: ignore[arg-type]
                        stage="size-limit", reason=reason, raw_sha256=raw_sha256)
        return MailOutcome(uid, "quarantined", reason=reason)

    def _on_connection(self, command: Callable[..., T], *args: object) -> T:
        """Run a command on the connection, on its thread while it has one."""
        return command(*args) if self._server is None else self._server.call(command, *args)

    # -- acting on the server ----------------------------------------------------------------------
    def _act_on_server(self, connection: MailboxConnection, outcomes: list[MailOutcome],
                       stats: PollStats) -> None:
        self.runtime.filing.make_durable()
        # The batch's acknowledgements are on disk now: the sender need not wait for its round.
        self.runtime.outbox_wake.set()
        self._move_or_mark(connection, outcomes, stats)
        failpoints.reach("after-move")

    def _move_or_mark(self, connection: MailboxConnection, outcomes: list[MailOutcome],
                      stats: PollStats) -> None:
        if self.settings.processing.after_processing == "leave":
            return  # read-only access: the cursor alone keeps filed mail from coming back
        if self._untouchable is not None:
            stats.unmoved += len(outcomes)  # reported once per poll (see _poll)
            return
        quarantined = [o.uid for o in outcomes if o.outcome == "quarantined"]
        done = [o.uid for o in outcomes if o.outcome != "quarantined"]
        quarantine, processed = self.mailbox.quarantine_folder, self.mailbox.processed_folder
        self._tidy(stats, quarantined, quarantine,
                   lambda: connection.move(quarantined, quarantine))
        if self.settings.processing.after_processing == "move":
            self._tidy(stats, done, processed, lambda: connection.move(done, processed))
        else:
            flag = self.settings.processing.processed_flag
            self._tidy(stats, done, None, lambda: connection.add_keyword(done, flag))

    def _tidy(self, stats: PollStats, uids: list[int], folder: str | None,
              action: Callable[[], None]) -> None:
        """Move (or flag) filed mail; a server that refuses does not stop the poll.

        The mails are committed and the cursor is past them, so leaving them in the folder
        loses nothing and never files them twice; every poll asks again (_finish_pending).
        What a refusal must not do is stop the filing: one folder the account may not write
        to (an administrator's ACL, a shared mailbox, a full quota on a server that copies)
        would otherwise hold every new complaint back until someone noticed. A lost
        connection still ends the poll: nothing more can be done on it."""
        if not uids:
            return
        try:
            action()
        except MailboxUnavailable:
            raise
        except MailboxError as exc:
            stats.unmoved += len(uids)
            self._refused(stats, exc, folder)

    def _refused(self, stats: PollStats, exc: MailboxError, folder: str | None) -> None:
        """Record (for the poll's record and its output) what the server refused, and how the
        mail stays: `folder` is where it was to go, None for the processed keyword."""
        if folder is None:
            stats.refused = f"{exc}; filed mail stays unmarked until the server allows it"
        else:
            key = ("quarantine_folder" if folder == self.mailbox.quarantine_folder
                   else "processed_folder")
            stats.refused = (
                f"{exc}; filed mail stays in {self.mailbox.folder!r} until the server allows "
                f"it (hint: let the account add mail to {folder!r}, name another folder with "
                f"[mailbox.{self.mailbox.name}] {key}, or, for an account that may only "
                'read, set [processing] after_processing = "leave")')
        log.warning("%s: %s", self.mailbox.name, stats.refused)

    def _finish_pending(self, connection: MailboxConnection, ctx: IngestContext,
                        last_uid: int, stats: PollStats) -> int:
        """Mail at or below the cursor is already committed: move (or flag) what a crash
        interrupted, or what the server refused before (see _tidy)."""
        flag_mode = self.settings.processing.after_processing == "flag"
        if self.settings.processing.after_processing == "leave" or self._untouchable:
            return 0  # nothing to do, or nothing can be done (see _why_untouchable)
        pending = connection.uids_up_to(
            last_uid, unflagged=self.settings.processing.processed_flag if flag_mode else None)
        if not pending:
            return 0
        with session_scope(self.engine) as session:
            copies = copies_for_uids(session, ctx.mailbox.name, ctx.folder, ctx.uidvalidity,
                                     pending)
            outcomes = [MailOutcome(uid, "quarantined" if copy.outcome == "quarantined"
                                    else "stored") for uid, copy in copies.items()]
        unknown = sorted(set(pending) - set(copies))
        if unknown:
            # Not recorded under this cursor (restored from a backup?): ingest them again;
            # deduplication makes that harmless.
            log.warning("%s: %d mails below the cursor were never recorded; ingesting them",
                        ctx.mailbox.name, len(unknown))
            fetched = self._fetch(connection, ctx, (unknown, connection.sizes(unknown)))
            assert fetched is not None
            outcomes += self._ingest(connection, ctx, fetched)
        log.info("%s: moving %d mails filed earlier (an interrupted poll, or a move the server "
                 "refused)", ctx.mailbox.name, len(outcomes))
        self.runtime.filing.make_durable()  # committed by a process that may not have synced
        self._move_or_mark(connection, outcomes, stats)
        return len(outcomes)

    # -- bookkeeping ------------------------------------------------------------------------
    def record_unreachable(self, error: str) -> None:
        """A poll that could not start (the server refused or was away), for `complaints
        status` to show: otherwise an outage would leave only an ageing "last poll"."""
        with session_scope(self.engine) as session:
            now = self.clock()
            session.add(PollRun(mailbox=self.mailbox.name, started_at=now, finished_at=now,
                                worker=self.lease.worker if self.lease else None,
                                errors=1, last_error=error[:2000]))

    def _start_run(self) -> int:
        with session_scope(self.engine) as session:
            run = PollRun(mailbox=self.mailbox.name, started_at=self.clock(),
                          worker=self.lease.worker if self.lease else None)
            session.add(run)
            session.flush()
            return run.id

    def _finish_run(self, run_id: int, stats: PollStats, started: float,
                    error: str | None = None) -> None:
        stats.duration_ms = int((time.monotonic() - started) * 1000)
        with session_scope(self.engine) as session:
            run = session.get(PollRun, run_id)
            assert run is not None
            run.finished_at = self.clock()
            run.fetched, run.stored = stats.fetched, stats.stored
            run.duplicates, run.quarantined = stats.duplicates, stats.quarantined
            run.errors = stats.errors + (1 if stats.refused else 0)
            run.duration_ms, run.last_error = stats.duration_ms, error or stats.refused


def _contiguous_cursor(batch: Sequence[int], handled: set[int]) -> int:
    """The highest UID of the batch such that it and every UID before it were handled.

    A stop in the middle of a batch must never let the cursor jump over a mail."""
    cursor = 0
    for uid in sorted(batch):
        if uid not in handled:
            break
        cursor = uid
    return cursor
