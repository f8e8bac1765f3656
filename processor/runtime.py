"""What every worker shares for its whole life: database engine, blob store, rules, templates."""

from __future__ import annotations

from collections.abc import Callable
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from processor.blobstore import BlobStore
from processor.classify import RulesHolder, builtin_rules_dir
from processor.config import MailboxSettings, Settings
from processor.db import check_schema_current, open_database
from processor.pipeline import IngestContext
from processor.render import TemplateRenderer


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    store: BlobStore
    rules: RulesHolder | None = None
    renderer: TemplateRenderer | None = None
    # Set after a batch queued outgoing mail, so the sender does not wait for its next round.
    outbox_wake: threading.Event = field(default_factory=threading.Event)

    def ingest_context(self, mailbox: MailboxSettings, folder: str, uidvalidity: int,
                       clock: Callable[[], datetime] = lambda: datetime.now(UTC)
                       ) -> IngestContext:
        """A context for one batch, with the rules as they are now (a SIGHUP swaps them whole)."""
        return IngestContext(self.settings, mailbox, folder, uidvalidity,
                             self.rules.current if self.rules else None, self.renderer, clock)


def load_rules(settings: Settings, renderer: TemplateRenderer) -> RulesHolder:
    """Built-in rules/ then the configured directory; raises RulesError when any is invalid."""
    directories = [builtin_rules_dir()]
    if settings.processing.rules_dir:
        directories.append(Path(settings.processing.rules_dir))
    return RulesHolder(directories, known_templates=renderer.available_templates())


def open_runtime(settings: Settings, *, with_rules: bool = False,
                 require_current_schema: bool = True) -> Runtime:
    engine = open_database(settings.database.url, echo=settings.database.echo)
    if require_current_schema:
        check_schema_current(engine)
    runtime = Runtime(settings, engine, BlobStore(settings.data_dir / "blobs"))
    if with_rules:
        runtime.renderer = TemplateRenderer.with_override(settings.processing.templates_dir or None,
                                                          settings.ack.default_language)
        runtime.rules = load_rules(settings, runtime.renderer)
    return runtime
