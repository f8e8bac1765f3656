"""Check a case dossier (see processor/export.py): every file against the manifest, and back.

A file listed in the manifest but absent is "missing"; a file in the ZIP the manifest does not
list is "added"; a file whose size or SHA-256 differs, or whose compressed data is damaged, is
"altered". The manifest itself is checked against `manifest.sha256`. Someone who alters a file
can also rewrite both manifests, so the manifest hash printed here should be compared with the
one recorded on the case ("exported" event) or sent separately by the exporting team.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from processor.errors import ComplaintsError
from processor.export import CHUNK, MANIFEST, MANIFEST_HASH


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str  # missing, added, altered, duplicate
    path: str
    detail: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    case: str
    exported_at: str
    exported_by: str
    software: str
    manifest_sha256: str
    files_checked: int
    problems: tuple[Problem, ...]

    @property
    def intact(self) -> bool:
        return not self.problems


def verify_dossier(path: Path) -> VerifyReport:
    if not path.is_file():
        raise ComplaintsError(f"no such file: {path}")
    try:
        bundle = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ComplaintsError(f"{path} is not a readable ZIP file ({exc})",
                              hint="is this the .zip written by `complaints case export`?") \
            from None
    with bundle:
        return _verify(bundle, path)


def _verify(bundle: zipfile.ZipFile, path: Path) -> VerifyReport:
    problems: list[Problem] = []
    names = [info.filename for info in bundle.infolist()]
    for name in sorted(n for n, count in Counter(names).items() if count > 1):
        problems.append(Problem("duplicate", name, "appears more than once in the ZIP"))
    if MANIFEST not in names:
        raise ComplaintsError(f"{path} has no {MANIFEST}: not a case dossier",
                              hint="only bundles written by `complaints case export` can be "
                                   "verified")
    try:
        manifest_bytes = bundle.read(MANIFEST)
    except (zipfile.BadZipFile, zlib.error, OSError) as exc:
        problems.append(Problem("altered", MANIFEST, f"damaged data ({exc})"))
        return _report({}, "", 0, problems)
    manifest_sha = hashlib.sha256(manifest_bytes).hexdigest()
    problems += _check_manifest_hash(bundle, names, manifest_sha)
    try:
        manifest = json.loads(manifest_bytes)
        files = manifest["files"]
        listed = {str(entry["path"]): entry for entry in files}
    except (ValueError, KeyError, TypeError) as exc:
        problems.append(Problem("altered", MANIFEST, f"not a readable manifest ({exc})"))
        return _report({}, manifest_sha, 0, problems)

    present = set(names)
    for name, entry in listed.items():
        if name not in present:
            problems.append(Problem("missing", name, "listed in the manifest, not in the ZIP"))
            continue
        problem = _check_file(bundle, name, entry)
        if problem:
            problems.append(problem)
    for name in sorted(present - set(listed) - {MANIFEST, MANIFEST_HASH}):
        problems.append(Problem("added", name, "in the ZIP, not listed in the manifest"))
    return _report(manifest, manifest_sha, len(listed), problems)


def _check_manifest_hash(bundle: zipfile.ZipFile, names: list[str],
                         manifest_sha: str) -> list[Problem]:
    if MANIFEST_HASH not in names:
        return [Problem("missing", MANIFEST_HASH, "the manifest's own hash is not in the ZIP")]
    try:
        recorded = bundle.read(MANIFEST_HASH).decode("ascii", "replace").split()
    except (zipfile.BadZipFile, zlib.error, OSError) as exc:
        return [Problem("altered", MANIFEST_HASH, f"damaged data ({exc})")]
    if recorded[:2] != [manifest_sha, MANIFEST]:
        return [Problem("altered", MANIFEST,
                        f"SHA-256 is {manifest_sha}, {MANIFEST_HASH} says "
                        f"{recorded[0] if recorded else 'nothing'}")]
    return []


def _check_file(bundle: zipfile.ZipFile, name: str, entry: dict[str, object]) -> Problem | None:
    digest = hashlib.sha256()
    size = 0
    try:
        with bundle.open(name) as source:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
        return Problem("altered", name, f"damaged data ({exc})")
    if digest.hexdigest() != entry.get("sha256"):
        return Problem("altered", name, f"SHA-256 is {digest.hexdigest()}, the manifest says "
                                        f"{entry.get('sha256')}")
    if size != entry.get("size"):
        return Problem("altered", name, f"{size} bytes, the manifest says {entry.get('size')}")
    return None


def _report(manifest: dict[str, object], manifest_sha: str, checked: int,
            problems: list[Problem]) -> VerifyReport:
    software = manifest.get("software")
    version = (f"{software.get('name')} {software.get('version')}"
               if isinstance(software, dict) else "?")
    return VerifyReport(str(manifest.get("case", "?")), str(manifest.get("exported_at", "?")),
                        str(manifest.get("exported_by", "?")), version, manifest_sha, checked,
                        tuple(problems))
