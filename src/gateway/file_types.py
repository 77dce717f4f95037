"""What an uploaded file is: its type sniffed from its bytes, and which uploads are refused.

The type stored (and sent back on download) is never the client's word:
  - the first bytes are matched against the `filetype` library's signatures (PDF, images,
    archives, office documents, audio, video...): that type is stored;
  - otherwise content that is UTF-8 text (no NUL or control bytes besides tab, newline,
    carriage return and form feed) is `text/plain`, or the text type the client declared
    if it is one of `TEXT_TYPES` (a CSV stays `text/csv`);
  - anything else is `application/octet-stream` (a device backup in a vendor's format).

The client's declared type (the body's or the part's `Content-Type`;
`application/octet-stream`, curl's default form type, or none declares nothing) must not
contradict the content: declaring a type the signatures know (`image/png`) for content
that is not it, a text type for binary content, or a binary type for text, answers 422
naming `content_type`. A zip declared as an office document (or the other way) agrees:
those are zips.

Refused with 415: executables, by content (Windows PE, ELF) or by a name Windows runs on a
double click (`.exe`, `.bat`, `.ps1`, `.js`...): a customer's file is downloaded by staff,
and a shop has no reason to keep programs here. Refused with 422 naming `file`: text that
holds what looks like a full payment card number (`domain.card_numbers`): such a number must
never be stored, and a file is no way around that. Binary content is opaque: it is not
searched (a zip or an image may hold anything, and a scan of decoded formats would be
guesswork).
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from typing import IO

import filetype

from domain.card_numbers import looks_like_card_number
from gateway.problems import FieldError, Problem

__all__ = ["DENIED_EXTENSIONS", "TEXT_TYPES", "Sniffed", "sniff", "stored_type"]

TEXT_TYPES = frozenset(
    {
        "text/plain",
        "text/csv",
        "text/tab-separated-values",
        "text/markdown",
        "text/xml",
        "application/xml",
        "application/json",
        "application/x-ndjson",
        "text/calendar",
        "text/vcard",
    }
)
"""Text types a client may declare and have kept (anything else that is text is text/plain)."""

DENIED_EXTENSIONS = frozenset(
    {".exe", ".dll", ".com", ".scr", ".pif", ".cpl", ".msi", ".msp", ".bat", ".cmd", ".ps1"}
    | {".psm1", ".vbs", ".vbe", ".js", ".jse", ".wsf", ".wsh", ".hta", ".lnk", ".reg"}
)
_DENIED_TYPES = frozenset(
    {
        "application/x-msdownload",
        "application/vnd.microsoft.portable-executable",
        "application/x-dosexec",
        "application/x-executable",
        "application/x-sharedlib",
        "application/x-mach-binary",
    }
)
_KNOWN_TYPES = frozenset(kind.mime for kind in filetype.types)
_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png",
    "application/x-pdf": "application/pdf",
    "application/x-zip-compressed": "application/zip",
    "application/x-gzip": "application/gzip",
    "audio/wav": "audio/x-wav",
    "audio/wave": "audio/x-wav",
    "audio/mp3": "audio/mpeg",
    "audio/flac": "audio/x-flac",
    "image/x-ms-bmp": "image/bmp",
    "application/x-bzip": "application/x-bzip2",
    "application/vnd.rar": "application/x-rar-compressed",
}
_ZIPS = frozenset(
    {
        "application/zip",
        "application/epub+zip",
        "application/java-archive",
        "application/vnd.android.package-archive",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.oasis.opendocument.spreadsheet",
        "application/vnd.oasis.opendocument.presentation",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    }
)
_NO_CLAIM = frozenset(
    {"", "application/octet-stream", "binary/octet-stream", "application/x-www-form-urlencoded"}
)
"""Types that say nothing about a file: curl's `--data-binary` sends the last one."""
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_HEAD_BYTES = 8192
_CHUNK = 1 << 20
_OVERLAP = 64
"""Text kept from a chunk's end for the next: a card number split across chunks is found."""


@dataclass(frozen=True)
class Sniffed:
    """What the content itself says."""

    signature: str | None
    """The type its first bytes match, if any."""
    text: bool
    """UTF-8 text, without control bytes."""
    card_number: bool
    """Text holding what looks like a full card number."""


def sniff(file: IO[bytes]) -> Sniffed:
    """Read the file (from its start, one chunk at a time) and say what it is."""
    file.seek(0)
    head = file.read(_HEAD_BYTES)
    kind = filetype.guess(head)
    if kind is not None:
        return Sniffed(kind.mime, text=False, card_number=False)
    file.seek(0)
    decoder = codecs.getincrementaldecoder("utf-8")()
    tail = ""
    card_number = False
    while True:
        chunk = file.read(_CHUNK)
        try:
            text = decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError:
            return Sniffed(None, text=False, card_number=False)
        if _CONTROL.search(text):
            return Sniffed(None, text=False, card_number=False)
        card_number = card_number or looks_like_card_number(tail + text)
        tail = (tail + text)[-_OVERLAP:]
        if not chunk:
            return Sniffed(None, text=True, card_number=card_number)


def stored_type(name: str, declared: str | None, sniffed: Sniffed) -> str:
    """The type to store for a file of this name and declared type: 415 for what is
    refused, 422 for a declared type the content contradicts or a card number in text."""
    if any(name.lower().endswith(extension) for extension in DENIED_EXTENSIONS):
        raise _refused(f"files named *{name[name.rfind('.') :]} are programs")
    claim = _ALIASES.get(declared or "", declared or "")
    if claim in _NO_CLAIM:
        claim = ""
    if sniffed.signature is not None:
        if sniffed.signature in _DENIED_TYPES:
            raise _refused(f"the content is a program ({sniffed.signature})")
        if claim and not _agree(claim, sniffed.signature):
            raise _contradicted(claim, sniffed.signature)
        return sniffed.signature
    if sniffed.text:
        if claim in _KNOWN_TYPES:
            raise _contradicted(claim, "text")
        if sniffed.card_number:
            raise Problem(
                422,
                "The file holds what looks like a full payment card number: it is not stored.",
                slug="card-number",
                errors=[FieldError(field="file", message="looks like a full card number")],
            )
        return claim if claim in TEXT_TYPES else "text/plain"
    if claim in _KNOWN_TYPES or claim in TEXT_TYPES or claim.startswith("text/"):
        raise _contradicted(claim, "unrecognised binary data")
    return "application/octet-stream"


def _agree(claim: str, signature: str) -> bool:
    return claim == signature or (claim in _ZIPS and signature in _ZIPS)


def _refused(why: str) -> Problem:
    return Problem(415, f"This file is not accepted: {why}.", slug="file-type-refused")


def _contradicted(claim: str, found: str) -> Problem:
    message = f"declared {claim}, but the content is {found}"
    return Problem(
        422,
        f"The file's declared type does not match its content: {message}.",
        slug="content-type-mismatch",
        errors=[FieldError(field="content_type", message=message)],
    )
