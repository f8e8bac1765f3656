"""Staff mail commands: `#status`, `#assign`, `#priority`, `#category`, `#tag`, `#note` lines
at the top of a staff reply, parsed and validated into values the pipeline applies.

All or nothing: when any command line is unknown or invalid, no command of that mail is
applied and its text is not relayed. The issue says unknown or invalid commands "change
nothing"; applying the valid half of a mail would leave the case in a state the staff member
never asked for (say `#status resolved` applied but the `#asign` to a colleague not), and a
mistyped `#nte` must not let an internal note reach the complainant. The staff member is
told what was wrong and simply sends the reply again.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass

STATUSES = ("open", "pending", "resolved", "closed")  # what #status may set ("new" is never set)
PRIORITIES = ("low", "normal", "high", "urgent")
COMMANDS = ("status", "assign", "priority", "category", "tag", "note")
SINGLE_USE = frozenset({"status", "assign", "priority", "category", "note"})  # #tag may repeat
MAX_ASSIGNEE_CHARS = 64
MAX_TAG_CHARS = 40

# "#word rest": the '#' may be full-width (NFKC makes it ASCII) and spaced from the word, so a
# command typed with a Chinese IME is still recognised rather than relayed as text.
_COMMAND_LINE = re.compile(r"^#\s*(?P<word>[A-Za-z]+)(?P<value>.*)$")
# Letters of any script (names such as 张伟), digits, and the characters of an address.
_ASSIGNEE = re.compile(r"^[\w.@+-]+$")
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TAG = re.compile(rf"^[a-z0-9{_CJK}][a-z0-9_{_CJK}-]*$")


@dataclass(frozen=True, slots=True)
class Command:
    """One valid command: `name` from COMMANDS, `value` normalised (lower-cased where it is a
    keyword), `line` the line as written, for the event log."""

    name: str
    value: str
    line: str


@dataclass(frozen=True, slots=True)
class CommandParse:
    """What the top of a staff reply asked for.

    `commands` is empty whenever `errors` is not (all or nothing, see the module docstring).
    `is_note` is True when `#note` was given, even beside errors: such text is never relayed.
    `remaining_text` is the reply without its command lines.
    """

    commands: tuple[Command, ...]
    errors: tuple[str, ...]
    remaining_text: str
    is_note: bool

    @property
    def may_relay(self) -> bool:
        """Is there text for the complainant, and nothing that forbids sending it?"""
        return not self.is_note and not self.errors and bool(self.remaining_text)


def _check_value(name: str, value: str, known_categories: Collection[str]) -> tuple[str, str]:
    """(normalised value, "") or ("", what is wrong)."""
    lowered = value.lower()
    if name == "status":
        return (lowered, "") if lowered in STATUSES else (
            "", f"status must be one of {', '.join(STATUSES)}")
    if name == "priority":
        return (lowered, "") if lowered in PRIORITIES else (
            "", f"priority must be one of {', '.join(PRIORITIES)}")
    if name == "category":
        by_lower = {c.lower(): c for c in known_categories}
        if lowered in by_lower:
            return by_lower[lowered], ""
        return "", f"unknown category; known: {', '.join(sorted(known_categories)) or 'none'}"
    if name == "assign":
        if not value:
            return "", "#assign needs a name, e.g. #assign zhang.wei"
        if len(value) > MAX_ASSIGNEE_CHARS or not _ASSIGNEE.match(value):
            return "", (f"a name is one word of letters, digits, '.', '_', '-', '@' or '+', "
                        f"at most {MAX_ASSIGNEE_CHARS} characters")
        return value, ""
    if name == "tag":
        if not value:
            return "", "#tag needs a tag, e.g. #tag refund-requested"
        if len(lowered) > MAX_TAG_CHARS or not _TAG.match(lowered):
            return "", (f"a tag is lower-case letters, digits, '-' and '_' (or Chinese), "
                        f"at most {MAX_TAG_CHARS} characters")
        return lowered, ""
    return value, ""  # note: any words after #note are part of the note, kept as text


def parse_commands(new_text: str, known_categories: Collection[str]) -> CommandParse:
    """The commands at the top of `new_text` (the reply without quoted history).

    Commands are lines of their own before any other text; blank lines may come before and
    between them. The first other line ends the commands: a '#' further down is just text.
    """
    lines = new_text.splitlines()
    commands: list[Command] = []
    errors: list[str] = []
    note_words = ""
    is_note = False
    seen: set[str] = set()
    index = 0
    for index, raw in enumerate(lines):  # noqa: B007 - where the commands end, used below
        folded = " ".join(unicodedata.normalize("NFKC", raw).split())
        if not folded:
            continue
        match = _COMMAND_LINE.match(folded)
        if match is None:
            break
        name, value = match.group("word").lower(), match.group("value").strip()
        where = f"line {index + 1} \u201c{raw.strip()}\u201d"
        if name not in COMMANDS:
            errors.append(f"{where}: unknown command #{name}; the commands are "
                          + ", ".join(f"#{c}" for c in COMMANDS))
            continue
        if name in SINGLE_USE and name in seen:
            errors.append(f"{where}: #{name} may be given only once")
            continue
        seen.add(name)
        normalised, problem = _check_value(name, value, known_categories)
        if problem:
            errors.append(f"{where}: {problem}")
            continue
        if name == "note":
            is_note, note_words = True, value
        commands.append(Command(name, normalised, raw.strip()))
    else:
        index = len(lines)
    body = "\n".join(lines[index:]).strip()
    remaining = "\n".join(part for part in (note_words, body) if part)
    return CommandParse(commands=() if errors else tuple(commands), errors=tuple(errors),
                        remaining_text=remaining, is_note=is_note)
