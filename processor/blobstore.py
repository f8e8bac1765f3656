"""Content-addressed evidence store: raw mails and attachments as files named by their SHA-256.

Each file is written to a temporary name, fsynced, then renamed, so a reader never sees half a
file and a name never comes from the mail. The fsync and rename are batched: `put` only writes
the temporary file, and `sync` (called before the database commit that refers to the files)
fsyncs them, renames them into place and fsyncs their directories. So a mail is never moved on
the server before its bytes are durable, without one sync per mail.

On Linux a batch of many files is made durable with two syncfs(2) calls (the temporary files'
data, then the renames) instead of an fsync per file and directory: a batch of 200 mails is
about a thousand files, and their fsyncs were a sixth of the ingest time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        # Staged files belong to the thread whose transaction will refer to them: each mailbox
        # worker syncs or discards only its own.
        self._local = threading.local()

    @property
    def _pending(self) -> dict[Path, Path]:
        """Final path -> temporary file, until `sync` (per thread)."""
        pending = getattr(self._local, "pending", None)
        if pending is None:
            pending = self._local.pending = {}
        return pending

    def path_for(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes, sha256: str | None = None) -> str:
        """Stage bytes (deduplicated by hash) and return their SHA-256 hex digest."""
        digest = sha256 or hashlib.sha256(data).hexdigest()
        target = self.path_for(digest)
        if target in self._pending or self._complete(target, len(data)):
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        self._pending[target] = Path(tmp_name)
        return digest

    def put_stream(self, pieces: Iterable[bytes], sha256: str, size: int) -> str:
        """Stage bytes given in pieces whose SHA-256 and size are known beforehand.

        For an attachment decoded a piece at a time (`Attachment.chunks()`): it is never held
        whole, and not decoded at all when the store has it already. The bytes are hashed as
        they are written; if they are not what `sha256` says, nothing is staged.
        """
        target = self.path_for(sha256)
        if target in self._pending or self._complete(target, size):
            return sha256
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        digest = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as handle:
                for piece in pieces:
                    digest.update(piece)
                    handle.write(piece)
            if digest.hexdigest() != sha256:
                raise ValueError(f"bytes given for blob {sha256} hash to {digest.hexdigest()}")
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        self._pending[target] = Path(tmp_name)
        return sha256

    @staticmethod
    def _complete(target: Path, size: int) -> bool:
        # A file of the wrong size can only be the remains of a crash outside our protocol
        # (e.g. a restored backup); write it again rather than trust it.
        try:
            return target.stat().st_size == size
        except FileNotFoundError:
            return False

    def get(self, sha256: str) -> bytes:
        return self.path_for(sha256).read_bytes()

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).exists() or self.path_for(sha256) in self._pending

    def sync(self) -> None:
        """Make every staged file durable under its final name: the data first, then the
        rename, so a crash can never leave a complete-looking file with missing bytes."""
        pending = self._pending
        if len(pending) >= SYNCFS_FROM_FILES and _syncfs(self.root):
            for target, tmp in pending.items():
                os.replace(tmp, target)
            if not _syncfs(self.root):
                raise OSError("syncfs failed after the renames")
            pending.clear()
            return
        directories: set[Path] = set()
        for target, tmp in pending.items():
            fsync_path(tmp)
            os.replace(tmp, target)
            directories.update((target.parent, target.parent.parent))
        for directory in directories:
            fsync_path(directory)
        pending.clear()

    def discard(self) -> None:
        """Drop staged files of a batch that was rolled back."""
        for tmp in self._pending.values():
            tmp.unlink(missing_ok=True)
        self._pending.clear()


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
