"""A batch's log lines are held on the filing thread and written at once when it ends; nothing
is lost, reordered or held from other threads, and a warning is never held."""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterator

import pytest

from processor.logsetup import HoldingHandler, held_logs


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@pytest.fixture
def stream() -> Iterator[CountingStream]:
    stream = CountingStream()
    handler = HoldingHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.handlers[:] = saved
        root.setLevel(level)


log = logging.getLogger("processor.test_held_logs")


def test_lines_of_the_block_are_written_together_when_it_ends(stream: CountingStream) -> None:
    log.info("before")
    with held_logs():
        for n in range(3):
            log.info("opened case C-%d", n)
        assert stream.getvalue() == "INFO before\n"  # held so far
    assert stream.getvalue() == ("INFO before\nINFO opened case C-0\nINFO opened case C-1\n"
                                 "INFO opened case C-2\n")
    assert stream.writes == 2  # one for the line before, one for the three held
    log.info("after")
    assert stream.getvalue().endswith("INFO after\n")


def test_a_warning_goes_out_at_once_after_what_was_held(stream: CountingStream) -> None:
    with held_logs():
        log.info("one")
        log.warning("uid 7 quarantined")
        assert stream.getvalue() == "INFO one\nWARNING uid 7 quarantined\n"
        log.info("two")
        assert "two" not in stream.getvalue()
    assert stream.getvalue().endswith("INFO two\n")


def test_lines_are_written_when_the_block_fails(stream: CountingStream) -> None:
    with pytest.raises(RuntimeError), held_logs():
        log.info("filed, then the commit failed")
        raise RuntimeError("commit")
    assert stream.getvalue() == "INFO filed, then the commit failed\n"


def test_other_threads_are_not_held(stream: CountingStream) -> None:
    written = threading.Event()

    def elsewhere() -> None:
        log.info("sent an acknowledgement")
        written.set()

    with held_logs():
        log.info("held")
        thread = threading.Thread(target=elsewhere)
        thread.start()
        assert written.wait(10)
        thread.join()
        assert stream.getvalue() == "INFO sent an acknowledgement\n"
    assert stream.getvalue() == "INFO sent an acknowledgement\nINFO held\n"


def test_nested_blocks_write_at_the_outer_end(stream: CountingStream) -> None:
    with held_logs():
        with held_logs():
            log.info("inner")
        assert stream.getvalue() == ""
    assert stream.getvalue() == "INFO inner\n"


def test_without_a_holding_handler_nothing_is_held() -> None:
    stream = io.StringIO()
    plain = logging.StreamHandler(stream)
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    root.handlers[:] = [plain]
    root.setLevel(logging.INFO)
    try:
        with held_logs():
            log.info("straight out")
            assert stream.getvalue() == "straight out\n"
    finally:
        root.handlers[:] = saved
        root.setLevel(level)
