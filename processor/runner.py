"""Long-running service: one worker thread per mailbox, IDLE or interval polling, reconnects.

`complaints poll --once` calls `poll_all_once`; `complaints run` calls `run_service`, which
keeps polling until SIGTERM/SIGINT, finishing the mail in hand before it exits.

Each mailbox thread polls only while this process holds the folder's lease
(processor.coordination); otherwise it stands by and tries again, so any number of processes
may run against one PostgreSQL database and each folder is polled by exactly one of them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from processor.blobstore import BlobStore
from processor.config import MailboxSettings
from processor.coordination import Coordinator, HeldLease
from processor.errors import ComplaintsError, LeaseLost, MailboxError, MailboxUnavailable
from processor.imap import MailboxConnection
from processor.outbox import drain_outbox
from processor.poller import Poller, PollStats, Progress
from processor.runtime import Runtime
from processor.scheduler import tick

log = logging.getLogger("processor.runner")

# RFC 2177 servers may drop an IDLE after 30 minutes; re-issue well before that.
MAX_IDLE_SECONDS = 29 * 60 - 60
# An idle connection the server ends after this long is routine; sooner, something is wrong.
QUIET_RECONNECT_AFTER_SECONDS = 5.0


def coordinator_for(runtime: Runtime) -> Coordinator:
    return Coordinator(runtime.engine, runtime.settings.workers.takeover_seconds)


def poll_all_once(runtime: Runtime,
                  on_backlog: Callable[[int], Progress | None] | None = None,
                  mailboxes: tuple[MailboxSettings, ...] | None = None) -> list[PollStats]:
    """Poll every configured mailbox once; a mailbox another worker is polling right now is
    skipped (reported as such). Raises WorkerRefused on SQLite while `run` is running."""
    results = []
    with coordinator_for(runtime) as coordinator:
        for mailbox in mailboxes or runtime.settings.mailboxes:
            lease = coordinator.acquire(mailbox.name, mailbox.folder)
            if lease is None:
                log.warning("%s: another worker is polling it right now; skipped", mailbox.name)
                results.append(PollStats(mailbox.name, skipped=True))
                continue
            poller = Poller(runtime, mailbox, should_stop=_lapsed(lease), lease=lease)
            try:
                connection = MailboxConnection(mailbox)
                try:
                    connection.connect()
                except MailboxError as exc:
                    # One mailbox that cannot be reached must not keep the others (and the
                    # outbox after them) waiting until it is mended.
                    failure = _with_hint(exc)
                    log.error("%s: %s", mailbox.name, failure)
                    poller.record_unreachable(failure)
                    results.append(PollStats(mailbox.name, failed=failure))
                    continue
                with connection:
                    results.append(poller.poll(connection, on_backlog))
            finally:
                coordinator.release(lease)
    return results


def _with_hint(exc: ComplaintsError) -> str:
    return f"{exc} (hint: {exc.hint})" if exc.hint else str(exc)


def _lapsed(lease: HeldLease) -> Callable[[], bool]:
    return lambda: not lease.valid()


class MailboxWorker(threading.Thread):
    """Keeps one mailbox drained while this process holds its lease: poll, then IDLE (or
    sleep), reconnecting with backoff; without the lease, stands by and tries again."""

    def __init__(self, runtime: Runtime, mailbox: MailboxSettings, stop: threading.Event,
                 coordinator: Coordinator) -> None:
        super().__init__(name=f"mailbox-{mailbox.name}", daemon=True)
        self.runtime, self.mailbox, self.stop = runtime, mailbox, stop
        self.coordinator = coordinator
        self.lease: HeldLease | None = None
        self.poller = Poller(runtime, mailbox, should_stop=self._should_pause)
        self.polls = 0
        self.polled = threading.Event()  # set after every completed poll (tests wait on it)

    def _should_pause(self) -> bool:
        return self.stop.is_set() or self.lease is None or not self.lease.valid()

    def run(self) -> None:
        standing_by = False
        while not self.stop.is_set():
            try:
                self.lease = self.coordinator.acquire(self.mailbox.name, self.mailbox.folder)
            except Exception as exc:  # the database is away: keep trying, hold nothing
                log.error("%s: cannot reach the database for the lease (%s); retrying",
                          self.mailbox.name, exc)
                self.lease = None
                self.stop.wait(self.coordinator.times.retry_every)
                continue
            if self.lease is None:
                if not standing_by:
                    log.info("%s: polled by another worker; standing by", self.mailbox.name)
                    standing_by = True
                self.stop.wait(self.coordinator.times.retry_every)
                continue
            standing_by = False
            log.info("%s: this worker polls %s now (lease epoch %d)", self.mailbox.name,
                     self.mailbox.folder, self.lease.lease.epoch)
            self.poller.lease = self.lease
            try:
                self._hold()
            finally:
                self.poller.lease = None
                if self.lease.valid():
                    try:
                        self.coordinator.release(self.lease)
                    except Exception as exc:  # it expires by itself
                        log.warning("%s: lease not released (%s)", self.mailbox.name, exc)

    def _hold(self) -> None:
        """Poll while the lease is ours, reconnecting to the IMAP server with backoff."""
        backoff = 1.0
        outage_started: float | None = None
        processing = self.runtime.settings.processing
        while not self._should_pause():
            connection = MailboxConnection(self.mailbox)
            try:
                connection.connect()
                if outage_started is not None:
                    log.info("%s: connection restored after %.0f s", self.mailbox.name,
                             time.monotonic() - outage_started)
                    outage_started = None
                backoff = 1.0
                self._serve(connection)
            except LeaseLost as exc:
                log.warning("%s: %s", self.mailbox.name, exc)
                return
            except MailboxUnavailable as exc:
                if outage_started is None:  # log and record each outage once, not every retry
                    outage_started = time.monotonic()
                    log.error("%s: %s; retrying with backoff up to %d s", self.mailbox.name,
                              _with_hint(exc), processing.reconnect_max_seconds)
                    self._record_unreachable(exc)
                self._pause(backoff)
                backoff = min(backoff * 2, float(processing.reconnect_max_seconds))
            except ComplaintsError as exc:
                log.error("%s: %s", self.mailbox.name, _with_hint(exc))
                if (isinstance(exc, MailboxError) and connection.client is None
                        and outage_started is None):  # refused at login: status says why, once
                    outage_started = time.monotonic()
                    self._record_unreachable(exc)
                self._pause(backoff)
                backoff = min(backoff * 2, float(processing.reconnect_max_seconds))
            except Exception:  # e.g. the database dropped us: nothing was acted on; retry
                log.exception("%s: poll failed; retrying", self.mailbox.name)
                self._pause(backoff)
                backoff = min(backoff * 2, float(processing.reconnect_max_seconds))
            finally:
                connection.close()

    def _record_unreachable(self, exc: ComplaintsError) -> None:
        try:
            self.poller.record_unreachable(_with_hint(exc))
        except Exception as db_exc:  # the database is away too: the log has it
            log.warning("%s: the failure was not recorded (%s)", self.mailbox.name, db_exc)

    def _pause(self, seconds: float) -> None:
        """Wait, but no longer than the lease stays valid without a renewal."""
        deadline = time.monotonic() + seconds
        while not self._should_pause() and time.monotonic() < deadline:
            self.stop.wait(min(1.0, deadline - time.monotonic()))

    def _serve(self, connection: MailboxConnection) -> None:
        processing = self.runtime.settings.processing
        idle = connection.has_capability("IDLE")
        while not self._should_pause():
            self.poller.poll(connection)
            self.polls += 1
            self.polled.set()
            if self._should_pause():
                return
            if idle:
                idle_started = time.monotonic()
                try:
                    connection.wait_for_change(
                        min(processing.idle_timeout_seconds, MAX_IDLE_SECONDS),
                        should_stop=self._should_pause)
                except MailboxUnavailable as exc:
                    # Servers end idle connections (a restart, a limit shorter than RFC 2177's
                    # 30 minutes): reconnect at once, quietly. Only a reconnect that fails is an
                    # outage; one that keeps ending at once is one too (backoff, not a loop).
                    if time.monotonic() - idle_started < QUIET_RECONNECT_AFTER_SECONDS:
                        raise
                    log.info("%s: the server ended the idle connection (%s); reconnecting",
                             self.mailbox.name, exc)
                    return
            else:
                self._pause(processing.poll_interval_seconds)


class OutboxSender(threading.Thread):
    """Sends queued mail as soon as a poll queues it, and retries on schedule."""

    ROUND_SECONDS = 5.0

    def __init__(self, runtime: Runtime, stop: threading.Event) -> None:
        super().__init__(name="outbox-sender", daemon=True)
        self.runtime, self.stop = runtime, stop

    def run(self) -> None:
        wake = self.runtime.outbox_wake
        while not self.stop.is_set():
            wake.wait(self.ROUND_SECONDS)
            wake.clear()
            if self.stop.is_set():
                return
            try:
                asyncio.run(drain_outbox(self.runtime.engine, self.runtime.settings,
                                         should_stop=self.stop.is_set))
            except ComplaintsError as exc:
                log.error("outbox: %s", exc)
            except Exception:  # keep sending later; the rows stay queued
                log.exception("outbox: unexpected error; will retry")


class Ticker(threading.Thread):
    """Runs the scheduled case work every few minutes (see processor.scheduler)."""

    INTERVAL_SECONDS = 300.0

    def __init__(self, runtime: Runtime, stop: threading.Event) -> None:
        super().__init__(name="scheduler", daemon=True)
        self.runtime, self.stop = runtime, stop

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                tick(self.runtime.engine, self.runtime.settings, datetime.now(UTC),
                     renderer=self.runtime.renderer, store=self.runtime.store)
            except Exception:  # the next round tries again; nothing is lost by waiting
                log.exception("scheduler: tick failed")
            self.stop.wait(self.INTERVAL_SECONDS)


def run_service(runtime: Runtime, stop: threading.Event) -> None:
    """Run one worker per mailbox (and the sender) until `stop` is set, then wait for them."""
    if not runtime.settings.mailboxes:
        raise ComplaintsError("no mailbox is configured",
                              hint="add a [mailbox.NAME] table to the configuration "
                                   "(see `complaints init`)")
    coordinator = coordinator_for(runtime).start()  # refused on SQLite if one runs already
    try:
        workers: list[threading.Thread] = [MailboxWorker(runtime, mailbox, stop, coordinator)
                                           for mailbox in runtime.settings.mailboxes]
        if runtime.settings.smtp.host:
            workers.append(OutboxSender(runtime, stop))
        workers.append(Ticker(runtime, stop))
        for worker in workers:
            worker.start()
        # Beside the workers: on a large store the walk takes a while, and nothing waits for it.
        threading.Thread(target=_sweep_leftovers, args=(runtime.store,), name="blob-sweep",
                         daemon=True).start()
        log.info("worker %s watching %d mailbox(es): %s", coordinator.name,
                 len(runtime.settings.mailboxes),
                 ", ".join(m.name for m in runtime.settings.mailboxes))
        while not stop.is_set():
            stop.wait(1.0)
        runtime.outbox_wake.set()
        for worker in workers:
            worker.join()
    finally:
        coordinator.stop()
    log.info("stopped cleanly")


def _sweep_leftovers(store: BlobStore) -> None:
    """The temporary files a process killed mid-batch left in the blob store go at start."""
    try:
        removed = store.sweep_leftovers()
    except OSError as exc:
        log.warning("could not sweep leftover temporary files from the blob store: %s", exc)
        return
    if removed:
        log.info("removed %d leftover temporary file(s) from the blob store (a process was "
                 "stopped in the middle of a batch; its mail is fetched again)", removed)
