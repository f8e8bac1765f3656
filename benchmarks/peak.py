"""Run a module as __main__ and write this process's peak RSS (VmHWM, KiB) and CPU time
(user and system, seconds) to a file at exit.

    python -m benchmarks.peak PEAK_FILE MODULE [ARGS...]

Why not the rusage of the child: Linux carries `ru_maxrss` across exec, and a child started by
vfork/fork from a large parent inherits the parent's high-water mark (the driver that just
generated a 30 MB mail made every later child look 230 MiB big). VmHWM belongs to the address
space made by exec, so it is the measured program's own peak. The CPU time is read here for
the same reason of ownership: the rusage of a child that is reaped also counts the processes
it reaped, and a forkserver's workers are not reaped by it at all.
"""

from __future__ import annotations

import atexit
import os
import runpy
import sys
from pathlib import Path


def _record(path: Path) -> None:
    times = os.times()
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            path.write_text(f"{line.split()[1]} {times.user + times.system:.3f}")
            return


def main() -> None:
    path, module = Path(sys.argv[1]), sys.argv[2]
    sys.argv = [module, *sys.argv[3:]]
    atexit.register(_record, path)
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
