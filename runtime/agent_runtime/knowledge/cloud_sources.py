"""Documents in the cloud: a Blob Storage container (Azure) or an S3 bucket prefix (AWS).

Both are read with the runtime's identity (a managed identity's Storage Blob Data Reader on the container;
the role's ``s3:GetObject``, ``s3:GetObjectTagging`` and ``s3:ListBucket``), never with keys. Readers
come from blob metadata ``readers`` or the S3 object tag ``readers`` (see
:func:`~agent_runtime.knowledge.documents.parse_readers`). S3 tag values allow neither commas nor ``*``:
separate readers with spaces there, and write :data:`S3_EVERYONE` for every caller. The size limit is checked from the object's properties before its content is downloaded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from agent_runtime.knowledge.base import EVERYONE
from agent_runtime.knowledge.documents import (
    READERS_KEY,
    DocumentTooLarge,
    SourceDocument,
    parse_readers,
)
from agent_runtime.memory.common import CloseOnce

if TYPE_CHECKING:
    from azure.storage.blob.aio import ContainerClient


class BlobSource:
    """The blobs of one container, named by blob name."""

    def __init__(self, container: ContainerClient, close_credential: Any = None) -> None:
        self._container = container
        self._credential = close_credential
        self.close = CloseOnce(self._release)

    @classmethod
    def from_url(cls, container_url: str, credential: Any) -> BlobSource:
        """``https://<account>.blob.core.windows.net/<container>`` reached with ``credential`` (a token
        credential in the cloud; Azurite's account key in tests). An async credential is closed with it."""
        from azure.storage.blob.aio import ContainerClient

        closes = credential if hasattr(credential, "close") else None
        return cls(ContainerClient.from_container_url(container_url, credential=credential), closes)

    async def fetch(self, document_id: str, *, max_bytes: int) -> SourceDocument | None:
        from azure.core.exceptions import ResourceNotFoundError

        blob = self._container.get_blob_client(document_id)
        try:
            properties = await blob.get_blob_properties()
            if properties.size > max_bytes:
                raise DocumentTooLarge(
                    f"{document_id}: {properties.size} bytes, over the limit of {max_bytes}"
                )
            # Download the version whose properties were read, so metadata and content agree.
            stream = await blob.download_blob(etag=properties.etag, match_condition=_if_match())
            content = await stream.readall()
        except ResourceNotFoundError:
            return None
        return SourceDocument(
            id=document_id,
            uri=blob.url,
            content=content,
            media_type=properties.content_settings.content_type,
            version=properties.etag,
            readers=parse_readers((properties.metadata or {}).get(READERS_KEY)),
        )

    async def version(self, document_id: str) -> str | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            properties = await self._container.get_blob_client(document_id).get_blob_properties()
        except ResourceNotFoundError:
            return None
        return str(properties.etag)

    async def document_ids(self) -> AsyncIterator[str]:
        async for name in self._container.list_blob_names():
            yield name

    async def _release(self) -> None:
        await self._container.close()
        if self._credential is not None:
            await self._credential.close()


def _if_match() -> Any:
    from azure.core import MatchConditions

    return MatchConditions.IfNotModified


S3_EVERYONE = "@all"
"""How an S3 tag says "every authenticated caller" (S3 refuses ``*`` in tag values)."""


class S3Source:
    """The objects under ``s3://bucket/prefix``, named by their key relative to the prefix.

    A prefix is a folder: ``docs`` means ``docs/``, so that it does not also take ``docs-internal/`` or
    ``docsecret.md``, and ``docs/handbook.md`` is named ``handbook.md``.

    boto3 is synchronous: calls run in a thread, on one client (boto3 clients are thread-safe).
    """

    def __init__(
        self, bucket: str, prefix: str = "", *, client: Any = None, region: str | None = None
    ) -> None:
        import boto3

        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self._client = client or boto3.client("s3", region_name=region)
        self.close = CloseOnce(self._release)

    @classmethod
    def from_url(cls, url: str, *, region: str | None = None) -> S3Source:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"{url!r} is not an S3 URL: expected s3://<bucket>[/<prefix>]")
        return cls(parts.netloc, parts.path.lstrip("/"), region=region)

    def key_of(self, document_id: str) -> str:
        return self.prefix + document_id

    def document_id_of(self, key: str) -> str | None:
        """The document a bucket key names, or ``None`` when it lies outside this source's prefix."""
        return key[len(self.prefix) :] if key.startswith(self.prefix) and key != self.prefix else None

    async def fetch(self, document_id: str, *, max_bytes: int) -> SourceDocument | None:
        return await asyncio.to_thread(self._fetch, document_id, max_bytes)

    async def version(self, document_id: str) -> str | None:
        head = await asyncio.to_thread(self._head, document_id)
        return None if head is None else str(head["ETag"])

    async def document_ids(self) -> AsyncIterator[str]:
        for document_id in await asyncio.to_thread(self._list):
            yield document_id

    def _fetch(self, document_id: str, max_bytes: int) -> SourceDocument | None:
        head = self._head(document_id)
        if head is None:
            return None
        if head["ContentLength"] > max_bytes:
            raise DocumentTooLarge(
                f"{document_id}: {head['ContentLength']} bytes, over the limit of {max_bytes}"
            )
        key = self.key_of(document_id)
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=key, IfMatch=head["ETag"])
            tags = self._client.get_object_tagging(Bucket=self.bucket, Key=key)["TagSet"]
        except self._client.exceptions.NoSuchKey:
            return None
        tagged = next((tag["Value"] for tag in tags if tag["Key"] == READERS_KEY), None)
        readers = parse_readers(tagged)
        if readers is not None and S3_EVERYONE in readers:
            readers = (readers - {S3_EVERYONE}) | {EVERYONE}
        return SourceDocument(
            id=document_id,
            uri=f"s3://{self.bucket}/{quote(key)}",
            content=response["Body"].read(),
            media_type=head.get("ContentType"),
            version=str(head["ETag"]),
            readers=readers,
        )

    def _head(self, document_id: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return dict(self._client.head_object(Bucket=self.bucket, Key=self.key_of(document_id)))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def _list(self) -> list[str]:
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        ids = (self.document_id_of(item["Key"]) for page in pages for item in page.get("Contents", []))
        return [document_id for document_id in ids if document_id and not document_id.endswith("/")]

    async def _release(self) -> None:
        await asyncio.to_thread(self._client.close)
