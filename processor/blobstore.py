"""Content-addressed evidence store: raw mails and attachments as files named by their SHA-256.

Files are written to a temporary name, flushed and renamed, so a reader never sees half a file,
and a name never comes from the mail. Durability is batched: `sync()` fsyncs every file written
since the last call (and their directories) and is called before the database commit that
refers to them, so a mail is never acknowledged on the server before its bytes are on disk.

A batch of 200 mails writes several hundred files, and one fsync after another costs a disk
flush each. `sync()` therefore issues them from a few threads at once (fsync releases the GIL),
which lets the filesystem commit them together; it still returns only when every one is done.
A directory is synced for the files renamed into it, and its parent only when it was created
since the last sync (an existing directory's own entry is already durable).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SYNC_THREADS = 16  # concurrent fsyncs; they wait on the disk, not the CPU


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._unsynced: list[Path] = []
        self._unsynced_dirs: set[Path] = set()

    def path_for(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes, sha256: str | None = None) -> str:
        """Store bytes (deduplicated by hash) and return their SHA-256 hex digest."""
        digest = sha256 or hashlib.sha256(data).hexdigest()
        target = self.path_for(digest)
        if target.exists():
            return digest
        self._make_parents(target.parent)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        self._unsynced.append(target)
        self._unsynced_dirs.add(target.parent)
        return digest

    def _make_parents(self, directory: Path) -> None:
        """Create `directory` and missing ancestors; each new one's parent must be synced."""
        if directory.is_dir():
            return
        missing = []
        current = directory
        while not current.is_dir():
            missing.append(current)
            current = current.parent
        for path in reversed(missing):
            path.mkdir(exist_ok=True)
            self._unsynced_dirs.add(path)
            self._unsynced_dirs.add(path.parent)

    def get(self, sha256: str) -> bytes:
        return self.path_for(sha256).read_bytes()

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).exists()

    def sync(self) -> None:
        """Make every file written since the last sync durable (file data and directory entries).

        On an error nothing is forgotten: the exception propagates (the caller's commit does not
        happen) and a later call syncs the same files again."""
        files, directories = list(self._unsynced), sorted(self._unsynced_dirs)
        if not files and not directories:
            return
        if len(files) + len(directories) <= 2:
            for path in [*files, *directories]:
                _fsync(path)
        else:
            with ThreadPoolExecutor(max_workers=SYNC_THREADS,
                                    thread_name_prefix="blob-sync") as pool:
                # File data first, then the directory entries that name the files.
                for future in [pool.submit(_fsync, path) for path in files]:
                    future.result()
                for future in [pool.submit(_fsync, path) for path in directories]:
                    future.result()
        self._unsynced.clear()
        self._unsynced_dirs.clear()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
