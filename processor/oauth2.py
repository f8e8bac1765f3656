"""OAuth 2.0 access tokens for IMAP and SMTP, from a helper command.

Office 365 and Gmail want an access token (XOAUTH2) rather than a password. Getting one means
an interactive consent once and a refresh token kept and used from then on: the work of a
dedicated helper (oama, neomutt's mutt_oauth2.py, a provider's own script). As isync, neomutt
and aerc do, the desk runs that helper's command and uses the token it prints; it holds no
client secret and no refresh token itself.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Sequence

from processor.errors import ConfigError, MailboxUnavailable

# How long the command may take (it may have to refresh the token online).
COMMAND_SECONDS = 60
# How long a token printed by the command is used again before the command is asked anew
# (SMTP connects once per mail). Access tokens live an hour or more; a refused one is
# forgotten at once (TokenSource.forget).
REUSE_SECONDS = 300


def run_token_command(argv: Sequence[str], key: str) -> str:
    """The access token the command prints, as one line. A program that cannot be run is a
    configuration error (naming `key`); one that fails or hangs may succeed later (the
    provider away), so it raises MailboxUnavailable, retried with the connection."""
    try:
        done = subprocess.run(list(argv), capture_output=True, timeout=COMMAND_SECONDS,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise ConfigError(f"no program {argv[0]!r}", key=key) from None
    except PermissionError:
        raise ConfigError(f"{argv[0]!r} cannot be run", key=key) from None
    except subprocess.TimeoutExpired:
        raise MailboxUnavailable(f"the token command gave no access token within "
                                 f"{COMMAND_SECONDS} s", hint=f"run it by hand ({key})") from None
    token = done.stdout.decode("utf-8", "replace").strip()
    if done.returncode != 0 or not token or "\n" in token:
        said = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        problem = f"exited {done.returncode}" if done.returncode else "printed no single line"
        raise MailboxUnavailable(
            f"the token command {problem}" + (f": {said[0][:300]}" if said[0] else ""),
            hint=f"run it by hand ({key}); it must print one access token")
    return token


class TokenSource:
    """A token command's token, used again for REUSE_SECONDS; thread-safe."""

    def __init__(self, argv: Sequence[str], key: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.argv, self.key = tuple(argv), key
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._until = 0.0

    def __call__(self) -> str:
        with self._lock:
            now = self._clock()
            if self._token is None or now >= self._until:
                self._token = run_token_command(self.argv, self.key)
                self._until = now + REUSE_SECONDS
            return self._token

    def forget(self) -> None:
        """The server refused the token: the next use asks the command again."""
        with self._lock:
            self._token = None
