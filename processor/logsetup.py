"""Logging configured once: one named logger per area, text or JSON lines, never mail bodies."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

_RESERVED = set(vars(logging.LogRecord("x", 0, "x", 0, "", None, None)))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _RESERVED})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(log_format: str = "text", verbose: int = 0) -> None:
    level = logging.WARNING if verbose < 0 else (logging.INFO if verbose < 2 else logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    # Neither format shows where a call was made, nor its thread or process: the settings of
    # the logging HOWTO's "Optimization" section skip collecting them for every record (a
    # backlog logs a line per mail, on the filing thread).
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # imapclient logs every command at INFO; keep it for -vv only.
    logging.getLogger("imapclient").setLevel(logging.DEBUG if verbose >= 2 else logging.WARNING)
    # Libraries that narrate every step at INFO: keep them for -vv.
    for noisy in ("alembic", "mail.log", "asyncio", "pymap"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose >= 2 else logging.WARNING)
