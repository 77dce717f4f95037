"""A customer's files (seed 004: equipment backups, site maps): upload, list, download, delete.

Staff only: a customer token gets 404 for all of it (a shop's backups of a customer's
alarm panel hold its codes; nothing here is meant for the portal).

An upload (`gateway.file_uploads`) is the file itself as the body (`Content-Disposition:
attachment; filename="..."`, RFC 6266, `filename*` for names beyond ASCII) or a
`multipart/form-data` form with one file part. It streams to a spooled temporary file
while hashed, with its own limit (`max_file_bytes`, 25 MB: `gateway.uploads`), is sniffed
(`gateway.file_types`), stored by SHA-256 (`infrastructure.file_contents`) and only then
recorded as an event (metadata only). A keyed retry is fingerprinted by the file's
SHA-256, name and declared type, not by rereading 25 MB, and names the same file. The
download streams the stored chunks one at a time, with the stored type, `nosniff`, and
the SHA-256 as its ETag.
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from urllib.parse import quote
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel

from domain.file_commands import file_id_for
from gateway.auth import STAFF, principal, requires
from gateway.commands import CHANGED_HEADERS, CREATED_HEADERS, answer, idempotency_of, service_of
from gateway.file_types import sniff, stored_type
from gateway.file_uploads import invalid, receive_upload
from gateway.keys import SERVICE_KEY, SETTINGS_KEY
from gateway.listing import PageQuery, fetch_page
from gateway.operations import Body, operation
from gateway.problems import Problem
from gateway.reads import read_pool
from gateway.requests import (
    idempotency_key,
    json_response,
    parse_query,
)
from gateway.schemas import CommandOut
from gateway.tabs import Tab, tab_customer
from gateway.threads import run_sync
from infrastructure.file_contents import FileContents, chunk_statement, content_statement
from projections.files import files_statement

__all__ = ["DEFAULT_MAX_FILE_BYTES", "add_routes"]

DEFAULT_MAX_FILE_BYTES = 25 * 1024 * 1024
_SPOOL_BYTES = 1 << 20
"""Uploads up to this size stay in memory; larger ones go to a temporary file."""
_WRITE_BYTES = 1 << 16
"""A download's writes: a 1 MB chunk goes out in slices, each awaited."""


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/v1/customers/{id}/files", upload_file)
    r.add_get("/v1/customers/{id}/files", list_files)
    r.add_get("/v1/customers/{id}/files/{file_id}", download_file, allow_head=False)
    r.add_delete("/v1/customers/{id}/files/{file_id}", delete_file)


# ---- shapes ------------------------------------------------------------------------------


class FileUploadedOut(CommandOut):
    """The new file's id and version (its ETag, for a delete's If-Match)."""

    size: int
    content_type: str
    """As sniffed from the content."""
    sha256: str


class FileItem(BaseModel):
    id: UUID
    customer_id: UUID
    name: str
    size: int
    content_type: str
    sha256: str
    uploaded_at: datetime
    uploader: str
    version: int
    """The file's version: `If-Match` of its delete."""


class FilePage(BaseModel):
    items: list[FileItem]
    next_cursor: str | None


class FilesQuery(PageQuery):
    """A page of a customer's files, newest first."""


UPLOAD_DESCRIPTION = """\
The body is the file itself, with `Content-Disposition: attachment; filename="..."`
(`filename*=UTF-8''...` for other names), or a `multipart/form-data` form with ONE part
that has a filename. At most 25 MB (`CUSTOMERS_MAX_FILE_BYTES`): 413 above, and nothing
is stored. The type is sniffed from the content and stored; the declared `Content-Type`
(the body's or the part's) must not contradict it (422 `content_type`); executables are
refused (415); an empty file or a missing filename is 422, and so is text holding what
looks like a full card number (`file`). The same bytes are stored once, however many files
use them. An unknown customer is 404; a deleted one (restore it first) or an erased one
takes no files (409), though a deleted customer's files stay listed and downloadable.
`If-Match` (optional) is the customer's version; `Idempotency-Key` works as for
any POST, fingerprinted by the file's SHA-256, name and declared type.
"""


# ---- handlers ----------------------------------------------------------------------------


@operation(
    "Upload a customer file",
    tag="files",
    description=UPLOAD_DESCRIPTION,
    request=Body(
        media_type="application/octet-stream",
        schema={"type": "string", "format": "binary"},
        variants={
            "multipart/form-data": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
            }
        },
    ),
    responses={201: FileUploadedOut},
    if_match="optional",
    response_headers=CREATED_HEADERS,
    errors=(409,),
)
@requires(*STAFF)
async def upload_file(request: web.Request) -> web.Response:
    tab = Tab.of(request, if_match="optional")
    customer_id, expected = tab.customer_id, tab.expected
    idempotency_key(request)  # a malformed key is refused before 25 MB are read
    service = service_of(request)
    # Before reading the body: 25 MB for an unknown or erased customer is not read at all.
    await run_sync(request, service.check_customer_takes_files, customer_id, expected)
    limit = getattr(request.app[SETTINGS_KEY], "max_file_bytes", DEFAULT_MAX_FILE_BYTES)
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as file:
        upload = await receive_upload(request, file, limit)
        if upload.received.size == 0:
            raise invalid("file", "the file is empty")
        sniffed = await run_sync(request, sniff, file)
        content_type = stored_type(upload.name, upload.declared, sniffed)
        fingerprint = f"{upload.received.sha256}\n{upload.name}\n{upload.declared or ''}"
        idempotency = await idempotency_of(request, content=fingerprint)
        file_id = file_id_for(idempotency)
        await run_sync(
            request,
            file_contents(request.app).put,
            file_id,
            customer_id,
            upload.received.sha256,
            upload.received.size,
            file,
        )
    receipt = await run_sync(
        request,
        service.upload_file,
        customer_id,
        file_id,
        name=upload.name,
        size=upload.received.size,
        content_type=content_type,
        sha256=upload.received.sha256,
        uploader=principal(request).sub,
        expected_version=expected,
        idempotency=idempotency,
    )
    return tab.created(receipt, f"files/{receipt.aggregate_id}", FileUploadedOut)


@operation(
    "A customer's files (read model)",
    tag="files",
    description="Newest first; name, size, sniffed type, SHA-256, uploader, upload time.",
    query=FilesQuery,
    responses={200: FilePage},
)
@requires(*STAFF)
async def list_files(request: web.Request) -> web.Response:
    customer_id = tab_customer(request)
    query = parse_query(request, FilesQuery)
    rows, next_cursor = await fetch_page(
        request, "files", files_statement, customer_id, query, key_column="uploaded_at"
    )
    return json_response(FilePage(items=[FileItem(**r) for r in rows], next_cursor=next_cursor))


@operation(
    "Download a customer file",
    tag="files",
    description="The content as uploaded, streamed, as an attachment with the stored type.",
    responses={
        200: Body(
            media_type="application/octet-stream",
            schema={"type": "string", "format": "binary"},
            description="The file's bytes; `ETag` is its SHA-256.",
        ),
        304: Body(description="`If-None-Match` names this content."),
    },
    response_headers=("ETag", "Content-Disposition"),
)
@requires(*STAFF)
async def download_file(request: web.Request) -> web.StreamResponse:
    tab = Tab.of(request, part="file_id")
    _, file_id = tab.ids
    file = await tab.get("get_file")
    tag = f'"{file.sha256}"'
    headers = {
        "ETag": tag,
        "Cache-Control": "private, no-cache",
        "X-Content-Type-Options": "nosniff",
    }
    if tag in (t.strip() for t in request.headers.get("If-None-Match", "").split(",")):
        return web.Response(status=304, headers=headers)
    schema = request.app[SETTINGS_KEY].db_schema
    pool = read_pool(request)
    async with pool.connection() as connection:
        found = await connection.execute(content_statement(schema), {"sha256": file.sha256})
        stored = await found.fetchone()
    if stored is None:  # only a sweep racing this request could have taken it
        raise Problem(404, f"The content of file {file_id} is gone.")
    response = web.StreamResponse(headers={**headers, "Content-Disposition": attachment(file.name)})
    response.content_type = file.content_type
    if file.content_type.startswith("text/"):
        response.charset = "utf-8"  # text is stored only when it is UTF-8 (file_types)
    response.content_length = file.size
    await response.prepare(request)
    for seq in range(stored["chunks"]):
        # A connection per chunk: a slow client holds a chunk of memory, not a connection.
        # Binary: the bytes as they are, not twice their size as bytea's hex text; the
        # cursor closes with its result before the chunk is sent.
        async with pool.connection() as connection, connection.cursor(binary=True) as cursor:
            await cursor.execute(chunk_statement(schema), {"sha256": file.sha256, "seq": seq})
            chunk = await cursor.fetchone()
        if chunk is None:
            # Collected mid-download: the headers are out, so all that is left is to cut
            # the body short, which the client sees against Content-Length.
            raise ConnectionResetError(f"content of file {file_id} went during its download")
        data = memoryview(chunk["data"])
        for start in range(0, len(data), _WRITE_BYTES):
            # Awaiting each write is the back-pressure: a slow client slows the reads, and
            # the socket's buffer holds a slice, not a second copy of the chunk.
            await response.write(data[start : start + _WRITE_BYTES])
    await response.write_eof()
    return response


@operation(
    "Delete a customer file",
    tag="files",
    description="Soft: the file is hidden and its content goes once no live file uses it.",
    responses={200: CommandOut},
    if_match="required",
    response_headers=CHANGED_HEADERS,
)
@requires(*STAFF)
async def delete_file(request: web.Request) -> web.Response:
    tab = Tab.of(request, part="file_id", if_match="required")
    receipt = await tab.run("delete_file", idempotent=False)
    # After the event: a crash in between leaves a reference that the sweep collects.
    _, file_id = tab.ids
    await run_sync(request, file_contents(request.app).release, [file_id])
    return answer(receipt)


# ---- helpers -----------------------------------------------------------------------------


def file_contents(app: web.Application) -> FileContents:
    """The content store, on the service's own connection pool."""
    service = app[SERVICE_KEY]
    return FileContents(
        service.recorder.datastore, app[SETTINGS_KEY].db_schema, service.recorder.events_table_name
    )


def attachment(name: str) -> str:
    """`Content-Disposition: attachment` naming the file safely: an ASCII `filename` (quotes,
    backslashes and anything else replaced) and the exact name as `filename*` (RFC 6266)."""
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\%' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
