"""Named crash points, used only by the crash-safety tests to SIGKILL the process at an exact step.

With COMPLAINTS_FAILPOINT unset (always, in production) `reach()` does nothing. The tests set
COMPLAINTS_FAILPOINT=<name>:<n> to kill the process the n-th time <name> is reached, because no
real server can make a crash land precisely between a commit and the IMAP MOVE; with
<name>:<n>:stop the process is frozen (SIGSTOP) there instead, as a hung host would be, until
the test sends SIGCONT.
"""

from __future__ import annotations

import os
import signal

_SPEC = os.environ.get("COMPLAINTS_FAILPOINT", "")
_NAME, _, _REST = _SPEC.partition(":")
_COUNT, _, _ACTION = _REST.partition(":")
_remaining = int(_COUNT or "1") if _NAME else 0


def reach(name: str) -> None:
    global _remaining
    if not _NAME or name != _NAME:
        return
    _remaining -= 1
    if _remaining == 0 and _ACTION == "stop":
        os.kill(os.getpid(), signal.SIGSTOP)
    elif _remaining <= 0 and _ACTION != "stop":
        os.kill(os.getpid(), signal.SIGKILL)
