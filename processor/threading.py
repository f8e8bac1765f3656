"""Which case a mail belongs to, whether its sender may join it, and what it does to the case.

Pure: the integrator looks the evidence up in the database (the case named by the subject tag,
by In-Reply-To/References, by a signed reply address) and passes it in as `ThreadEvidence`;
`decide_thread` returns a `ThreadDecision` whose reasons say, in words, why.
"""

from __future__ import annotations

import functools
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from processor.authresults import AuthVerdict
from processor.config import LifecycleSettings, StaffSettings
from processor.errors import ConfigError
from processor.replyaddr import ReplyTarget

Action = Literal["new-case", "join", "reopen", "new-linked-case", "appeal", "hold",
                 "record-only"]
Role = Literal["complainant", "participant", "staff", "unverified-staff", "stranger"]
UnknownSenderPolicy = Literal["new-case", "hold"]


@dataclass(frozen=True, slots=True)
class CaseFacts:
    """What the thread decision needs to know about one existing case (addresses lower-cased)."""

    ref: str
    status: str  # new | open | pending | resolved | closed
    complainant: str
    participants: frozenset[str] = frozenset()
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    is_appeal: bool = False


@dataclass(frozen=True, slots=True)
class ThreadEvidence:
    """Everything found about one incoming mail, looked up by the integrator.

    `tag_ref` is the reference in the subject even when no such case exists (`tag_case` None).
    `staff_verified` means: a valid signed reply address, from a staff address, and trusted
    Authentication-Results (if any) not failing; see `verify_staff`.
    """

    sender: str
    tag_ref: str | None = None
    tag_case: CaseFacts | None = None
    reference_case: CaseFacts | None = None
    reply_target_case: CaseFacts | None = None
    sender_is_staff: bool = False
    staff_verified: bool = False
    auto_submitted: bool = False


@dataclass(frozen=True, slots=True)
class ThreadDecision:
    """What to do with the mail.

    `case_ref` is the existing case it joins, reopens or is recorded on (None when a new case
    is opened or the mail is held). `link_to` is the old case a new linked or appeal case
    points to. `new_status` is the status the joined case moves to, None to leave it; new
    cases always start as "new". `may_relay` says the text may go on to the complainant
    (verified staff only; the staff commands can still make it a note).
    """

    action: Action
    case_ref: str | None
    link_to: str | None
    role: Role
    reasons: tuple[str, ...]
    new_status: str | None = None
    raise_priority: bool = False
    appeal_noted: bool = False
    may_relay: bool = False


# --- who is staff, and is this staff mail verified


def is_staff_address(address: str, staff: StaffSettings) -> bool:
    """A configured staff address, or any address at a configured staff domain (exactly that
    domain: subdomains are listed separately, so a forgotten one can't be claimed)."""
    address = address.strip().lower()
    domain = address.rpartition("@")[2]
    return (address in {a.strip().lower() for a in staff.addresses}
            or domain in {d.strip().lower().lstrip("@") for d in staff.domains})


@dataclass(frozen=True, slots=True)
class StaffVerification:
    verified: bool
    reasons: tuple[str, ...]


def verify_staff(sender_is_staff: bool, reply_target: ReplyTarget | None,
                 auth: AuthVerdict) -> StaffVerification:
    """Staff mail counts as staff only with a valid signed reply address and, where a trusted
    server judged it, passing authentication: the From header alone is trivially forged."""
    if not sender_is_staff:
        return StaffVerification(False, ("sender is not a staff address",))
    reasons = list(auth.reasons)
    if reply_target is None:
        reasons.insert(0, "staff address, but not sent to a validly signed reply address")
        return StaffVerification(False, tuple(reasons))
    if not auth.acceptable:
        reasons.insert(0, "staff address and signed reply address, but authentication failed")
        return StaffVerification(False, tuple(reasons))
    note = " (signed with the previous secret)" if reply_target.signed_with_previous_secret else ""
    reasons.insert(0, f"verified staff: signed reply address for {reply_target.case_ref}{note}")
    return StaffVerification(True, tuple(reasons))


def already_reached(complainant: str, recipients: Iterable[str]) -> bool:
    """Did a staff reply-all already go to the complainant? Then it is recorded, not relayed."""
    complainant = complainant.strip().lower()
    return any(r.strip().strip("<>").lower() == complainant for r in recipients)


# --- the thread decision


def _role(evidence: ThreadEvidence, case: CaseFacts) -> Role:
    # Order matters. The complainant comes before the staff check so an employee who filed a
    # complaint from a staff-domain address can still reply to it; unverified staff comes
    # before participants so a forged staff From can't ride on a colleague being on the case.
    sender = evidence.sender.strip().lower()
    if evidence.sender_is_staff and evidence.staff_verified:
        return "staff"
    if sender == case.complainant.lower():
        return "complainant"
    if evidence.sender_is_staff:
        return "unverified-staff"
    if sender in {p.lower() for p in case.participants}:
        return "participant"
    return "stranger"


_ROLE_WORDS = {"staff": "verified staff", "complainant": "its complainant",
               "participant": "already on the case"}


def _candidates(evidence: ThreadEvidence) -> tuple[tuple[str, CaseFacts | None], ...]:
    # The order: subject tag, then In-Reply-To/References, then signed reply address.
    return (("subject tag", evidence.tag_case), ("In-Reply-To/References",
            evidence.reference_case), ("signed reply address", evidence.reply_target_case))


def decide_thread(evidence: ThreadEvidence, now: datetime, settings: LifecycleSettings,
                  appeal_requested: bool = False, *,
                  unknown_sender_policy: UnknownSenderPolicy = "new-case") -> ThreadDecision:
    """The case the mail belongs to and what it does there; see README "For staff"."""
    reasons: list[str] = []
    if evidence.tag_ref and evidence.tag_case is None:
        reasons.append(f"subject tag {evidence.tag_ref} names no existing case")
    refused: tuple[str, CaseFacts, Role] | None = None
    for source, case in _candidates(evidence):
        if case is None:
            continue
        role = _role(evidence, case)
        if role in ("staff", "complainant", "participant"):
            reasons.append(f"{source} matches {case.ref}; sender is {_ROLE_WORDS[role]}")
            target = evidence.reply_target_case
            if role == "staff" and target is not None and target.ref != case.ref:
                reasons.append(f"note: the signed reply address was for {target.ref}")
            return _joined(case, role, evidence, now, settings, appeal_requested, reasons)
        reasons.append(f"{source} matches {case.ref}, but the sender may not join it ({role})")
        refused = refused or (source, case, role)
    if refused is None:
        reasons.append("no subject tag, reference or reply address matches a case: new case")
        return ThreadDecision("new-case", None, None, _role_without_case(evidence),
                              tuple(reasons))
    _source, case, role = refused
    if role == "unverified-staff":
        reasons.append("staff-looking mail that failed verification changes nothing: recorded "
                       "as unverified, and the staff address is told")
        return ThreadDecision("record-only", case.ref, None, role, tuple(reasons))
    # Hijack protection: copying a tag or a Message-ID, or signing up to some service with our
    # address (the "ticket trick"), must never let a stranger read or steer another's case.
    why = (f"only the complainant, people already on {case.ref} and verified staff may "
           "join it; never relayed to its complainant")
    if unknown_sender_policy == "hold":
        return ThreadDecision("hold", None, None, role, (*reasons, f"held for review: {why}"))
    return ThreadDecision("new-case", None, None, role, (*reasons, f"opens a new case: {why}"))


def _role_without_case(evidence: ThreadEvidence) -> Role:
    if evidence.sender_is_staff:
        return "staff" if evidence.staff_verified else "unverified-staff"
    return "complainant"  # of the new case


def _joined(case: CaseFacts, role: Role, evidence: ThreadEvidence, now: datetime,
            settings: LifecycleSettings, appeal_requested: bool,
            reasons: list[str]) -> ThreadDecision:
    def join(new_status: str | None, why: str, **extra: bool) -> ThreadDecision:
        return ThreadDecision("join", case.ref, None, role, (*reasons, why), new_status,
                              **extra)

    if evidence.auto_submitted:
        return join(None, "automatic mail never changes a case's state")
    if role == "staff":
        if case.status == "new":
            return join("open", "first staff reply: new -> open (first response)",
                        may_relay=True)
        return join(None, f"staff reply; status stays {case.status} (commands may change it)",
                    may_relay=True)
    if appeal_requested and case.status in ("resolved", "closed"):
        return ThreadDecision("appeal", None, case.ref, role, (
            *reasons, f"asks for a review of {case.status} {case.ref}: a linked appeal case "
                      "with raised priority; the original resolution stays as it was"),
            raise_priority=True)
    noted = {"appeal_noted": True} if appeal_requested else {}
    also = "; asks for a review while the case is still being worked on" if noted else ""
    if case.status == "pending":
        return join("open", f"reply to a pending case: pending -> open{also}", **noted)
    if case.status in ("new", "open"):
        return join(None, f"reply to a {case.status} case; status unchanged{also}", **noted)
    if case.status == "resolved":
        window = timedelta(days=settings.reopen_window_days)
        if case.resolved_at is None or now - case.resolved_at <= window:
            when = ("resolution time unknown" if case.resolved_at is None
                    else f"within {settings.reopen_window_days} days of resolution")
            return ThreadDecision("reopen", case.ref, None, role, (
                *reasons, f"reply to a resolved case {when}: resolved -> open"), "open")
        return ThreadDecision("new-linked-case", None, case.ref, role, (
            *reasons, f"reply more than {settings.reopen_window_days} days after resolution: "
                      f"a new case linked to {case.ref}"))
    if case.status == "closed":
        return ThreadDecision("new-linked-case", None, case.ref, role, (
            *reasons, f"reply to closed {case.ref}: a new case linked to it"))
    return join(None, f"unknown status {case.status!r}; status unchanged")


# --- priorities and staff status commands


PRIORITY_ORDER = ("low", "normal", "high", "urgent")


def raised_priority(current: str) -> str:
    """An appeal's priority: one step above the original, and at least "high"."""
    index = PRIORITY_ORDER.index(current) if current in PRIORITY_ORDER else 1
    raised = max(index + 1, PRIORITY_ORDER.index("high"))
    return PRIORITY_ORDER[min(raised, len(PRIORITY_ORDER) - 1)]


# Which statuses `#status` may move a case to, from each status. Automatic moves (new -> open
# on the first staff reply, pending -> open on a complainant reply, resolved -> closed after
# auto_close_days) are made by the pipeline, not by commands. A closed case can only be
# reopened: "resolved" again would re-send the resolution notice and restart the close timer
# for a case whose record is final; "pending" needs an open conversation first.
STATUS_TRANSITIONS: Mapping[str, frozenset[str]] = {
    "new": frozenset({"open", "pending", "resolved", "closed"}),
    "open": frozenset({"pending", "resolved", "closed"}),
    "pending": frozenset({"open", "resolved", "closed"}),
    "resolved": frozenset({"open", "closed"}),
    "closed": frozenset({"open"}),
}


@dataclass(frozen=True, slots=True)
class StatusChange:
    """`allowed` False: nothing changes and `reason` is what the staff member is told."""

    allowed: bool
    new_status: str
    reason: str


def apply_status_command(current: str, requested: str) -> StatusChange:
    if requested == current:
        return StatusChange(True, current, f"already {current}; nothing changed")
    allowed = STATUS_TRANSITIONS.get(current, frozenset())
    if requested in allowed:
        return StatusChange(True, requested, f"{current} -> {requested}")
    choices = ", ".join(sorted(allowed)) or "none"
    return StatusChange(False, current, f"a {current} case cannot be set to {requested} "
                                        f"(possible: {choices})")


# --- appeal phrases


DEFAULT_APPEAL_PHRASES: tuple[str, ...] = (
    "不满意", "申诉", "复核", "投诉升级", "升级投诉", "not satisfied", "dissatisfied",
    "unsatisfied", "appeal", "request a review", "ask for a review", "review this decision",
)


def builtin_appeal_phrases_path() -> Path:
    # In a subdirectory: `complaints rules check` reads every rules/*.toml as a rule file.
    return Path(__file__).resolve().parent.parent / "rules" / "lifecycle" / "appeal.toml"


def load_appeal_phrases(path: Path | str | None = None) -> tuple[str, ...]:
    """`appeal_phrases` from the file, or the built-in list when the file does not exist."""
    path = Path(path) if path is not None else builtin_appeal_phrases_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return DEFAULT_APPEAL_PHRASES
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read appeal phrases: {exc}", source=str(path)) from None
    phrases = data.get("appeal_phrases")
    if (not isinstance(phrases, list) or not phrases
            or not all(isinstance(p, str) and p.strip() for p in phrases)):
        raise ConfigError("appeal_phrases must be a non-empty list of non-empty strings",
                          key="appeal_phrases", source=str(path))
    return tuple(p.strip() for p in phrases)


@functools.lru_cache(maxsize=8)
def _appeal_pattern(phrases: tuple[str, ...]) -> re.Pattern[str]:
    parts = []
    for phrase in phrases:
        words = r"\s+".join(re.escape(w) for w in _fold(phrase).split())
        # Whole words for Latin letters only: CJK has no spaces, and Python's \b would see
        # "appeal申诉" as one word.
        parts.append(rf"(?<![a-z]){words}(?![a-z])")
    return re.compile("|".join(parts))


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower()


def appeal_requested(new_text: str, phrases: Sequence[str] = DEFAULT_APPEAL_PHRASES) -> bool:
    """Does the new text of a reply ask for a review? Quoted history must not be passed in:
    our own resolution notice explains how to appeal."""
    return bool(phrases) and _appeal_pattern(tuple(phrases)).search(_fold(new_text)) is not None
