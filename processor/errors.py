"""The one exception tree of complaint-processor.

    ComplaintsError                 anything the processor reports to a person
    ├── ConfigError                 a configuration key is missing or wrong (names key and file)
    ├── RulesError                  a rule file is invalid (carries every problem found)
    ├── TemplateError               a mail template cannot be loaded or rendered
    ├── SchemaOutOfDate             the schema is behind the code: `complaints db upgrade`
    ├── NotFound                    a case, quarantine entry or outbox mail does not exist
    ├── WorkerRefused               another worker already runs where only one may
    ├── LeaseLost                   this worker no longer holds the folder it was polling
    ├── ConcurrentWrite             another worker committed a conflicting row: retry the batch
    └── MailboxError                the IMAP server refused or dropped us
        └── MailboxUnavailable      cannot connect or lost the connection (retry later)

Library errors (imaplib, socket, ssl, SQLAlchemy) are translated into these at the edges
(processor/imap.py, processor/db/); only the poller's loop catches everything else, to quarantine.
"""

from __future__ import annotations


class ComplaintsError(Exception):
    """Base class; `hint` says what the person should do next."""

    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint


class ConfigError(ComplaintsError):
    def __init__(self, message: str, *, key: str | None = None, source: str | None = None,
                 hint: str | None = None) -> None:
        where = " ".join(part for part in (f"in {source}" if source else "",
                                           f"at key '{key}'" if key else "") if part)
        super().__init__(f"{message} ({where})" if where else message, hint=hint)
        self.key = key
        self.source = source


class RulesError(ComplaintsError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid rules:\n  " + "\n  ".join(problems),
                         hint="fix the files listed, then `complaints rules check`")
        self.problems = problems


class TemplateError(ComplaintsError):
    pass


class SchemaOutOfDate(ComplaintsError):
    hint = "run `complaints db upgrade` first"


class NotFound(ComplaintsError):
    pass


class WorkerRefused(ComplaintsError):
    pass


class LeaseLost(ComplaintsError):
    pass


class ConcurrentWrite(ComplaintsError):
    """A unique key, deadlock or serialisation failure caused by another worker's transaction."""


class MailboxError(ComplaintsError):
    pass


class MailboxUnavailable(MailboxError):
    pass
