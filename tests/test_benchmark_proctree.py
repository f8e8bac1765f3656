"""benchmarks.proctree reads a process and those below it from /proc: checked against real
processes started here, whose CPU time and memory are known to within a margin."""

from __future__ import annotations

import subprocess
import sys

import pytest

from benchmarks.proctree import HelperSampler, cpu_seconds, descendants, resident_mib

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

# A parent that starts a child which burns CPU for a while and holds 64 MiB, then both wait
# for their standard input to close.
_PARENT = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", '''
import sys, time
block = bytearray(64 * 1024 * 1024)
for i in range(0, len(block), 4096):
    block[i] = 1
end = time.process_time() + 0.6
while time.process_time() < end:
    pass
print("busy done", flush=True)
sys.stdin.read()
'''], stdin=subprocess.PIPE, stdout=sys.stdout)
print(child.pid, flush=True)
sys.stdin.read()
child.stdin.close()
child.wait()
"""


def test_the_sampler_adds_up_the_cpu_and_finds_the_peak_of_the_processes_below() -> None:
    parent = subprocess.Popen([sys.executable, "-c", _PARENT], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None and parent.stdin is not None
    try:
        sampler = HelperSampler(parent.pid).start()
        child = int(parent.stdout.readline())
        assert parent.stdout.readline().strip() == "busy done"  # the event, not a sleep
        assert descendants(parent.pid) == [child]
        assert resident_mib(parent.pid) > 64
        spent = cpu_seconds(child)
        assert spent is not None and spent >= 0.6
        helpers = sampler.stop()  # its last reading is taken now, the child still running
    finally:
        parent.stdin.close()
        parent.wait(timeout=30)
    assert helpers.processes == 1
    assert 0.6 <= helpers.cpu_seconds < spent + 1.0
    assert helpers.peak_rss_mib > 64


def test_a_process_that_is_gone_reads_as_nothing() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert cpu_seconds(gone.pid) is None
    assert descendants(gone.pid) == []
    assert resident_mib(gone.pid) == 0
