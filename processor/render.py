"""Jinja2 over template directories: a deployment's override directory first, then templates/.

A template is named `<name>.<language>.<txt|html>.j2`; files starting with "_" are shared pieces
(imports, macros) and not templates of their own. Every Jinja2 problem leaves this module as a
TemplateError that names the file and line.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

import processor
from processor.errors import TemplateError

_TEMPLATE_FILE = re.compile(r"^(?P<name>[a-z0-9][a-z0-9-]*)\.(?P<language>[a-z]{2,3})"
                            r"\.(?P<kind>txt|html)\.j2$")


@dataclass(frozen=True, slots=True)
class RenderedBody:
    """A mail body; `html` is None when a template has no HTML version."""

    text: str
    html: str | None


def builtin_templates_dir() -> Path:
    return Path(processor.__file__).resolve().parent.parent / "templates"


def base_language(language: str) -> str:
    """"zh-CN", "zh_Hant" and "ZH" all select the "zh" templates."""
    return re.split(r"[-_]", language.strip().lower(), maxsplit=1)[0]


_WEEKDAYS = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "zh": ("星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日"),
}
_MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December")


def format_when(value: datetime | str, language: str = "en") -> str:
    """A point in time in plain words; a string is taken as already formatted by the caller.

    Written out here rather than with locale/strftime because the process locale is whatever the
    container happens to have, and a customer must never see a month name in the wrong language.
    """
    if not isinstance(value, datetime):
        return str(value)
    offset = value.strftime("%z")
    zone = f" (UTC{offset[:3]}:{offset[3:]})" if offset else ""
    if base_language(language) == "zh":
        weekday = _WEEKDAYS["zh"][value.weekday()]
        return f"{value.year}年{value.month}月{value.day}日（{weekday}）{value:%H:%M}{zone}"
    weekday = _WEEKDAYS["en"][value.weekday()]
    return f"{weekday} {value.day} {_MONTHS_EN[value.month - 1]} {value.year}, {value:%H:%M}{zone}"


class TemplateRenderer:
    """Renders templates found in `directories`, searched in order, per file."""

    def __init__(self, directories: Sequence[Path], default_language: str = "en") -> None:
        self.directories = tuple(Path(d) for d in directories)
        self.default_language = base_language(default_language)
        # Sandboxed because override templates are edited by operators, not reviewed as code.
        self._env = SandboxedEnvironment(
            loader=_CheckedNowAndThen([str(d) for d in self.directories]),
            undefined=jinja2.StrictUndefined,
            autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",),
                                                default_for_string=False, default=False),
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self._listing: tuple[float, set[tuple[str, str, str]], set[str]] | None = None
        self._languages: dict[tuple[float, str], frozenset[str]] = {}
        self._env.filters["when"] = format_when

    @classmethod
    def with_override(cls, override_dir: str | Path | None,
                      default_language: str = "en") -> TemplateRenderer:
        """The deployment's directory (if configured) before the built-in templates/."""
        dirs = [Path(override_dir)] if override_dir else []
        return cls([*dirs, builtin_templates_dir()], default_language)

    def available_templates(self) -> set[str]:
        return {name for name, _language, _kind in self._files()}

    def languages(self, name: str) -> set[str]:
        self._listed()
        listing = self._listing  # one listing for the key and the files, whatever other
        assert listing is not None  # threads list meanwhile
        key = (listing[0], name)  # asked for every acknowledgement: once per listing
        found = self._languages.get(key)
        if found is None:
            found = frozenset(language for n, language, kind in listing[1]
                              if n == name and kind == "txt")
            if len(self._languages) > 64:
                self._languages.clear()
            self._languages[key] = found
        return set(found)

    def render_pair(self, name: str, language: str, context: Mapping[str, Any]) -> RenderedBody:
        """The text and HTML versions in `language`, or in the default language if it has none."""
        chosen = base_language(language)
        if not self._exists(f"{name}.{chosen}.txt.j2"):
            chosen = self.default_language
        text_file = f"{name}.{chosen}.txt.j2"
        if not self._exists(text_file):
            raise TemplateError(
                f"no template {text_file} in {', '.join(str(d) for d in self.directories)}",
                hint="`complaints templates preview` lists the templates found")
        html_file = f"{name}.{chosen}.html.j2"
        html = self.render_file(html_file, context) if self._exists(html_file) else None
        return RenderedBody(text=self.render_file(text_file, context), html=html)

    def render_file(self, filename: str, context: Mapping[str, Any]) -> str:
        try:
            return self._env.get_template(filename).render(context)
        except jinja2.TemplateSyntaxError as exc:
            where = f"{exc.filename or exc.name or filename}:{exc.lineno}"
            raise TemplateError(f"{where}: {exc.message}") from None
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(f"{filename}: template not found: {exc.name}") from None
        except Exception as exc:  # any error raised while rendering, e.g. an undefined variable
            where = _template_frame(exc.__traceback__) or filename
            raise TemplateError(f"{where}: {type(exc).__name__}: {exc}") from exc

    def _exists(self, filename: str) -> bool:
        return filename in self._listed()[1]

    def _files(self) -> set[tuple[str, str, str]]:
        return self._listed()[0]

    def _listed(self) -> tuple[set[tuple[str, str, str]], set[str]]:
        """The template files, listed at most every LISTING_SECONDS: every acknowledgement
        asks which languages exist, and listing the directories each time cost more than
        rendering. Edits to a template and new template files show within LISTING_SECONDS
        (see _CheckedNowAndThen)."""
        now = time.monotonic()
        if self._listing is None or now - self._listing[0] > LISTING_SECONDS:
            found, names = set(), set()
            for directory in self.directories:
                for path in directory.glob("*.j2") if directory.is_dir() else ():
                    names.add(path.name)
                    match = _TEMPLATE_FILE.match(path.name)
                    if match:
                        found.add((match["name"], match["language"], match["kind"]))
            self._listing = (now, found, names)
        return self._listing[1], self._listing[2]


LISTING_SECONDS = 10.0


class _CheckedNowAndThen(jinja2.FileSystemLoader):
    """Jinja's file loader, whose templates are checked for edits at most every
    LISTING_SECONDS instead of at every use: the check is a stat of the file, and each stat
    gave the interpreter lock away, four per acknowledgement (about 12,500 in a poll of
    10,000 mails, benchmarks/RESULTS.md)."""

    def get_source(self, environment: jinja2.Environment,
                   template: str) -> tuple[str, str, Callable[[], bool]]:
        source, filename, uptodate = super().get_source(environment, template)
        checked = time.monotonic()

        def checked_now_and_then() -> bool:
            nonlocal checked
            now = time.monotonic()
            if now - checked < LISTING_SECONDS:
                return True
            checked = now
            return uptodate()

        return source, filename, checked_now_and_then


def _template_frame(tb: TracebackType | None) -> str | None:
    """`file:line` of the innermost template frame; Jinja2 rewrites tracebacks to show them."""
    where = None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            where = f"{filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    return where
