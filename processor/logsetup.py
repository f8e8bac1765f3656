"""Logging configured once: one named logger per area, text or JSON lines, never mail bodies."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

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


class HoldingHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that can hold a thread's INFO and DEBUG lines back for a while
    (`held_logs`) and then write them all at once.

    A backlog logs a line or two per mail on the filing thread. Written one by one, each
    line's write gave up the interpreter lock, and taking it back from the threads fetching
    and receiving prepared mail cost the filing thread 0.5 s of a 10,000-mail poll; held for
    the batch, its lines go out in one write when the batch's commit is over. A WARNING or
    worse is never held: it goes out at once, after the lines held before it."""

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self._held = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        held: list[str] | None = getattr(self._held, "lines", None)
        if held is None:
            super().emit(record)
            return
        try:
            held.append(self.format(record) + self.terminator)
        except Exception:  # noqa: BLE001 - as StreamHandler.emit does
            self.handleError(record)
            return
        if record.levelno >= logging.WARNING:
            self.release_held()

    @contextmanager
    def holding(self) -> Iterator[None]:
        if getattr(self._held, "lines", None) is not None:  # held already, further out
            yield
            return
        self._held.lines = []
        try:
            yield
        finally:
            self.release_held()
            self._held.lines = None

    def release_held(self) -> None:
        held: list[str] | None = getattr(self._held, "lines", None)
        if not held:
            return
        text = "".join(held)
        held.clear()
        with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            try:
                self.stream.write(text)
                self.flush()
            except Exception:  # noqa: BLE001 - a closed or full stream must not stop the filing
                self.handleError(logging.makeLogRecord({"msg": text[:200]}))


@contextmanager
def held_logs() -> Iterator[None]:
    """Hold this thread's INFO and DEBUG lines until the block ends (see HoldingHandler);
    nothing is held when logging was not configured here (a library's or a test's handler)."""
    holders = [h for h in logging.getLogger().handlers if isinstance(h, HoldingHandler)]
    with contextlib.ExitStack() as stack:
        for holder in holders:
            stack.enter_context(holder.holding())
        yield


def configure_logging(log_format: str = "text", verbose: int = 0) -> None:
    level = logging.WARNING if verbose < 0 else (logging.INFO if verbose < 2 else logging.DEBUG)
    handler = HoldingHandler(sys.stderr)
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
