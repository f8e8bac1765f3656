"""The rule set a running poller uses, swapped whole on SIGHUP and kept when the new one is bad."""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Sequence
from pathlib import Path

from processor.classify.load import read_rules
from processor.classify.model import RuleProblem, RuleSet
from processor.classify.templates import discover_templates

log = logging.getLogger("processor.classify")


class RulesHolder:
    """Thread-safe holder: readers take `.current`; `reload()` replaces it only with valid rules."""

    def __init__(self, directories: Sequence[Path],
                 known_templates: Collection[str] | None = None,
                 template_directories: Sequence[Path] = ()) -> None:
        self._directories = tuple(directories)
        self._known_templates = known_templates
        self._template_directories = tuple(template_directories)
        self._lock = threading.Lock()
        self._current: RuleSet | None = None
        problems = self.reload()
        if problems:
            from processor.errors import RulesError

            raise RulesError([str(p) for p in problems])

    @property
    def current(self) -> RuleSet:
        with self._lock:
            assert self._current is not None  # set by __init__ or it raised
            return self._current

    def reload(self) -> list[RuleProblem]:
        """Read the rule files again; on any problem keep the rules in use and return them."""
        templates = self._known_templates
        if templates is None and self._template_directories:
            # Templates may have been added alongside the rules, so look again on every reload.
            templates = discover_templates(self._template_directories)
        rules, problems = read_rules(self._directories, templates)
        if problems or rules is None:
            log.error("rules not reloaded, keeping the ones in use: %d problem(s): %s",
                      len(problems), "; ".join(str(p) for p in problems))
            return problems
        with self._lock:
            self._current = rules
        log.info("rules loaded: %d rules from %d files", len(rules.rules), len(rules.files))
        return []
