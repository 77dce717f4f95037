"""Reading a customer file's upload: the file itself as the body, or a form's one file part.

A raw body names its file in `Content-Disposition: attachment; filename="..."` (RFC 6266;
`filename*=UTF-8''...` for names beyond ASCII, RFC 5987) and declares its type in
`Content-Type`. A `multipart/form-data` form (aiohttp's multipart reader) has exactly one
part, with a filename, and the part's `Content-Type`. Either way the content streams to
the given file through `gateway.uploads.receive`, with the route's own limit.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import IO

from aiohttp import BodyPartReader, web
from aiohttp.multipart import content_disposition_filename, parse_content_disposition

from gateway.problems import FieldError, Problem
from gateway.uploads import Received, body_chunks, part_chunks, receive

__all__ = ["Upload", "invalid", "receive_upload"]

_MULTIPART_OVERHEAD = 64 * 1024
"""What a form may add to its file (boundaries, part headers) before Content-Length alone
says it is too large."""
_TRANSFER_ENCODINGS = frozenset({"", "binary", "8bit", "7bit"})
_FORM_ESCAPES = (("%22", '"'), ("%0A", "\n"), ("%0D", "\r"))


@dataclass(frozen=True)
class Upload:
    name: str
    declared: str | None
    """The declared media type, lowercased, without parameters (None: nothing declared)."""
    received: Received


async def receive_upload(request: web.Request, file: IO[bytes], limit: int) -> Upload:
    """The upload's name, declared type and content (into `file`), raw or as a form; 413
    past `limit`, 415 for another multipart type, 422 without a name, 400 for a broken form."""
    kind = request.content_type
    if kind == "multipart/form-data":
        return await _receive_form(request, file, limit)
    if kind.startswith("multipart/"):
        raise Problem(
            415,
            "A form upload is multipart/form-data; any other body is the file itself.",
            headers={"Accept-Post": "multipart/form-data, */*"},
        )
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    name = _file_name(request.headers.get("Content-Disposition"))
    received = await receive(request, body_chunks(request), file, limit=limit, too_large=_too_large)
    return Upload(name, kind, received)


async def _receive_form(request: web.Request, file: IO[bytes], limit: int) -> Upload:
    if request.content_length is not None and request.content_length > limit + _MULTIPART_OVERHEAD:
        raise _too_large(limit)
    try:
        reader = await request.multipart()
        upload: Upload | None = None
        while True:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # aiohttp warns of a bad disposition header
                part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader) or not part.filename:
                raise invalid("file", "a form upload has one part: the file, with a filename")
            if upload is not None:
                raise invalid("file", "one file per upload")
            encoding = part.headers.get("Content-Transfer-Encoding", "").lower()
            if encoding not in _TRANSFER_ENCODINGS:
                raise invalid("file", f"no Content-Transfer-Encoding {encoding} in form data")
            received = await receive(
                request, part_chunks(part), file, limit=limit, too_large=_too_large
            )
            declared = part.headers.get("Content-Type")
            upload = Upload(_form_file_name(part.filename), _media_type(declared), received)
    except ValueError as error:  # a body that is not the multipart it says it is
        raise Problem(400, f"The form is malformed: {error}.", slug="malformed-body") from None
    if upload is None:
        raise invalid("file", "the form has no file part")
    return upload


def _file_name(disposition: str | None) -> str:
    if disposition:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # aiohttp warns of a bad disposition header
            _, params = parse_content_disposition(disposition)
        name = content_disposition_filename(params, "filename")
        if name:
            return _base_name(name)
    raise invalid(
        "filename", 'needed: Content-Disposition: attachment; filename="..." (or a form upload)'
    )


def _form_file_name(name: str) -> str:
    """A form part's filename as browsers encode it (HTML: `"`, LF and CR percent-encoded;
    the rest as UTF-8), without folders."""
    for escaped, character in _FORM_ESCAPES:
        name = name.replace(escaped, character)
    return _base_name(name)


def _base_name(name: str) -> str:
    """The name without a client's folders (some browsers send `C:\\Users\\...\\plan.pdf`)."""
    return name.replace("\\", "/").rsplit("/", 1)[-1].strip()


def _media_type(header: str | None) -> str | None:
    if not header:
        return None
    return header.split(";", 1)[0].strip().lower() or None


def invalid(field: str, message: str) -> Problem:
    return Problem(
        422,
        f"The upload is not valid: {message}.",
        errors=[FieldError(field=field, message=message)],
    )


def _too_large(limit: int) -> Problem:
    return Problem(413, f"The file is larger than the {limit:,} bytes a customer file may have.")
