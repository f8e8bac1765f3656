"""Which acknowledgement templates exist, so rules naming an unknown one can be refused."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from processor.classify.model import DEFAULT_TEMPLATE

# templates/<name>.<lang>.txt.j2 and templates/<name>.<lang>.html.j2, lang zh or en.
_TEMPLATE_FILE = re.compile(r"^(?P<name>[a-z0-9][a-z0-9_-]*)\.(?:zh|en)\.(?:txt|html)\.j2$")


def discover_templates(directories: Iterable[Path]) -> set[str]:
    """Template names found in the directories (missing ones are skipped), plus the default."""
    names = {DEFAULT_TEMPLATE}
    for directory in directories:
        if Path(directory).is_dir():
            for path in Path(directory).iterdir():
                found = _TEMPLATE_FILE.match(path.name)
                if found:
                    names.add(found.group("name"))
    return names
