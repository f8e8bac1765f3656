"""The evidence store: nothing visible under its final name before `sync`, then durable."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

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
