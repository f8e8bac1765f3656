"""processor.composing on its own: what a worker process composes is byte for byte what this
process would, and what no worker has started when the batch needs it is composed here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from concurrent.futures import wait
from datetime import UTC, datetime
from pathlib import Path

import pytest

from processor.ack import AckRequest
from processor.blobstore import BlobStore
from processor.compose import ack_context
from processor.composing import (
    CHUNK_REQUESTS,
    Composed,
    ComposingElsewhere,
    NotComposed,
    compose,
)
from processor.mail import Address, parse_message
from processor.prepare import Preparer
from processor.render import TemplateRenderer
from tests.mailgen import make_mail
from tests.servers import REPO_ROOT

NOW = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)


def _request(index: int) -> AckRequest:
    original = parse_message(make_mail(index))
    assert original.from_ is not None
    return AckRequest(
        template="ack-default", language=original.language,
        context=ack_context(case_ref=f"C-{index:06d}", subject=original.subject,
                            category_label="Service", first_answer_by="2026-11-30 09:30",
                            sla_hours=48, missing=["times"]),
        case_ref=f"C-{index:06d}", tag_format="[{ref}]", original=original,
        from_address="complaints@example.com", to=original.from_,
        message_id=f"<ack-{index}.test@desk.example.com>", loop_header_name="X-Loop",
        loop_header_value="test-desk", date=NOW, max_subject_chars=120)


def _unbound(raw: bytes) -> bytes:
    boundaries = set(re.findall(rb'boundary="([^"]+)"', raw))
    assert boundaries
    for boundary in boundaries:
        raw = raw.replace(boundary, b"BOUNDARY")
    return raw


@pytest.fixture
def preparer():  # type: ignore[no-untyped-def]
    preparer = Preparer(1)
    yield preparer
    preparer.close()


def _finished(elsewhere: ComposingElsewhere, count: int) -> list[tuple[object, str | None]]:
    got: list[tuple[object, str | None]] = []
    for index in range(count):
        elsewhere.add(_request(index), lambda result, sha: got.append((result, sha)))
    return got


def test_a_worker_composes_what_this_process_would(tmp_path: Path, preparer: Preparer) -> None:
    renderer = TemplateRenderer.with_override(None)
    store = BlobStore(tmp_path / "blobs")
    elsewhere = ComposingElsewhere(preparer, renderer, store)
    got = _finished(elsewhere, CHUNK_REQUESTS)
    wait([future for _, future, _ in elsewhere._sent if future is not None])
    staged = list(store.root.rglob(".tmp-*"))
    assert len(staged) == CHUNK_REQUESTS
    assert all(f"-{os.getpid()}-" not in path.name for path in staged), \
        "the files were not written by the worker process"
    elsewhere.finish(None)  # type: ignore[arg-type]  # finishing reads no database
    here = [compose(_request(index), renderer, None) for index in range(CHUNK_REQUESTS)]
    # Alike but for the MIME boundaries, which are random.
    assert [(_unbound(r.raw), r.copy) for r, _ in got] == \
        [(_unbound(h.raw), h.copy) for h in here]  # type: ignore[union-attr]
    store.sync()
    for result, sha in got:
        assert isinstance(result, Composed) and sha is not None
        assert store.get(sha) == result.raw
        assert b"[C-0000" in result.raw and b"Auto-Submitted: auto-replied" in result.raw
    assert not list(store.root.rglob(".tmp-*"))


def test_what_no_worker_started_is_composed_here(tmp_path: Path, preparer: Preparer) -> None:
    renderer = TemplateRenderer.with_override(None)
    store = BlobStore(tmp_path / "blobs")
    busy = preparer.call(time.sleep, 5.0)  # the one worker process is busy
    elsewhere = ComposingElsewhere(preparer, renderer, store)
    # The first chunk goes to the pool behind the sleep; the second waits for room, and the
    # rest is not sent at all. Finishing composes all of them here: the first is taken back
    # from the pool rather than waited for.
    got = _finished(elsewhere, 2 * CHUNK_REQUESTS + 3)
    in_pool = elsewhere._sent[0][1]
    elsewhere.finish(None)  # type: ignore[arg-type]
    assert busy is not None and not busy.done(), "finishing waited for the busy worker"
    assert all(r.staged is None for r, _ in got)  # type: ignore[union-attr]
    assert all(isinstance(r, Composed) and s for r, s in got)
    store.sync()
    assert len({s for _, s in got}) == len(got)
    # The worker skips the chunk taken back: nothing composed twice, nothing left staged.
    assert in_pool is not None and in_pool.result(timeout=30) is None
    assert not list(store.root.rglob(".tmp-*"))


def test_a_chunk_a_worker_started_is_waited_for_not_composed_twice(
        tmp_path: Path, preparer: Preparer) -> None:
    renderer = TemplateRenderer.with_override(None)
    store = BlobStore(tmp_path / "blobs")
    elsewhere = ComposingElsewhere(preparer, renderer, store)
    got = _finished(elsewhere, CHUNK_REQUESTS)
    future, claim = elsewhere._sent[0][1:]
    assert future is not None and claim is not None
    future.result(timeout=30)  # the worker has composed it: it can no longer be taken back
    assert not claim.take()
    elsewhere.finish(None)  # type: ignore[arg-type]
    assert all(r.staged is not None for r, _ in got)  # type: ignore[union-attr]
    store.sync()
    assert not list(store.root.rglob(".tmp-*"))


def test_an_acknowledgement_that_cannot_be_composed_comes_back_as_such(
        tmp_path: Path, preparer: Preparer) -> None:
    broken = tmp_path / "templates"
    broken.mkdir()
    (broken / "ack-default.en.txt.j2").write_text("{{ no_such_variable }}\n")
    (broken / "ack-default.zh.txt.j2").write_text("{{ no_such_variable }}\n")
    renderer = TemplateRenderer([broken])
    elsewhere = ComposingElsewhere(preparer, renderer, BlobStore(tmp_path / "blobs"))
    got = _finished(elsewhere, CHUNK_REQUESTS)
    elsewhere.finish(None)  # type: ignore[arg-type]
    assert {(type(r), getattr(r, "error", None), s) for r, s in got} == \
        {(NotComposed, "TemplateError", None)}


def test_an_address_composing_refuses(tmp_path: Path) -> None:
    request = _request(1)
    bad = AckRequest(**{**{f: getattr(request, f) for f in request.__dataclass_fields__},
                        "to": Address("x", "not an address")})
    result = compose(bad, TemplateRenderer.with_override(None), None)
    assert isinstance(result, NotComposed) and result.error == "InvalidAddress"


def test_composing_in_a_worker_loads_nothing_of_the_database(tmp_path: Path) -> None:
    """A worker process imports processor.composing to compose; SQLAlchemy and the models
    cost it most of a second to load, for nothing it uses. A fresh interpreter stands for
    the worker: it imports composing (and with it processor.prepare, which the worker has
    preloaded), composes, and lists what it has loaded."""
    script = (
        "import sys\n"
        "from processor.composing import _compose_chunk\n"
        "from processor.render import TemplateRenderer\n"
        "from tests.acknowledge.test_composing import _request\n"
        "renderer = TemplateRenderer.with_override(None)\n"
        "results = _compose_chunk([_request(1)], tuple(map(str, renderer.directories)),\n"
        f"                         renderer.default_language, {str(tmp_path)!r})\n"
        "print(type(results[0]).__name__, sorted(m for m in sys.modules\n"
        "      if m.split('.')[0] == 'sqlalchemy' or m.startswith('processor.db')))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=60, check=True)
    assert done.stdout.split() == ["Composed", "[]"]
