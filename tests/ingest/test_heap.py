"""Large blocks go back to the system when freed (processor.heap): in a fresh process, with
and without the setting, and in the preparing processes, which set it when they start."""

from __future__ import annotations

import gc
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from processor.heap import YOUNGEST_GENERATION_OBJECTS
from processor.prepare import Preparer

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc",
    reason="the threshold is glibc's; elsewhere return_large_blocks changes nothing")


def growth_after_large_mails() -> int:
    """A run's pattern: a large buffer freed early (which, by default, makes glibc serve later
    large blocks from the heap), then mails of a megabyte each, every one followed by a small
    object that outlives it. How much the resident set grew once the mails are gone."""
    page = os.sysconf("SC_PAGE_SIZE")

    def resident() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * page

    first = bytearray(8 << 20)
    del first
    before = resident()
    mails, survivors = [], []
    for _ in range(64):
        mail = bytearray(1 << 20)
        mail[::page] = b"x" * len(mail[::page])  # touched, as a fetched mail is
        mails.append(mail)
        survivors.append(bytearray(3000))
    del mails
    return resident() - before


_IN_A_NEW_PROCESS = """
import sys
from processor.heap import return_large_blocks
from tests.ingest.test_heap import growth_after_large_mails
if sys.argv[1] == "fixed":
    assert return_large_blocks()
print(growth_after_large_mails())
"""


_IN_THE_SERVICE = """
import sys
from processor.config import load_settings
from processor.runtime import open_runtime
from tests.ingest.test_heap import growth_after_large_mails
settings = load_settings(sys.argv[1])
open_runtime(settings, require_current_schema=False, worker=sys.argv[2] == "worker")
print(growth_after_large_mails())
"""


def _growth(script: str, *args: str) -> int:
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True,
                          text=True, check=True, timeout=60)
    return int(done.stdout.strip())


def test_freed_large_blocks_leave_the_resident_set() -> None:
    assert _growth(_IN_A_NEW_PROCESS, "fixed") < 8 << 20


def test_without_it_the_heap_keeps_them() -> None:
    # The premise of processor.heap: on this libc the default keeps the freed megabytes.
    assert _growth(_IN_A_NEW_PROCESS, "default") > 32 << 20


def test_a_process_that_polls_gives_them_back(tmp_path: Path) -> None:
    config = tmp_path / "complaints.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "d.sqlite3"}"\n'
                      f'[storage]\ndata_dir = "{tmp_path / "data"}"\n', encoding="utf-8")
    assert _growth(_IN_THE_SERVICE, str(config), "worker") < 8 << 20
    # A command that only reads the store (`cases`, `digest`) leaves malloc as it is.
    assert _growth(_IN_THE_SERVICE, str(config), "reader") > 32 << 20


def test_the_preparing_processes_give_them_back_too() -> None:
    preparer = Preparer(1)
    try:
        future = preparer.call(growth_after_large_mails)
        assert future is not None
        assert future.result(timeout=60) < 8 << 20
    finally:
        preparer.close()


_COLLECTOR_OF_THE_SERVICE = """
import gc, sys
from processor.config import load_settings
from processor.runtime import open_runtime
before = gc.get_threshold()
open_runtime(load_settings(sys.argv[1]), require_current_schema=False,
             worker=sys.argv[2] == "worker")
print(*before, *gc.get_threshold(), gc.get_freeze_count())
"""


def test_a_process_that_polls_runs_the_cycle_collector_rarely(tmp_path: Path) -> None:
    config = tmp_path / "complaints.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "d.sqlite3"}"\n'
                      f'[storage]\ndata_dir = "{tmp_path / "data"}"\n', encoding="utf-8")

    def thresholds(kind: str) -> list[int]:
        done = subprocess.run([sys.executable, "-c", _COLLECTOR_OF_THE_SERVICE, str(config),
                               kind], capture_output=True, text=True, check=True, timeout=60)
        return [int(n) for n in done.stdout.split()]

    before_young, before_middle, before_old, young, middle, old, frozen = thresholds("worker")
    assert young == YOUNGEST_GENERATION_OBJECTS > before_young
    assert (middle, old) == (before_middle, before_old)
    assert frozen > 1000  # what was alive at start (the modules' objects) is left out
    assert thresholds("reader")[3:] == [before_young, before_middle, before_old, 0]


def test_the_preparing_processes_run_it_rarely_too() -> None:
    preparer = Preparer(1)
    try:
        threshold = preparer.call(gc.get_threshold)
        frozen = preparer.call(gc.get_freeze_count)
        assert threshold is not None and frozen is not None
        assert threshold.result(timeout=60)[0] == YOUNGEST_GENERATION_OBJECTS
        assert frozen.result(timeout=60) > 1000
    finally:
        preparer.close()
