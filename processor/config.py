"""Settings: read once from one TOML file plus COMPLAINTS_* environment variables, then frozen.

Every key of every section can be overridden by an environment variable named
COMPLAINTS_<SECTION>_<KEY> (upper-case), and for a mailbox COMPLAINTS_MAILBOX_<NAME>_<KEY>.
A mistake is reported as a ConfigError naming the key and the file, never as a traceback.
Passwords are never stored in the file: a mailbox names an environment variable or a file.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from processor.errors import ConfigError
from processor.mail.limits import ParseLimits
from processor.oauth2 import run_token_command

DEFAULT_CONFIG_PATHS = ("complaints.toml", "/etc/complaints/complaints.toml")
ENV_PREFIX = "COMPLAINTS_"
# Smaller ranges would cost a round trip per few kilobytes of a large mail.
MIN_FETCH_RANGE_BYTES = 64 * 1024

TlsMode = Literal["implicit", "starttls", "none"]
MailboxAuth = Literal["password", "xoauth2"]
AfterProcessing = Literal["move", "flag", "leave"]


class Secret(str):
    """A password: usable as a string, but never shown by repr or str formatting in logs."""

    def __repr__(self) -> str:
        return "Secret('***')"


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    url: str = "sqlite:///var/complaints.sqlite3"
    echo: bool = False


@dataclass(frozen=True, slots=True)
class StorageSettings:
    data_dir: str = "var/data"


@dataclass(frozen=True, slots=True)
class ProcessingSettings:
    batch_size: int = 200
    poll_interval_seconds: int = 60
    idle_timeout_seconds: int = 25 * 60
    max_message_bytes: int = 25 * 1024 * 1024
    after_processing: AfterProcessing = "move"
    processed_flag: str = "$Processed"
    case_prefix: str = "C-"
    case_width: int = 6
    reconnect_max_seconds: int = 300
    rules_dir: str = ""
    templates_dir: str = ""
    # Processes parsing and classifying the next batch while one is filed; -1: one per core
    # beyond the first, at most four; 0: all in the filing process.
    parse_processes: int = -1


# Below this, a worker pausing for a slow disk or a large mail would lose its folders' leases.
MIN_TAKEOVER_SECONDS = 3.0


@dataclass(frozen=True, slots=True)
class WorkersSettings:
    # A folder whose worker died (or lost the database) is polled by another within this time.
    takeover_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class SmtpServerSettings:
    """Where outgoing mail is submitted; the password comes from the environment or a file."""

    host: str = ""
    port: int = 587
    tls: TlsMode = "starttls"
    verify_certificate: bool = True
    ca_file: str = ""  # a private CA's certificate (PEM) to trust, as for a mailbox
    user: str = ""
    password_env: str = ""
    password_file: str = ""
    # As for a mailbox: "xoauth2" sends with an OAuth 2.0 access token (Office 365, Gmail).
    auth: MailboxAuth = "password"
    oauth2_token_command: tuple[str, ...] = ()
    timeout_seconds: int = 30
    # Empty: the null envelope sender "<>" (RFC 3834), so bounces of our automatic mail never
    # reach a person or a robot. Set an address to receive them instead.
    envelope_sender: str = ""
    max_attempts: int = 8
    retry_base_seconds: int = 30
    retry_cap_seconds: int = 3600
    sent_folder: str = ""  # optionally append every sent mail to this IMAP folder

    def password(self) -> Secret:
        return _read_secret(self.password_env, self.password_file, "smtp")


@dataclass(frozen=True, slots=True)
class AckSettings:
    """The acknowledgement and every other automatic answer."""

    enabled: bool = True
    template: str = "ack-default"
    default_language: str = "en"
    tag_format: str = "[{ref}]"
    installation_id: str = "complaints"
    message_id_domain: str = "complaints.invalid"
    loop_header: str = "X-Complaints-Loop"
    per_sender: int = 3
    period_hours: int = 24
    global_per_minute: int = 600
    bounce_suppress_days: int = 60
    max_subject_chars: int = 180
    timezone: str = "Asia/Shanghai"


@dataclass(frozen=True, slots=True)
class StaffSettings:
    """Who counts as staff, and how their replies are verified."""

    addresses: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    notify: tuple[str, ...] = ()  # new-case notifications go here (an address or a list)
    notify_template: str = "staff-new-case"
    secret_env: str = "COMPLAINTS_REPLY_SECRET"
    secret_file: str = ""
    previous_secret_env: str = ""  # still accepted while rotating
    trusted_authserv_ids: tuple[str, ...] = ()  # Authentication-Results from these hosts count
    expose_staff_address: bool = False
    unknown_sender_policy: Literal["new-case", "hold"] = "new-case"

    def secret(self) -> Secret:
        return _read_secret(self.secret_env, self.secret_file, "staff")


@dataclass(frozen=True, slots=True)
class LifecycleSettings:
    reopen_window_days: int = 7
    auto_close_days: int = 14
    reminder_after_days: int = 5
    auto_resolve_after_days: int = 7
    escalation_address: str = ""
    escalation_fraction: float = 0.5
    progress_replies_per_day: int = 1


@dataclass(frozen=True, slots=True)
class DigestSettings:
    recipients: tuple[str, ...] = ()
    hour: int = 8
    timezone: str = "Asia/Shanghai"
    language: str = "zh"
    include_subjects: bool = False
    due_soon_hours: int = 4


@dataclass(frozen=True, slots=True)
class MailboxSettings:
    name: str
    host: str = ""
    port: int = 993
    tls: TlsMode = "implicit"
    verify_certificate: bool = True
    ca_file: str = ""
    user: str = ""
    password_env: str = ""
    password_file: str = ""
    folder: str = "INBOX"
    processed_folder: str = "Processed"
    quarantine_folder: str = "Quarantine"
    addresses: tuple[str, ...] = ()
    # "password", or "xoauth2": an OAuth 2.0 access token, printed by `oauth2_token_command`
    # (a program that keeps and refreshes it), as Office 365 and Gmail ask of IMAP clients.
    auth: MailboxAuth = "password"
    oauth2_token_command: tuple[str, ...] = ()
    # Mails larger than this are fetched in ranges of this size, so a large mail is held in
    # memory about once instead of three times (see processor.imap); 0 fetches every mail whole.
    fetch_range_bytes: int = 4 * 1024 * 1024

    def password(self) -> Secret:
        """Read the password at connection time, so a rotated secret file is picked up."""
        return _read_secret(self.password_env, self.password_file, f"mailbox.{self.name}")

    def access_token(self) -> Secret:
        """Run `oauth2_token_command` for a current access token, at each connection (the
        helper keeps and refreshes it; see processor.oauth2)."""
        return Secret(run_token_command(self.oauth2_token_command,
                                        f"mailbox.{self.name}.oauth2_token_command"))


def _read_secret(env_name: str, file_name: str, section: str) -> Secret:
    if env_name:
        value = os.environ.get(env_name)
        if value is None:
            raise ConfigError(f"environment variable {env_name} is not set",
                              key=f"{section}.password_env" if "secret" not in env_name.lower()
                              else f"{section}.secret_env")
        return Secret(value)
    if file_name:
        try:
            return Secret(Path(file_name).read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise ConfigError(f"cannot read secret file {file_name}: {exc.strerror}",
                              key=f"{section}.password_file") from None
    return Secret("")


@dataclass(frozen=True, slots=True)
class Settings:
    source: str = "(defaults)"
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    processing: ProcessingSettings = field(default_factory=ProcessingSettings)
    # The parser's own bounds, configured as they are (see processor.mail.limits).
    limits: ParseLimits = field(default_factory=ParseLimits)
    smtp: SmtpServerSettings = field(default_factory=SmtpServerSettings)
    ack: AckSettings = field(default_factory=AckSettings)
    staff: StaffSettings = field(default_factory=StaffSettings)
    lifecycle: LifecycleSettings = field(default_factory=LifecycleSettings)
    digest: DigestSettings = field(default_factory=DigestSettings)
    workers: WorkersSettings = field(default_factory=WorkersSettings)
    mailboxes: tuple[MailboxSettings, ...] = ()

    @property
    def data_dir(self) -> Path:
        return Path(self.storage.data_dir)

    def mailbox(self, name: str) -> MailboxSettings:
        for mailbox in self.mailboxes:
            if mailbox.name == name:
                return mailbox
        raise ConfigError(f"no mailbox named '{name}'", source=self.source)

    def monitored_addresses(self) -> frozenset[str]:
        return frozenset(a.lower() for m in self.mailboxes for a in m.addresses)


_SECTIONS: dict[str, type] = {
    "database": DatabaseSettings,
    "storage": StorageSettings,
    "processing": ProcessingSettings,
    "limits": ParseLimits,
    "smtp": SmtpServerSettings,
    "ack": AckSettings,
    "staff": StaffSettings,
    "lifecycle": LifecycleSettings,
    "digest": DigestSettings,
    "workers": WorkersSettings,
}
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def load_settings(path: str | os.PathLike[str] | None = None,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Read the TOML file (given, $COMPLAINTS_CONFIG, or a default place) and the environment."""
    environ = os.environ if environ is None else environ
    chosen = path or environ.get("COMPLAINTS_CONFIG")
    data: dict[str, Any] = {}
    source = "(defaults and environment)"
    if chosen:
        source = str(chosen)
        data = _read_toml(Path(chosen))
    else:
        for candidate in DEFAULT_CONFIG_PATHS:
            if Path(candidate).is_file():
                source = candidate
                data = _read_toml(Path(candidate))
                break
    return settings_from_mapping(data, source=source, environ=environ)


def settings_from_mapping(data: Mapping[str, Any], *, source: str = "(inline)",
                          environ: Mapping[str, str] | None = None) -> Settings:
    environ = {} if environ is None else environ
    known = set(_SECTIONS) | {"mailbox"}
    for key in data:
        if key not in known:
            raise ConfigError(f"unknown section '{key}'; expected one of {sorted(known)}",
                              key=key, source=source)
    sections = {
        name: _build(cls, _table(data, name, source), source=source, key_path=name,
                     env_prefix=f"{ENV_PREFIX}{name.upper()}_", environ=environ)
        for name, cls in _SECTIONS.items()
    }
    mailboxes = _mailboxes(data.get("mailbox", {}), source, environ)
    _check_ca_file(sections["smtp"].ca_file, "smtp.ca_file", source)
    if sections["smtp"].auth == "xoauth2" and not (
            sections["smtp"].oauth2_token_command and sections["smtp"].user):
        raise ConfigError('auth = "xoauth2" needs the user and the command that prints an '
                          'access token, e.g. oauth2_token_command = ["oama", "access", '
                          '"desk@example.com"]', key="smtp.oauth2_token_command", source=source)
    takeover = sections["workers"].takeover_seconds
    if takeover < MIN_TAKEOVER_SECONDS:
        raise ConfigError(f"must be at least {MIN_TAKEOVER_SECONDS:.0f} seconds, not {takeover}",
                          key="workers.takeover_seconds", source=source,
                          hint="the default, 30, suits most desks")
    return Settings(source=source, mailboxes=mailboxes, **sections)


def _check_ca_file(ca_file: str, key: str, source: str) -> None:
    """A CA file that cannot be read would only fail at the first connection, as a network
    error retried for ever; say so at start instead."""
    if ca_file and not os.access(ca_file, os.R_OK):
        raise ConfigError(f"cannot read the CA file {ca_file}", key=key, source=source,
                          hint="give the path of a PEM file with the CA's certificate")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"configuration file not found: {path}",
                          hint="create one with `complaints init`") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", source=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read configuration: {exc.strerror}", source=str(path)) from None


def _table(data: Mapping[str, Any], name: str, source: str) -> Mapping[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, Mapping):
        raise ConfigError("expected a table", key=name, source=source)
    return value


def _mailboxes(raw: Any, source: str, environ: Mapping[str, str]) -> tuple[MailboxSettings, ...]:
    if not isinstance(raw, Mapping):
        raise ConfigError("expected tables like [mailbox.complaints]", key="mailbox", source=source)
    tables: dict[str, Mapping[str, Any]] = dict(raw)
    # Mailboxes may also be declared from the environment alone (containers):
    # COMPLAINTS_MAILBOXES=complaints,brand2 then COMPLAINTS_MAILBOX_COMPLAINTS_HOST=...
    declared = environ.get("COMPLAINTS_MAILBOXES", "")
    for name in filter(None, (n.strip() for n in declared.split(","))):
        tables.setdefault(name, {})
    result = []
    for name, table in tables.items():
        if not _NAME_RE.match(name):
            raise ConfigError("a mailbox name uses lower-case letters, digits, '-' and '_'",
                              key=f"mailbox.{name}", source=source)
        if not isinstance(table, Mapping):
            raise ConfigError("expected a table", key=f"mailbox.{name}", source=source)
        env_name = name.upper().replace("-", "_")
        mailbox = _build(MailboxSettings, {**table, "name": name}, source=source,
                         key_path=f"mailbox.{name}",
                         env_prefix=f"{ENV_PREFIX}MAILBOX_{env_name}_", environ=environ)
        if not mailbox.host:
            raise ConfigError("a mailbox needs a host", key=f"mailbox.{name}.host", source=source)
        if not mailbox.addresses:
            raise ConfigError("list the addresses this mailbox receives, e.g. "
                              "addresses = [\"complaints@example.com\"]",
                              key=f"mailbox.{name}.addresses", source=source)
        if mailbox.tls == "none" and mailbox.host not in ("127.0.0.1", "localhost", "::1"):
            raise ConfigError("plain IMAP without TLS is allowed only for 127.0.0.1/localhost",
                              key=f"mailbox.{name}.tls", source=source)
        if mailbox.password_env and mailbox.password_file:
            raise ConfigError("set password_env or password_file, not both",
                              key=f"mailbox.{name}.password_file", source=source)
        if mailbox.auth == "xoauth2" and not mailbox.oauth2_token_command:
            raise ConfigError('auth = "xoauth2" needs the command that prints an access token, '
                              'e.g. oauth2_token_command = ["oama", "access", "desk@example.com"]',
                              key=f"mailbox.{name}.oauth2_token_command", source=source)
        if mailbox.fetch_range_bytes != 0 and mailbox.fetch_range_bytes < MIN_FETCH_RANGE_BYTES:
            raise ConfigError(f"expected 0 (fetch whole) or at least {MIN_FETCH_RANGE_BYTES}",
                              key=f"mailbox.{name}.fetch_range_bytes", source=source)
        _check_ca_file(mailbox.ca_file, f"mailbox.{name}.ca_file", source)
        result.append(mailbox)
    return tuple(result)


def _build(cls: type, table: Mapping[str, Any], *, source: str, key_path: str, env_prefix: str,
           environ: Mapping[str, str]) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in table:
        if key not in names or (key == "name" and cls is not MailboxSettings):
            if key == "password":
                raise ConfigError("passwords are never written in the file; use password_env "
                                  "or password_file", key=f"{key_path}.{key}", source=source)
            raise ConfigError(f"unknown key; expected one of {sorted(names - {'name'})}",
                              key=f"{key_path}.{key}", source=source)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        env_key = env_prefix + f.name.upper()
        if f.name != "name" and env_key in environ:
            raw: Any = environ[env_key]
            where = f"environment variable {env_key}"
        elif f.name in table:
            raw = table[f.name]
            where = source
        else:
            continue
        values[f.name] = _coerce(raw, hints[f.name], key=f"{key_path}.{f.name}", source=where)
    return cls(**values)


def _coerce(value: Any, hint: Any, *, key: str, source: str) -> Any:
    origin = typing.get_origin(hint)
    from_env = isinstance(value, str) and source.startswith("environment")
    if hint is bool:
        if isinstance(value, bool):
            return value
        if from_env and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise ConfigError("expected true or false", key=key, source=source)
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if from_env and value.strip().lstrip("-").isdigit():
            return int(value)
        raise ConfigError("expected a whole number", key=key, source=source)
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if from_env:
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError("expected a number", key=key, source=source)
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError("expected a string", key=key, source=source)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value in choices:
            return value
        raise ConfigError(f"expected one of {list(choices)}, got {value!r}", key=key, source=source)
    if origin is tuple:
        items = [v.strip() for v in value.split(",") if v.strip()] if from_env else value
        if isinstance(items, list) and all(isinstance(v, str) for v in items):
            return tuple(items)
        raise ConfigError("expected a list of strings", key=key, source=source)
    if isinstance(hint, types.UnionType):  # pragma: no cover - no such field yet
        return value
    raise ConfigError(f"unsupported setting type {hint}", key=key, source=source)
