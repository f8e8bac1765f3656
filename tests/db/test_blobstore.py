"""The evidence store: nothing visible under its final name before `sync`, then durable."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import pytest

from processor import blobstore
from processor.blobstore import BlobStore


def test_staged_until_sync_then_in_place(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    digest = store.put(b"raw mail")
    assert digest == hashlib.sha256(b"raw mail").hexdigest()
    assert not store.path_for(digest).exists() and store.exists(digest)
    assert store.put(b"raw mail") == digest  # staged once
    store.sync()
    assert store.get(digest) == b"raw mail"
    assert not [p for p in tmp_path.rglob(".tmp-*")]


def test_discard_drops_a_rolled_back_batch_and_a_damaged_file_is_rewritten(
        tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    digest = store.put(b"never committed")
    store.discard()
    assert not store.exists(digest) and not list(tmp_path.rglob(".tmp-*"))
    good = store.put(b"evidence")
    store.sync()
    store.path_for(good).write_bytes(b"evi")  # truncated by something outside our protocol
    store.put(b"evidence")
    store.sync()
    assert store.get(good) == b"evidence"


def test_each_thread_syncs_and_discards_only_its_own(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    mine = store.put(b"mine")
    other_done = threading.Event()

    def other() -> None:
        store.put(b"theirs")
        store.discard()
        other_done.set()

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert other_done.is_set()
    store.sync()
    assert store.get(mine) == b"mine"


@pytest.mark.parametrize("files", [3, 40])  # synced file by file, and with syncfs(2)
def test_a_batch_is_in_place_whole_after_sync_however_it_is_synced(tmp_path: Path,
                                                                   files: int) -> None:
    store = BlobStore(tmp_path)
    contents = [f"mail {i}".encode() * (i + 1) for i in range(files)]
    digests = [store.put(data) for data in contents]
    assert not any(store.path_for(d).exists() for d in digests)
    store.sync()
    assert [store.get(d) for d in digests] == contents
    assert not list(tmp_path.rglob(".tmp-*"))
    store.sync()  # nothing staged: nothing to do


def test_new_files_are_flat_and_a_two_level_store_is_still_read(tmp_path: Path) -> None:
    fresh = BlobStore(tmp_path / "fresh")
    digest = fresh.put(b"flat")
    fresh.sync()
    assert (tmp_path / "fresh" / digest[:2] / digest).read_bytes() == b"flat"
    assert (tmp_path / "fresh" / "layout-flat").exists()

    older = tmp_path / "older"
    kept = hashlib.sha256(b"kept since last year").hexdigest()
    (older / kept[:2] / kept[2:4]).mkdir(parents=True)
    (older / kept[:2] / kept[2:4] / kept).write_bytes(b"kept since last year")
    store = BlobStore(older)
    assert store.get(kept) == b"kept since last year" and store.exists(kept)
    assert store.put(b"kept since last year") == kept  # known: not written again
    new = store.put(b"new")
    store.sync()
    assert store.path_for(new) == older / new[:2] / new
    assert not (older / kept[:2] / kept).exists() and not (older / "layout-flat").exists()


def test_leftovers_of_a_dead_process_are_swept_and_nothing_else(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    kept = store.put(b"committed evidence")
    store.sync()
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(store.path_for(kept), (two_days_ago, two_days_ago))  # old, but in place
    leftovers = [tmp_path / "ab" / ".tmp-4242-1-0", tmp_path / "ab" / "cd" / ".tmp-4242-1-1"]
    for leftover in leftovers:  # the flat layout, and the older two-level one
        leftover.parent.mkdir(parents=True, exist_ok=True)
        leftover.write_bytes(b"half a mail")
        os.utime(leftover, (two_days_ago, two_days_ago))
    another_worker = tmp_path / "ab" / ".tmp-5151-1-0"  # being written right now
    another_worker.write_bytes(b"a mail")
    staged = store.put(b"this batch, not yet synced")

    assert store.sweep_leftovers() == 2

    assert not any(leftover.exists() for leftover in leftovers)
    assert another_worker.exists()
    assert store.get(kept) == b"committed evidence"
    store.sync()
    assert store.get(staged) == b"this batch, not yet synced"
    assert BlobStore(tmp_path / "never-written").sweep_leftovers() == 0


def test_a_temporary_file_gone_while_sweeping_is_skipped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh temporary file renamed into place by a batch being filed, between the sweep's
    listing of its directory and its look at the file, must not stop the sweep. The race is
    injected (the listing is wrapped so the file goes right after it); the files are real."""
    store = BlobStore(tmp_path)
    two_days_ago = time.time() - 2 * 24 * 3600
    shard = tmp_path / "ab"
    shard.mkdir()
    renamed = shard / ".tmp-5151-1-0"
    renamed.write_bytes(b"a mail being filed")
    leftover = shard / ".tmp-4242-1-0"
    leftover.write_bytes(b"half a mail")
    os.utime(leftover, (two_days_ago, two_days_ago))
    real_scandir = os.scandir

    def listing_then_rename(path):  # type: ignore[no-untyped-def]
        entries = list(real_scandir(path))
        if Path(path) == shard and renamed.exists():
            assert renamed.name in [e.name for e in entries]
            os.replace(renamed, shard / ("ab" + "0" * 62))
        return iter(entries)

    monkeypatch.setattr(os, "scandir", listing_then_rename)
    assert store.sweep_leftovers() == 1
    assert not leftover.exists()
    assert (shard / ("ab" + "0" * 62)).read_bytes() == b"a mail being filed"


def test_a_file_adopted_while_another_worker_stored_the_same_bytes_ends_whole(
        tmp_path: Path) -> None:
    """adopt does not look on disk in the flat layout (processor.blobstore): the file another
    worker stored meanwhile is replaced by the same bytes, and no temporary file is left."""
    store = BlobStore(tmp_path)
    digest = hashlib.sha256(b"screenshot").hexdigest()
    staged = store.stage_detached((b"screen", b"shot"), digest, 10)
    again = store.stage_detached((b"screenshot",), digest, 10)  # the same bytes in another mail
    assert staged is not None and again is not None and again.path != staged.path
    other = BlobStore(tmp_path)  # another process, the same bytes, synced first
    other.put(b"screenshot")
    other.sync()
    store.adopt(staged)
    store.adopt(again)  # the second of a batch is dropped
    assert not os.path.exists(again.path)
    store.sync()
    assert store.get(staged.sha256) == b"screenshot"
    assert not list(tmp_path.rglob(".tmp-*"))


def test_a_two_level_store_still_drops_an_adopted_file_it_holds(tmp_path: Path) -> None:
    kept = hashlib.sha256(b"kept since last year").hexdigest()
    (tmp_path / kept[:2] / kept[2:4]).mkdir(parents=True)
    (tmp_path / kept[:2] / kept[2:4] / kept).write_bytes(b"kept since last year")
    worker = BlobStore(tmp_path)
    staged = worker.stage_detached((b"kept since last year",), kept, 20, check=False)
    assert staged is None  # the worker saw it
    fresh = hashlib.sha256(b"x").hexdigest()
    staged = worker.stage_detached((b"x",), fresh, 1)
    assert staged is not None
    store = BlobStore(tmp_path)
    (tmp_path / fresh[:2] / fresh[2:4]).mkdir(parents=True)
    (tmp_path / fresh[:2] / fresh[2:4] / fresh).write_bytes(b"x")  # stored meanwhile
    store.adopt(staged)
    store.sync()
    assert not (tmp_path / fresh[:2] / fresh).exists()  # no flat copy beside the old one
    assert not list(tmp_path.rglob(".tmp-*"))


class _DiskLog:
    """What reached the disk, in order: each syncfs (with the thread that called it, and
    whether it was called within `sync`) and each rename. The real calls are made."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple[str, str]] = []
        real_syncfs, real_replace = blobstore._syncfs, os.replace

        def syncfs(root: Path) -> bool:
            self.events.append(("syncfs", threading.current_thread().name))
            return real_syncfs(root)

        def replace(source: str, target: str) -> None:
            self.events.append(("rename", os.path.basename(target)))
            real_replace(source, target)

        monkeypatch.setattr(blobstore, "_syncfs", syncfs)
        monkeypatch.setattr(blobstore.os, "replace", replace)

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]


needs_syncfs = pytest.mark.skipif(blobstore._SYNCFS is None, reason="no syncfs(2) here")
BATCH_FILES = blobstore.SYNCFS_FROM_FILES + 4


def _stage_batch(store: BlobStore, label: str) -> list[str]:
    """Stage a batch large enough to be synced with syncfs; the digests of its files."""
    return [store.put(f"{label} {i}".encode()) for i in range(BATCH_FILES)]


@needs_syncfs
def test_data_synced_ahead_is_not_synced_again_and_lands_before_any_rename(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = BlobStore(tmp_path)
    digests = _stage_batch(store, "mail")
    disk = _DiskLog(monkeypatch)
    store.sync_ahead()
    store.sync()
    # One syncfs in the background for the data, then the renames, then one for them.
    assert disk.kinds() == ["syncfs"] + ["rename"] * BATCH_FILES + ["syncfs"]
    assert disk.events[0][1] == "blob-syncfs"
    assert disk.events[-1][1] == threading.current_thread().name
    assert [store.get(d) for d in digests] == [f"mail {i}".encode() for i in range(BATCH_FILES)]


@needs_syncfs
def test_a_file_staged_after_the_sync_ahead_has_its_data_synced_before_its_rename(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = BlobStore(tmp_path)
    _stage_batch(store, "mail")
    disk = _DiskLog(monkeypatch)
    store.sync_ahead()
    late = store.put(b"an acknowledgement composed after it started")
    store.sync()
    kinds = disk.kinds()
    # The data is synced again, in `sync`, before the first rename.
    assert kinds[:2] == ["syncfs", "syncfs"] and kinds.count("syncfs") == 3
    assert disk.events[1][1] == threading.current_thread().name
    assert kinds.index("rename") == 2 and ("rename", late) in disk.events
    assert store.get(late) == b"an acknowledgement composed after it started"


@needs_syncfs
def test_a_batch_discarded_after_its_sync_ahead_leaves_the_next_one_to_sync_its_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = BlobStore(tmp_path)
    _stage_batch(store, "rolled back")
    store.sync_ahead()
    store.discard()
    assert not list(tmp_path.rglob(".tmp-*"))
    disk = _DiskLog(monkeypatch)
    digests = _stage_batch(store, "filed again")
    store.sync()
    assert disk.kinds() == ["syncfs"] + ["rename"] * BATCH_FILES + ["syncfs"]
    assert disk.events[0][1] == threading.current_thread().name
    assert all(store.path_for(d).exists() for d in digests)


@needs_syncfs
def test_a_failed_sync_ahead_fails_the_batch_and_nothing_is_put_in_place(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # syncfs(2) failing (EIO after a lost writeback) cannot be made to happen on a healthy
    # disk: this stands in for it, in the background thread only.
    real_syncfs = blobstore._syncfs

    def failing_in_background(root: Path) -> bool:
        if threading.current_thread().name == "blob-syncfs":
            raise OSError(5, "syncfs: Input/output error")
        return real_syncfs(root)

    monkeypatch.setattr(blobstore, "_syncfs", failing_in_background)
    store = BlobStore(tmp_path)
    digests = _stage_batch(store, "mail")
    store.sync_ahead()
    with pytest.raises(OSError, match="Input/output error"):
        store.sync()  # not retried: after a lost writeback a second syncfs may lie
    assert not any(store.path_for(d).exists() for d in digests)
    store.discard()
    assert not list(tmp_path.rglob(".tmp-*"))
