"""`POST /v1/customers/imports` and `GET /v1/customers/imports/{import_id}`: bulk import.

The upload is streamed to a temporary file while its SHA-256 is computed (`gateway.uploads`:
a 50 MB file is never held in memory, and the gateway's 1 MB body limit does not apply
here: this route has its own, `max_import_bytes`). The file's hash names the import:
uploading the same file again answers with the same import and creates nothing. A new
file is read and every row validated in the thread pool, then saved with its rows in one
transaction (`infrastructure.imports`); an import worker (`customers worker import`)
registers the rows and the report shows its progress. The worker, not the gateway, does
the slow part so a large import never competes with API requests for this process's CPU.
"""

from __future__ import annotations

import dataclasses
import tempfile
from datetime import datetime
from typing import IO, Annotated, Any, Literal
from uuid import UUID

from aiohttp import web
from aiohttp.multipart import parse_content_disposition
from pydantic import BaseModel, ConfigDict, Field

from domain.service import CustomerService
from gateway.auth import principal, requires
from gateway.card_refusal import card_number_problem
from gateway.commands import service_of
from gateway.import_files import (
    CardNumberInFileError,
    UnreadableFileError,
    read_layout,
    read_rows,
)
from gateway.keys import SETTINGS_KEY
from gateway.operations import Body, operation
from gateway.problems import FieldError, Problem
from gateway.requests import json_response, parse_query, path_uuid
from gateway.schemas import LikelyDuplicateOut
from gateway.threads import run_sync
from gateway.uploads import body_chunks, receive
from infrastructure.imports import ImportStore, ImportSummary, NewImport, import_id_of

__all__ = ["DEFAULT_MAX_IMPORT_BYTES", "add_routes"]

DEFAULT_MAX_IMPORT_BYTES = 50 * 1024 * 1024
CSV_TYPES = ("text/csv", "application/csv")
_IMPORT_DEFAULTS = {"source": "import"}
"""Where an imported customer's consents were given, unless the file says."""


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/customers/imports", upload_import)
    app.router.add_get("/v1/customers/imports/{import_id}", get_import)


class ImportOptions(BaseModel):
    """The query string of `POST /v1/customers/imports`."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    send_registration_email: bool = False
    """Send each imported customer the registration message (a column of that name in the
    file decides per row). Off by default: customers moved from an old system did not sign up."""


class ImportAccepted(BaseModel):
    import_id: UUID
    status: Literal["running", "done", "failed"]
    total_rows: int


class ImportReportQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    status: Literal["created", "duplicate", "invalid"] | None = None
    """Only the rows with this outcome."""
    limit: Annotated[int, Field(ge=0, le=10_000)] = 1000
    """Rows per page (0: the progress alone)."""
    cursor: Annotated[str, Field(pattern=r"^[0-9]{1,9}$")] | None = None
    """`next_cursor` of the previous page."""


class ImportRow(BaseModel):
    row: int
    """The row's number as a spreadsheet shows it: the header is row 1."""
    status: Literal["created", "duplicate", "invalid"]
    customer_id: UUID | None = None
    """The customer created, or for a duplicate the existing customer it matches."""
    errors: list[FieldError] | None = None
    """Why the row was not imported, naming the field (null for the row as a whole)."""
    likely_duplicates: list[LikelyDuplicateOut] | None = None
    """A created row's likely duplicates among the customers known when it was registered
    (as registration reports them); absent when they could not be looked up."""


class ImportCounts(BaseModel):
    created: int
    duplicate: int
    invalid: int
    pending: int
    """Rows not processed yet."""


class ImportColumn(BaseModel):
    header: str
    read_as: str
    """The registration field, `address.<part>` (the billing address), `full_name` (split
    into first and last name) or `custom_fields` (kept under the header's name)."""


class ImportReport(BaseModel):
    import_id: UUID
    status: Literal["running", "done", "failed"]
    counts: ImportCounts
    total_rows: int
    rows: list[ImportRow]
    next_cursor: str | None
    file_name: str | None
    encoding: str
    delimiter: str
    columns: list[ImportColumn]
    send_registration_email: bool
    created_by: str
    created_at: datetime
    finished_at: datetime | None
    error: str | None


UPLOAD_DESCRIPTION = """\
The body is the CSV file itself (`Content-Type: text/csv`, at most 50 MB; optionally with
`Content-Disposition: attachment; filename="..."`). UTF-8 with or without BOM, UTF-16 with
BOM, Windows-1252/Latin-1; comma, semicolon or tab delimited; the first row names the
columns, matched case-insensitively with common aliases ("First Name", "E-mail", "Mobile",
"Phone", "Company", "Customer ID", "Zip"...); other columns become custom fields.

Answers 202 with the import's id (also in `Location`); `GET` it for progress and the
per-row report. The same file uploaded again answers with the same import and creates
nothing (`Idempotent-Replayed: true`). A file that cannot be read at all (empty, binary,
no header, no first-name column, an unknown delimiter, broken quoting) answers 422 naming
`file` (or the missing column); rows that fail validation are reported per row instead.
A file with a cell that looks like a full card number is refused whole (422 naming each
`rows[<row>].<column>`): nothing of it is kept.
"""


@operation(
    "Import customers from a CSV file",
    tag="customers",
    description=UPLOAD_DESCRIPTION,
    request=Body(media_type="text/csv", schema={"type": "string"}),
    query=ImportOptions,
    responses={202: ImportAccepted},
    response_headers=("Location",),
)
@requires("admin", "staff", "service")
async def upload_import(request: web.Request) -> web.Response:
    options = parse_query(request, ImportOptions)
    charset = _require_csv(request)
    # Not every GatewaySettings has it (framework tests): the documented default then.
    limit = getattr(request.app[SETTINGS_KEY], "max_import_bytes", DEFAULT_MAX_IMPORT_BYTES)
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    service = service_of(request)
    store = import_store(request)
    with tempfile.TemporaryFile() as file:
        received = await receive(
            request, body_chunks(request), file, limit=limit, too_large=_too_large
        )
        sha256 = received.sha256
        import_id = import_id_of(sha256)
        summary = await run_sync(request, store.summary, import_id)
        replayed = summary is not None
        if summary is None:
            new = NewImport(
                import_id=import_id,
                sha256=sha256,
                created_by=principal(request).sub,
                file_name=_file_name(request),
                encoding="",
                delimiter="",
                columns=[],
                send_registration_email=options.send_registration_email,
            )
            summary = await run_sync(request, _save, service, store, file, new, charset)
        elif summary.status == "failed":
            await run_sync(request, store.restart, import_id)
    headers = {"Location": f"/v1/customers/imports/{import_id}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    body = ImportAccepted(import_id=import_id, status=summary.status, total_rows=summary.total_rows)
    return json_response(body, status=202, headers=headers)


@operation(
    "Get an import's progress and per-row report",
    tag="customers",
    query=ImportReportQuery,
    responses={200: ImportReport},
)
@requires("admin", "staff", "service")
async def get_import(request: web.Request) -> web.Response:
    import_id = path_uuid(request, "import_id")
    query = parse_query(request, ImportReportQuery)
    store = import_store(request)
    summary = await run_sync(request, store.summary, import_id)
    if summary is None:
        raise Problem(404, f"No import {import_id}.")
    after = int(query.cursor) if query.cursor else 0
    rows = await run_sync(
        request, store.rows, import_id, after=after, limit=query.limit + 1, status=query.status
    )
    page = rows[: query.limit]
    next_cursor = str(page[-1].row) if len(rows) > query.limit and page else None
    report = ImportReport(
        import_id=summary.import_id,
        status=summary.status,
        counts=ImportCounts(**summary.counts, pending=summary.pending),
        total_rows=summary.total_rows,
        rows=[ImportRow.model_validate(r, from_attributes=True) for r in page],
        next_cursor=next_cursor,
        file_name=summary.file_name,
        encoding=summary.encoding,
        delimiter=summary.delimiter,
        columns=[ImportColumn(**c) for c in summary.columns],
        send_registration_email=summary.send_registration_email,
        created_by=summary.created_by,
        created_at=summary.created_at,
        finished_at=summary.finished_at,
        error=summary.error,
    )
    body = report.model_dump(mode="json")
    # API.md: `customer_id` and `errors` appear on the rows they apply to.
    body["rows"] = [{k: v for k, v in row.items() if v is not None} for row in body["rows"]]
    return json_response(body)


def import_store(request: web.Request) -> ImportStore:
    service = service_of(request)
    return ImportStore(service.recorder.datastore, request.app[SETTINGS_KEY].db_schema)  # type: ignore[attr-defined]


def _save(
    service: CustomerService,
    store: ImportStore,
    file: IO[bytes],
    new: NewImport,
    charset: str | None,
) -> ImportSummary:
    """Read, validate and save the file (in a worker thread); the import's summary."""
    transcoder: Any = service.mapper.transcoder
    try:
        layout = read_layout(file, charset)
        defaults = {**_IMPORT_DEFAULTS, "send_registration_email": new.send_registration_email}
        rows = read_rows(file, layout, defaults=defaults, encode=transcoder.encode)
        described = dataclasses.replace(
            new, encoding=layout.encoding, delimiter=layout.delimiter, columns=layout.report()
        )
        store.create(described, rows)  # False: a twin upload won the race; its summary counts
    except CardNumberInFileError as error:
        raise card_number_problem(error.fields) from None
    except UnreadableFileError as error:
        raise Problem(
            422,
            f"The file cannot be imported: {error.message}.",
            slug="unreadable-file",
            errors=[FieldError(field=error.field, message=error.message)],
        ) from None
    summary = store.summary(new.import_id)
    assert summary is not None
    return summary


def _require_csv(request: web.Request) -> str | None:
    """The declared charset, if any; 415 unless the body is declared CSV."""
    if request.content_type not in CSV_TYPES:
        raise Problem(
            415,
            "Content-Type must be text/csv: the body is the CSV file itself.",
            headers={"Accept-Post": ", ".join(CSV_TYPES)},
        )
    return request.charset or None


def _file_name(request: web.Request) -> str | None:
    disposition = request.headers.get("Content-Disposition")
    if not disposition:
        return None
    _, params = parse_content_disposition(disposition)
    name = params.get("filename")
    return name[:255] if name else None


def _too_large(limit: int) -> Problem:
    return Problem(413, f"The file is larger than the {limit:,} bytes an import may have.")
