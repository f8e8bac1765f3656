"""What every worker shares for its whole life: database engine, blob store, rules, templates."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from processor.blobstore import BlobStore
from processor.classify import RulesHolder, builtin_rules_dir
from processor.compose import subject_tag_pattern
from processor.config import MailboxSettings, Settings
from processor.context import IngestContext
from processor.db import check_schema_current, open_database
from processor.db.durability import FilingDurability
from processor.errors import ConfigError
from processor.heap import collect_rarely, return_large_blocks
from processor.prepare import Preparer
from processor.render import TemplateRenderer
from processor.threading import load_appeal_phrases


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    store: BlobStore
    rules: RulesHolder | None = None
    renderer: TemplateRenderer | None = None
    # Set after a batch queued outgoing mail, so the sender does not wait for its next round.
    outbox_wake: threading.Event = field(default_factory=threading.Event)
    reply_secrets: tuple[bytes, ...] = ()
    appeal_phrases: tuple[str, ...] = ()
    # Processes that parse and classify the next batch while this one is filed.
    preparer: Preparer = field(default_factory=lambda: Preparer(0))
    # The engine batches are filed with, and the sync before the server is touched.
    filing: FilingDurability = field(init=False)

    def __post_init__(self) -> None:
        self.filing = FilingDurability(self.engine, echo=self.settings.database.echo)
        processing = self.settings.processing
        self.tag_pattern = subject_tag_pattern(self.settings.ack.tag_format,
                                               processing.case_prefix, processing.case_width)

    def ingest_context(self, mailbox: MailboxSettings, folder: str, uidvalidity: int,
                       clock: Callable[[], datetime] = lambda: datetime.now(UTC)
                       ) -> IngestContext:
        """A context for one batch, with the rules as they are now (a SIGHUP swaps them whole)."""
        return IngestContext(self.settings, mailbox, folder, uidvalidity,
                             self.rules.current if self.rules else None, self.renderer, clock,
                             self.tag_pattern, self.reply_secrets,
                             self.appeal_phrases or load_appeal_phrases(), self.preparer)


def load_rules(settings: Settings, renderer: TemplateRenderer) -> RulesHolder:
    """Built-in rules/ then the configured directory; raises RulesError when any is invalid."""
    directories = [builtin_rules_dir()]
    if settings.processing.rules_dir:
        directories.append(Path(settings.processing.rules_dir))
    return RulesHolder(directories, known_templates=renderer.available_templates())


def open_runtime(settings: Settings, *, with_rules: bool = False,
                 require_current_schema: bool = True, worker: bool = False) -> Runtime:
    """`worker`: this process polls mailboxes, so on PostgreSQL a transaction of it that stalls
    (a frozen host) is ended by the server within the takeover time: the worker that takes its
    folder over must not wait on its locks for longer than that."""
    stall = max(10.0, settings.workers.takeover_seconds) if worker else None
    if worker:  # it files mail for hours: big mails must not leave their space in the heap
        return_large_blocks()
        collect_rarely()  # nor the collector its time (processor.heap)
    engine = open_database(settings.database.url, echo=settings.database.echo,
                           idle_in_transaction_seconds=stall)
    if require_current_schema:
        check_schema_current(engine)
    runtime = Runtime(settings, engine, BlobStore(settings.data_dir / "blobs"))
    processes = settings.processing.parse_processes
    runtime.preparer = Preparer(Preparer.automatic() if processes < 0 else processes)
    if worker:  # it is about to poll: its preparing processes start while it gets ready
        runtime.preparer.start_early()
    if with_rules:
        runtime.renderer = TemplateRenderer.with_override(settings.processing.templates_dir or None,
                                                          settings.ack.default_language)
        runtime.rules = load_rules(settings, runtime.renderer)
        runtime.reply_secrets = reply_secrets(settings)
        runtime.appeal_phrases = load_appeal_phrases()
    return runtime


def reply_secrets(settings: Settings) -> tuple[bytes, ...]:
    """The current secret of the signed reply addresses, then the previous one (rotation).

    Without a secret no staff mail can ever be verified, so configuring staff without one is
    refused at start rather than discovered when the first staff answer is ignored.
    """
    staff = settings.staff
    current = staff.secret() if (staff.secret_env in os.environ or staff.secret_file) else ""
    if (staff.addresses or staff.domains) and not current:
        raise ConfigError("staff are configured but the reply-address secret is not set",
                          key="staff.secret_env", source=settings.source,
                          hint=f"export {staff.secret_env}=<a long random string> "
                               "(or set staff.secret_file)")
    previous = os.environ.get(staff.previous_secret_env, "") if staff.previous_secret_env else ""
    return tuple(s.encode() for s in (current, previous) if s)
