"""Long-running service: one worker thread per mailbox, IDLE or interval polling, reconnects.

`complaints poll --once` calls `poll_all_once`; `complaints run` calls `run_service`, which
keeps polling until SIGTERM/SIGINT, finishing the mail in hand before it exits.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from processor.config import MailboxSettings
from processor.errors import ComplaintsError, MailboxUnavailable
from processor.imap import MailboxConnection
from processor.outbox import drain_outbox
from processor.poller import Poller, PollStats, Progress
from processor.runtime import Runtime
from processor.scheduler import tick

log = logging.getLogger("processor.runner")

# RFC 2177 servers may drop an IDLE after 30 minutes; re-issue well before that.
MAX_IDLE_SECONDS = 29 * 60 - 60


def poll_all_once(runtime: Runtime,
                  on_backlog: Callable[[int], Progress | None] | None = None,
                  mailboxes: tuple[MailboxSettings, ...] | None = None) -> list[PollStats]:
    """Poll every configured mailbox once; an unreachable mailbox is reported, not fatal."""
    results = []
    for mailbox in mailboxes or runtime.settings.mailboxes:
        poller = Poller(runtime, mailbox)
        with MailboxConnection(mailbox) as connection:
            results.append(poller.poll(connection, on_backlog))
    return results


class MailboxWorker(threading.Thread):
    """Keeps one mailbox drained: poll, then IDLE (or sleep), reconnecting with backoff."""

    def __init__(self, runtime: Runtime, mailbox: MailboxSettings, stop: threading.Event) -> None:
        super().__init__(name=f"mailbox-{mailbox.name}", daemon=True)
        self.runtime, self.mailbox, self.stop = runtime, mailbox, stop
        self.poller = Poller(runtime, mailbox, should_stop=stop.is_set)
        self.polls = 0
        self.polled = threading.Event()  # set after every completed poll (tests wait on it)

    def run(self) -> None:
        backoff = 1.0
        outage_started: float | None = None
        processing = self.runtime.settings.processing
        while not self.stop.is_set():
            connection = MailboxConnection(self.mailbox)
            try:
                connection.connect()
                if outage_started is not None:
                    log.info("%s: connection restored after %.0f s", self.mailbox.name,
                             time.monotonic() - outage_started)
                    outage_started = None
                backoff = 1.0
                self._serve(connection)
            except MailboxUnavailable as exc:
                if outage_started is None:  # log each outage once, not every retry
                    outage_started = time.monotonic()
                    log.error("%s: %s; retrying with backoff up to %d s", self.mailbox.name, exc,
                              processing.reconnect_max_seconds)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, float(processing.reconnect_max_seconds))
            except ComplaintsError as exc:
                log.error("%s: %s", self.mailbox.name, exc)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, float(processing.reconnect_max_seconds))
            finally:
                connection.close()

    def _serve(self, connection: MailboxConnection) -> None:
        processing = self.runtime.settings.processing
        idle = connection.has_capability("IDLE")
        while not self.stop.is_set():
            self.poller.poll(connection)
            self.polls += 1
            self.polled.set()
            if self.stop.is_set():
                return
            if idle:
                connection.wait_for_change(
                    min(processing.idle_timeout_seconds, MAX_IDLE_SECONDS),
                    should_stop=self.stop.is_set)
            else:
                self.stop.wait(processing.poll_interval_seconds)


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
    workers: list[threading.Thread] = [MailboxWorker(runtime, mailbox, stop)
                                       for mailbox in runtime.settings.mailboxes]
    if runtime.settings.smtp.host:
        workers.append(OutboxSender(runtime, stop))
    workers.append(Ticker(runtime, stop))
    for worker in workers:
        worker.start()
    log.info("watching %d mailbox(es): %s", len(runtime.settings.mailboxes),
             ", ".join(m.name for m in runtime.settings.mailboxes))
    while not stop.is_set():
        stop.wait(1.0)
    runtime.outbox_wake.set()
    for worker in workers:
        worker.join()
    log.info("stopped cleanly")
