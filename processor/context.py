"""What one batch of ingest needs besides the session and the mails: settings, rules, templates."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from processor.ack import loop_context
from processor.classify import RuleSet
from processor.compose import subject_tag_pattern
from processor.config import MailboxSettings, Settings
from processor.loopguard import LoopContext
from processor.mail import ParseLimits
from processor.prepare import Preparer, Recipients
from processor.render import TemplateRenderer
from processor.threading import DEFAULT_APPEAL_PHRASES


@dataclass(frozen=True, slots=True)
class IngestContext:
    """Everything a batch needs besides the session and the mails; built once per poll."""

    settings: Settings
    mailbox: MailboxSettings
    folder: str
    uidvalidity: int
    rules: RuleSet | None = None
    renderer: TemplateRenderer | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # Derived once per runtime from the settings (see processor.runtime).
    tag_pattern: re.Pattern[str] = field(default_factory=lambda: subject_tag_pattern())
    reply_secrets: tuple[bytes, ...] = ()
    appeal_phrases: tuple[str, ...] = DEFAULT_APPEAL_PHRASES
    # The worker processes that prepare batches; they also compose a large batch's
    # acknowledgements while it is filed (processor.composing).
    preparer: Preparer | None = None
    # Derived here from the settings, once: every mail of a batch asks for them.
    recipients: Recipients = field(init=False, repr=False, compare=False)  # our addresses
    loop: LoopContext = field(init=False, repr=False, compare=False)  # our mail coming back

    def __post_init__(self) -> None:
        monitored = self.settings.monitored_addresses()
        ours = {a.lower() for a in self.mailbox.addresses} | monitored
        object.__setattr__(self, "recipients",
                           Recipients(frozenset(ours), self.mailbox.addresses[0].lower()))
        object.__setattr__(self, "loop", loop_context(self.settings.ack, monitored))

    @property
    def limits(self) -> ParseLimits:
        return self.settings.limits
