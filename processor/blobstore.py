"""Content-addressed evidence store: raw mails and attachments as files named by their SHA-256.

Each file is written to a temporary name, fsynced, then renamed, so a reader never sees half a
file and a name never comes from the mail. The fsync and rename are batched: `put` only writes
the temporary file, and `sync` (called before the database commit that refers to the files)
fsyncs them, renames them into place and fsyncs their directories. So a mail is never moved on
the server before its bytes are durable, without one sync per mail.

On Linux a batch of many files is made durable with two syncfs(2) calls (the temporary files'
data, then the renames) instead of an fsync per file and directory: a batch of 200 mails is
about a thousand files, and their fsyncs were a sixth of the ingest time. The first of the two
can be started early, in the background (`sync_ahead`), once a batch has staged its files and
while it still writes its rows: it was the longer, 46 ms a batch, about 8% of a poll spent
waiting on the disk.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

# A batch's temporary files live seconds to minutes; one a day old was left by a dead process.
LEFTOVER_SECONDS = 24 * 3600


@dataclass(frozen=True, slots=True)
class StagedFile:
    """Bytes another process wrote to a temporary file of the store (see `stage_detached`)."""

    sha256: str
    size: int
    path: str


class BlobStore:
    """Files are stored as `<root>/<first two hex digits>/<sha256>`: 256 directories, so
    storing a file almost never makes one (a directory per file was a fifth of the cost of
    filing a mail on a fresh store). A store written before by the older two-level layout
    (`<ab>/<cd>/<sha256>`) is still read; new files go to the flat one."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        # Paths are plain strings inside: a mail's files are looked up several times while it
        # is filed, and building and hashing Path objects for that was 3% of the filing.
        self._prefix = f"{self.root}{os.sep}"
        self._two_level = _may_hold_two_level_files(self.root)
        self._marked = False
        # Staged files belong to the thread whose transaction will refer to them: each mailbox
        # worker syncs or discards only its own.
        self._local = threading.local()

    @property
    def _pending(self) -> dict[str, str]:
        """Final path -> temporary file, until `sync` (per thread)."""
        pending = getattr(self._local, "pending", None)
        if pending is None:
            pending = self._local.pending = {}
        return pending

    def path_for(self, sha256: str) -> Path:
        return Path(self._path_for(sha256))

    def _path_for(self, sha256: str) -> str:
        flat = self._flat_path(sha256)
        if self._two_level and not os.path.exists(flat):
            older = os.path.join(self.root, sha256[:2], sha256[2:4], sha256)
            if os.path.exists(older):
                return older
        return flat

    def _flat_path(self, sha256: str) -> str:
        return f"{self._prefix}{sha256[:2]}{os.sep}{sha256}"

    def _stored(self, sha256: str, size: int) -> bool:
        return self._flat_path(sha256) in self._pending or self._complete(
            self._path_for(sha256), size)

    def put(self, data: bytes, sha256: str | None = None) -> str:
        """Stage bytes (deduplicated by hash) and return their SHA-256 hex digest."""
        digest = sha256 or hashlib.sha256(data).hexdigest()
        if self._stored(digest, len(data)):
            return digest
        target = self._flat_path(digest)
        fd, tmp = self._temporary(target)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        except BaseException:
            _unlink(tmp)
            raise
        self._pending[target] = tmp
        return digest

    def put_stream(self, pieces: Iterable[bytes], sha256: str, size: int) -> str:
        """Stage bytes given in pieces whose SHA-256 and size are known beforehand.

        For an attachment decoded a piece at a time (`Attachment.chunks()`): it is never held
        whole, and not decoded at all when the store has it already. The bytes are hashed as
        they are written; if they are not what `sha256` says, nothing is staged.
        """
        if self._stored(sha256, size):
            return sha256
        self._pending[self._flat_path(sha256)] = self._write_temporary(pieces, sha256)
        return sha256

    def stage_detached(self, pieces: Iterable[bytes], sha256: str, size: int, *,
                       check: bool = True) -> StagedFile | None:
        """Write bytes to a temporary file beside their final name, owned by no transaction:
        for a process that prepares mail for the one that files it, which then `adopt`s the
        file (or removes it). None when the store holds the bytes already. Without `check`,
        the bytes are not hashed again as they are written: for bytes whose `sha256` the
        caller computed from these very bytes."""
        if self._complete(self._path_for(sha256), size):
            return None
        return StagedFile(sha256, size, self._write_temporary(pieces, sha256, check=check))

    def adopt(self, staged: StagedFile) -> None:
        """Take over a file of `stage_detached` as if `put` had written it in this thread:
        `sync` puts it in place, `discard` removes it.

        The worker looked for the bytes in the store before it wrote them, so the disk is not
        asked again (in the flat layout): if another worker stored them meanwhile, `sync`
        replaces that file with the same bytes. A stat per file here gave the interpreter
        lock away about 12,000 times in a poll of 10,000 mails (benchmarks/RESULTS.md)."""
        target = self._flat_path(staged.sha256)
        if target in self._pending or (self._two_level and self._stored(staged.sha256,
                                                                         staged.size)):
            _unlink(staged.path)
        else:
            self._pending[target] = staged.path

    def _write_temporary(self, pieces: Iterable[bytes], sha256: str, *,
                         check: bool = True) -> str:
        fd, tmp = self._temporary(self._flat_path(sha256))
        digest = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as handle:
                for piece in pieces:
                    if check:
                        digest.update(piece)
                    handle.write(piece)
            if check and digest.hexdigest() != sha256:
                raise ValueError(f"bytes given for blob {sha256} hash to {digest.hexdigest()}")
        except BaseException:
            _unlink(tmp)
            raise
        return tmp

    def _temporary(self, target: str) -> tuple[int, str]:
        """A new temporary file beside `target`, opened for writing.

        Cheaper than tempfile.mkstemp, which with a mkdir per file was half the cost of
        staging a mail: the directory is made only when the open finds it missing, and the
        name is this process's own counter (O_EXCL still refuses a name left by a crashed
        process with the same pid).
        """
        directory = os.path.dirname(target)
        for _attempt in range(100):
            tmp = os.path.join(directory,
                               f".tmp-{os.getpid()}-{threading.get_ident()}-{next(_NAMES)}")
            try:
                return os.open(tmp, _NEW_FILE, 0o600), tmp
            except FileExistsError:
                continue
            except FileNotFoundError:  # not made yet, or removed behind our back
                os.makedirs(directory, exist_ok=True)
        raise FileExistsError(f"no free temporary name in {directory}")

    @staticmethod
    def _complete(target: str, size: int) -> bool:
        # A file of the wrong size can only be the remains of a crash outside our protocol
        # (e.g. a restored backup); write it again rather than trust it.
        try:
            return os.stat(target).st_size == size
        except FileNotFoundError:
            return False

    def get(self, sha256: str) -> bytes:
        return self.path_for(sha256).read_bytes()

    def exists(self, sha256: str) -> bool:
        return os.path.exists(self._path_for(sha256)) or self._flat_path(sha256) in self._pending

    def sync_ahead(self) -> None:
        """Start making the data of this thread's staged files durable, in the background,
        while the caller goes on with work of its own (a batch's last rows): `sync` then waits
        for it instead of syncing the data itself, unless files were staged after this call.
        The files stay where they are until `sync`: renamed before their data is durable, a
        crash could leave a complete-looking file with missing bytes."""
        pending = self._pending
        self._local.ahead = None
        if len(pending) >= SYNCFS_FROM_FILES and _SYNCFS is not None:
            self._local.ahead = (_in_background(_syncfs, self.root), frozenset(pending.values()))

    def _synced_ahead(self) -> bool:
        """Whether `sync_ahead` made every file staged now durable (its error is raised: after
        a failed writeback a later sync may succeed with the bytes lost, so never retry)."""
        ahead: tuple[Future[bool], frozenset[str]] | None = getattr(self._local, "ahead", None)
        if ahead is None:
            return False
        self._local.ahead = None
        synced, covered = ahead
        return synced.result() and all(tmp in covered for tmp in self._pending.values())

    def sync(self) -> None:
        """Make every staged file durable under its final name: the data first, then the
        rename, so a crash can never leave a complete-looking file with missing bytes."""
        pending = self._pending
        if pending and not self._two_level and not self._marked:
            _mark_flat(self.root)
            self._marked = True
        if self._synced_ahead() or (len(pending) >= SYNCFS_FROM_FILES and _syncfs(self.root)):
            for target, tmp in pending.items():
                os.replace(tmp, target)
            if not _syncfs(self.root):
                raise OSError("syncfs failed after the renames")
            pending.clear()
            return
        directories: set[str] = set()
        for target, tmp in pending.items():
            fsync_path(tmp)
            os.replace(tmp, target)
            parent = os.path.dirname(target)
            directories.update((parent, os.path.dirname(parent)))
        for directory in directories:
            fsync_path(directory)
        pending.clear()

    def discard(self) -> None:
        """Drop staged files of a batch that was rolled back."""
        self._local.ahead = None  # its files go: what it syncs no longer matters
        for tmp in self._pending.values():
            _unlink(tmp)
        self._pending.clear()

    def sweep_leftovers(self, older_than_seconds: float = LEFTOVER_SECONDS) -> int:
        """Remove temporary files older than `older_than_seconds`: what a process killed in
        the middle of a batch left behind. Their mail was never committed, so it is still on
        the server and is fetched again. Only old files go, because another worker (on
        another host, over a shared directory) may be writing fresh ones. Returns how many."""
        cutoff = time.time() - older_than_seconds
        removed = 0
        directories = [str(self.root)]
        while directories:  # the shard directories, and the older layout's second level
            try:
                entries = list(os.scandir(directories.pop()))
            except FileNotFoundError:
                continue
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    directories.append(entry.path)
                elif entry.name.startswith(".tmp-") and _older_than(entry, cutoff):
                    _unlink(entry.path)
                    removed += 1
        return removed


def _older_than(entry: os.DirEntry[str], cutoff: float) -> bool:
    # Gone since the directory was listed: renamed into place by a batch being filed right
    # now, or swept by another worker starting at the same moment. Neither is a leftover.
    try:
        return entry.stat(follow_symlinks=False).st_mtime < cutoff
    except FileNotFoundError:
        return False


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# Present in a store that was never written by the two-level layout: no older path to try.
FLAT_MARKER = "layout-flat"


def _may_hold_two_level_files(root: Path) -> bool:
    if (root / FLAT_MARKER).exists():
        return False
    try:
        return any(True for _ in root.iterdir())
    except FileNotFoundError:
        return False


def _mark_flat(root: Path) -> None:
    marker = root / FLAT_MARKER
    if not marker.exists():
        root.mkdir(parents=True, exist_ok=True)
        marker.touch()


_NAMES = itertools.count()
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)

# Below this many files a batch is synced file by file: syncfs also writes out whatever else
# is dirty on the filesystem, which only pays off against many fsyncs.
SYNCFS_FROM_FILES = 16


def fsync_path(path: Path | str) -> None:
    """fsync a file or directory by its path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _load_syncfs():  # type: ignore[no-untyped-def]
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        return libc.syncfs
    except (OSError, AttributeError, TypeError):  # not Linux: fsync file by file
        return None


_SYNCFS = _load_syncfs()


def _in_background(function: Callable[..., bool], *args: object) -> Future[bool]:
    """`function(*args)` in a thread of its own: a thread a batch costs nothing next to a
    syncfs, and leaves no pool to shut down."""
    future: Future[bool] = Future()

    def run() -> None:
        future.set_running_or_notify_cancel()
        try:
            future.set_result(function(*args))
        except BaseException as exc:  # noqa: BLE001 - given to whoever waits for it
            future.set_exception(exc)

    threading.Thread(target=run, name="blob-syncfs", daemon=True).start()
    return future


def _syncfs(root: Path) -> bool:
    """syncfs(2) on the filesystem holding `root`; False when not available (then fsync)."""
    if _SYNCFS is None:
        return False
    fd = os.open(root, os.O_RDONLY)
    try:
        if _SYNCFS(fd) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"syncfs({root}): {os.strerror(error)}")
    finally:
        os.close(fd)
    return True
