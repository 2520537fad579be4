"""Documents in a local folder: what ``agentstage ingest PATH`` and ``agentstage dev`` read.

Readers come from a ``readers.yaml`` sidecar at the folder's root, mapping a relative path or a glob to a
list of groups (``"policies/*.md": [hr]``, ``"*": ["*"]``); the first matching entry wins, so list
specific paths before broad globs. Hidden files and the sidecar itself are not documents.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import mimetypes
from collections.abc import AsyncIterator
from pathlib import Path

import yaml

from agent_runtime.knowledge.documents import DocumentTooLarge, SourceDocument, parse_readers

READERS_FILE = "readers.yaml"

log = logging.getLogger("agentstage.knowledge")


class ReadersFileError(ValueError):
    """The folder's readers file is not a mapping of paths to lists of group names."""


class FolderSource:
    """The files under ``root`` (recursively), named by their POSIX path relative to it."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise FileNotFoundError(f"{root}: no such folder of documents")
        self._rules = _load_rules(self.root / READERS_FILE)

    async def fetch(self, document_id: str, *, max_bytes: int) -> SourceDocument | None:
        return await asyncio.to_thread(self._fetch, document_id, max_bytes)

    async def version(self, document_id: str) -> str | None:
        path = self._path(document_id)
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        return f"{stat.st_size}-{stat.st_mtime_ns}"

    async def document_ids(self) -> AsyncIterator[str]:
        for document_id in await asyncio.to_thread(self._list):
            yield document_id

    async def close(self) -> None:
        """Nothing to release."""

    def _fetch(self, document_id: str, max_bytes: int) -> SourceDocument | None:
        path = self._path(document_id)
        try:
            stat = path.stat()
            if stat.st_size > max_bytes:
                raise DocumentTooLarge(f"{document_id}: {stat.st_size} bytes, over the limit of {max_bytes}")
            content = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            return None
        return SourceDocument(
            id=document_id,
            uri=path.as_uri(),
            content=content,
            media_type=mimetypes.guess_type(path.name)[0],
            version=f"{stat.st_size}-{stat.st_mtime_ns}",
            readers=self._readers(document_id),
        )

    def _list(self) -> list[str]:
        return sorted(
            path.relative_to(self.root).as_posix()
            for path in self.root.rglob("*")
            if path.is_file()
            and not any(part.startswith(".") for part in path.relative_to(self.root).parts)
            and path.relative_to(self.root).as_posix() != READERS_FILE
            and self._inside(path.relative_to(self.root).as_posix())
        )

    def _inside(self, document_id: str) -> bool:
        """Whether the document resolves inside the folder. One that does not (a link to a file elsewhere)
        is logged and left out: reading it would leak that file, and refusing it must not stop the sync."""
        try:
            self._path(document_id)
        except ValueError as error:
            log.warning("%s: not ingested", error)
            return False
        return True

    def _path(self, document_id: str) -> Path:
        path = (self.root / document_id).resolve()
        if not path.is_relative_to(self.root):  # an event naming ../../etc/passwd reads nothing
            raise ValueError(f"{document_id!r} resolves to {path}, outside the documents folder {self.root}")
        return path

    def _readers(self, document_id: str) -> frozenset[str] | None:
        for pattern, readers in self._rules:
            if document_id == pattern or fnmatch.fnmatchcase(document_id, pattern):
                return readers
        return None


def _load_rules(path: Path) -> list[tuple[str, frozenset[str]]]:
    if not path.exists():
        return []
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ReadersFileError(f"{path}: not valid YAML ({error})") from error
    if not isinstance(data, dict):
        raise ReadersFileError(f"{path}: expected a mapping of path or glob -> list of groups")
    rules = []
    for pattern, readers in data.items():
        if not isinstance(pattern, str) or not (
            isinstance(readers, list) and all(isinstance(reader, str) for reader in readers)
        ):
            raise ReadersFileError(
                f"{path}: entry {pattern!r} must map a path or glob to a list of group names, e.g. "
                f'"policies/*.md": [hr, "*"]'
            )
        rules.append((pattern, parse_readers(readers) or frozenset()))
    return rules
