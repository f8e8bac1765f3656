"""`python -m processor` for the tests, forked from a process that has already imported it.

The tests run a `complaints` command several hundred times. Starting Python and importing the
processor (SQLAlchemy, Jinja2, Beautiful Soup, imapclient...) costs one to several seconds of
CPU per command on a slow machine, and most of the suite's time went there.

A command run here is still a process of its own, as `python -m processor` starts it: its own
environment, working directory, standard streams, signals and exit status. An uncaught
exception prints its traceback and exits 1, and a failpoint's SIGKILL kills only that process.
It skips only what comes before: the interpreter's start and the imports. Those are done once,
in a parent that does nothing else. It starts no thread and opens no database, server or
file, so a fork inherits nothing from it that a fresh process would not have.

COMPLAINTS_TEST_FORK=0 runs each command as a new process instead (the same results, slower).
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
_MAX_REQUEST = 1 << 20


def serve(fd: int) -> None:
    """The parent's loop: one request at a time, each run in a fork and waited for."""
    import importlib
    import runpy

    import processor.cli  # noqa: F401 - the imports every command would pay for
    import processor.failpoints

    channel = socket.socket(fileno=fd)
    while True:
        request, fds, _flags, _addr = socket.recv_fds(channel, _MAX_REQUEST, 3)
        if not request:
            return  # the test session closed its end
        argv, env, cwd = pickle.loads(request)
        pid = os.fork()
        if pid == 0:
            channel.close()
            for target, fd_in in enumerate(fds):
                os.dup2(fd_in, target)
                os.close(fd_in)
            os.environ.clear()
            os.environ.update(env)
            os.chdir(cwd)
            if sys.path[0] == "":  # `-c` put the start directory there, `-m` puts the current one
                sys.path[0] = cwd
            importlib.reload(processor.failpoints)  # it reads its setting when imported
            # What `python -m processor` does; SystemExit and any exception leave this function
            # and the interpreter exits with them, as the real process would.
            sys.argv = [str(Path(processor.cli.__file__).parent.parent / "__main__.py"), *argv]
            runpy.run_module("processor", run_name="__main__", alter_sys=True)
            raise SystemExit(0)
        for fd_in in fds:
            os.close(fd_in)
        channel.sendall(pid.to_bytes(4, "big"))
        _, status = os.waitpid(pid, 0)
        channel.sendall(os.waitstatus_to_exitcode(status).to_bytes(4, "big", signed=True))


class ForkedCommands:
    """The test session's side: a parent started on first use, and one command at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._channel: socket.socket | None = None
        self._parent: subprocess.Popen[bytes] | None = None

    def _start(self) -> socket.socket:
        if self._channel is not None and self._parent is not None and self._parent.poll() is None:
            return self._channel
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._parent = subprocess.Popen(
            [sys.executable, "-c", f"from tests.forked import serve; serve({theirs.fileno()})"],
            cwd=REPO_ROOT, pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL)
        theirs.close()
        self._channel = ours
        return ours

    def run(self, argv: Sequence[str], env: Mapping[str, str], *, timeout: float,
            stdin: bytes = b"", cwd: str | None = None) -> subprocess.CompletedProcess[bytes]:
        """Like subprocess.run([python, "-m", "processor", *argv], capture_output=True)."""
        with self._lock, tempfile.TemporaryFile() as given, tempfile.TemporaryFile() as out, \
                tempfile.TemporaryFile() as err:
            given.write(stdin)
            given.seek(0)
            channel = self._start()
            request = pickle.dumps((list(argv), dict(env), cwd or os.getcwd()))
            socket.send_fds(channel, [request], [given.fileno(), out.fileno(), err.fileno()])
            pid = int.from_bytes(_receive(channel, None), "big")
            try:
                code = int.from_bytes(_receive(channel, timeout), "big", signed=True)
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)
                _receive(channel, None)
                raise subprocess.TimeoutExpired(["complaints", *argv], timeout) from None
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(["complaints", *argv], code, out.read(), err.read())

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self._parent is not None:
            self._parent.wait(timeout=30)
            self._parent = None


def _receive(channel: socket.socket, timeout: float | None) -> bytes:
    channel.settimeout(timeout)
    data = channel.recv(4)
    if len(data) != 4:
        raise RuntimeError("the process that forks `complaints` commands has died; "
                           "rerun with COMPLAINTS_TEST_FORK=0 to see the command fail alone")
    return data


_COMMANDS = ForkedCommands()


def run_complaints(argv: Sequence[str], env: Mapping[str, str], *, timeout: float = 300,
                   stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """`python -m processor *argv`, its output captured as bytes; forked unless
    COMPLAINTS_TEST_FORK=0."""
    if os.environ.get("COMPLAINTS_TEST_FORK", "1") == "0":
        return subprocess.run([sys.executable, "-m", "processor", *argv], env=dict(env),
                              input=stdin, capture_output=True, timeout=timeout)
    return _COMMANDS.run(argv, env, timeout=timeout, stdin=stdin)


def stop_forking() -> None:
    _COMMANDS.close()
