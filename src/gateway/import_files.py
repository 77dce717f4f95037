"""Reading an uploaded customer file: its encoding, delimiter, header, and each row's fields.

Old systems export whatever they like, so the reader is liberal in what it takes and exact
about what it refuses:
  - encoding: a declared charset if given; else UTF-8 (with or without BOM), UTF-16 with a
    BOM, and anything that is not UTF-8 read as Windows-1252 (Excel's "CSV" on Windows),
    or Latin-1 for the few bytes 1252 leaves undefined. Binary content (NUL and control
    bytes: a spreadsheet, a zip, UTF-16 without BOM) is refused;
  - delimiter: comma, semicolon or tab, whichever the header row uses (Excel's `sep=;`
    first line is honoured); quoted fields may hold delimiters, quotes and newlines;
  - header: matched case-, space- and punctuation-insensitively against the registration
    fields and common aliases ("First Name", "E-mail", "Mobile", "Zip"...); other columns
    are kept as custom fields and reported as such.
Each row is then validated by the API's own `CustomerRegistration` model, so a row is
refused for exactly what `POST /v1/customers` would refuse, with the same messages; the
domain's rules (a valid phone number, a free email) follow when the row is registered.
A row whose cell count differs from the header's is invalid on its own: its cells
cannot be told apart, but the other rows are not wrong for it.

A cell or header that looks like a full card number refuses the whole file (422 naming
each row and column, `rows[7].Notes`, never the value): a row marked invalid would still
have been copied into the import's tables. Such rows are never handed on, so the rows
copied before the refusal are clean and roll back with the upload's transaction; the file
itself was only ever an unlinked temporary file of the request, gone with it.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from pydantic import ValidationError

from domain.card_numbers import looks_like_card_number
from gateway.problems import validation_problem
from gateway.schemas import CustomerRegistration
from infrastructure.imports import RowOutcome

__all__ = ["CardNumberInFileError", "Layout", "UnreadableFileError", "read_layout", "read_rows"]

_CHUNK = 1 << 20
_SAMPLE = 1 << 16
_CANDIDATES = (",", ";", "\t")
_FOREIGN_DELIMITERS = "|:^~!#/\\"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_SPREADSHEET_ESCAPE = re.compile(r"'(?=[=+\-@\t\r])")
_LIST_SPLIT = re.compile(r"[;,|]")
_MAX_HEADER = 100

_ADDRESS_PARTS = ("line1", "line2", "city", "region", "postal_code", "country")
_ALIASES: dict[str, tuple[str, ...]] = {
    "first_name": ("first", "firstname", "givenname", "forename", "christianname"),
    "last_name": ("last", "lastname", "surname", "familyname"),
    "full_name": ("name", "fullname", "customername", "contactname", "clientname"),
    "email": ("email", "emailaddress", "mail", "emailid"),
    "mobile_phone": ("mobile", "mobilephone", "mobilenumber", "cell", "cellphone", "cellular"),
    "phone": ("phone", "telephone", "tel", "phonenumber", "homephone", "workphone", "landline"),
    "company_name": ("company", "companyname", "organisation", "organization", "business"),
    "dba_name": ("dba", "doingbusinessas", "tradingas", "tradename"),
    "customer_number": ("customerid", "customerno", "customernumber", "custno", "clientid"),
    "birthday": ("birthdate", "dateofbirth", "dob"),
    "tax_id": ("vat", "vatnumber", "taxnumber", "vatid"),
    "group": ("customergroup", "category"),
    "address.line1": ("address", "street", "streetaddress", "address1", "addressline1"),
    "address.line2": ("address2", "addressline2", "line2"),
    "address.city": ("city", "town"),
    "address.region": ("state", "region", "province", "county"),
    "address.postal_code": ("zip", "zipcode", "postcode", "postalcode", "postal"),
    "address.country": ("country",),
}
_LIST_FIELDS = frozenset({"assigned_staff_ids", "notification_channels"})


class UnreadableFileError(Exception):
    """The file as a whole cannot be read as a customer list (answered with 422)."""

    def __init__(self, message: str, *, field: str = "file") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class CardNumberInFileError(UnreadableFileError):
    """Cells or headers look like full card numbers: the file is refused, naming them."""

    def __init__(self, fields: list[str]) -> None:
        super().__init__("it holds what look like full card numbers", field=fields[0])
        self.fields = fields


def _column(headers: list[str], position: int) -> str:
    """How a column is named in a refusal: its header, unless the header is a card number."""
    name = _header(headers[position]) if position < len(headers) else ""
    if not name or looks_like_card_number(name):
        return f"<column {position + 1}>"
    return name


def _card_cells(number: int, headers: list[str], cells: list[str]) -> list[str]:
    return [
        f"rows[{number}].{_column(headers, position)}"
        for position, cell in enumerate(cells)
        if looks_like_card_number(cell)
    ]


def _header(header: str) -> str:
    return header.strip().lstrip("\ufeff").strip()


def _key(header: str) -> str:
    """How headers are compared: case, accents, spaces and punctuation ignored."""
    decomposed = unicodedata.normalize("NFKD", header.casefold())
    return "".join(ch for ch in decomposed if ch.isalnum())


def _targets() -> dict[str, str]:
    targets: dict[str, str] = {}
    for name in CustomerRegistration.model_fields:
        if name != "addresses":
            targets[_key(name)] = name
    for target, aliases in _ALIASES.items():
        for alias in aliases:
            targets.setdefault(alias, target)
    for part in _ADDRESS_PARTS:
        targets.setdefault(_key(part), f"address.{part}")
    return targets


_TARGETS = _targets()


@dataclass(frozen=True)
class Layout:
    """How the file is read: its encoding, delimiter, and where each column goes."""

    encoding: str
    delimiter: str
    headers: list[str]
    targets: list[str]
    """Per column: a registration field, `address.<part>`, `full_name` or `custom`."""
    skip_first_line: bool = False

    def report(self) -> list[dict[str, str]]:
        """The header as understood, column by column, for the import's report."""
        return [
            {"header": _header(h), "read_as": "custom_fields" if t == "custom" else t}
            for h, t in zip(self.headers, self.targets, strict=True)
        ]


def read_layout(file: IO[bytes], declared_charset: str | None) -> Layout:
    """Find the encoding, the delimiter and the header's meaning; refuse what cannot be read."""
    encoding = _encoding(file, declared_charset)
    file.seek(0)
    text = io.TextIOWrapper(file, encoding=encoding, newline="")
    try:
        sample = text.read(_SAMPLE)
    finally:
        text.detach()
    if not sample.strip():
        raise UnreadableFileError("the file is empty")
    first_line = sample.splitlines()[0] if sample else ""
    skip = False
    if re.fullmatch(r"sep=.", first_line):
        delimiter, skip = first_line[-1], True
        sample = sample[len(first_line) :].lstrip("\r\n")
    else:
        delimiter = _delimiter(first_line)
    try:
        headers = next(csv.reader(io.StringIO(sample), delimiter=delimiter))
    except (csv.Error, StopIteration):
        raise UnreadableFileError("the file has no header row") from None
    cards = [
        f"header.{_column(headers, p)}"
        for p, header in enumerate(headers)
        if looks_like_card_number(header)
    ]
    if cards:
        raise CardNumberInFileError(cards)
    return Layout(encoding, delimiter, headers, _header_targets(headers, delimiter), skip)


def read_rows(
    file: IO[bytes],
    layout: Layout,
    *,
    defaults: dict[str, Any],
    encode: Callable[[dict[str, Any]], bytes],
) -> Iterator[RowOutcome]:
    """Each row, validated: pending with its encoded fields, or invalid with its errors.

    `row` is the row's number as a spreadsheet shows it (the header is row 1). Raises
    `UnreadableFileError` for broken CSV, or for a header with no rows under it.
    """
    file.seek(0)
    text = io.TextIOWrapper(file, encoding=layout.encoding, newline="")
    if layout.skip_first_line:
        text.readline()
    # Strict: a stray quote is a broken file, named by its line, not rows silently merged.
    reader = csv.reader(text, delimiter=layout.delimiter, strict=True)
    width = len(layout.headers)
    data_rows = 0
    cards: list[str] = []
    try:
        next(reader)  # the header
        for number, cells in enumerate(reader, start=2):
            if not any(cell.strip() for cell in cells):
                continue  # a blank line, as spreadsheets leave at the end
            data_rows += 1
            if found := _card_cells(number, layout.headers, cells):
                cards += found  # never handed on: refused with the file below
                continue
            if len(cells) > width and not any(c.strip() for c in cells[width:]):
                cells = cells[:width]  # trailing empty cells: a common export habit
            if len(cells) != width:
                message = f"the row has {len(cells)} cells but the header has {width} columns"
                yield RowOutcome(number, "invalid", errors=[{"field": None, "message": message}])
                continue
            yield _validated(number, _fields(layout, cells, defaults), encode)
    except csv.Error as error:
        raise UnreadableFileError(f"malformed CSV near line {reader.line_num}: {error}") from None
    except UnicodeDecodeError as error:
        raise UnreadableFileError(f"not valid {layout.encoding}: {error.reason}") from None
    finally:
        text.detach()
    if cards:
        raise CardNumberInFileError(cards)
    if data_rows == 0:
        raise UnreadableFileError("the file has a header but no rows")


# ---- the file --------------------------------------------------------------------------------


def _encoding(file: IO[bytes], declared: str | None) -> str:
    """The encoding to read with, after checking the whole file decodes and is text."""
    head = file.read(4)
    candidates: list[str]
    if declared:
        try:
            candidates = [codecs.lookup(declared).name]
        except LookupError:
            raise UnreadableFileError(f"unknown charset {declared!r}") from None
    elif head.startswith(codecs.BOM_UTF8):
        candidates = ["utf-8-sig"]
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = ["utf-16"]
    else:
        # Latin-1 decodes any byte: it is the last resort, never a refusal.
        candidates = ["utf-8", "cp1252", "latin-1"]
    for encoding in candidates:
        if _decodes(file, encoding, last=encoding == candidates[-1]):
            return "utf-8-sig" if encoding == "utf-8" else encoding
    raise UnreadableFileError(f"the file is not valid {candidates[0]}")


def _decodes(file: IO[bytes], encoding: str, *, last: bool) -> bool:
    file.seek(0)
    decoder = codecs.getincrementaldecoder(encoding)()
    line = 1
    while True:
        chunk = file.read(_CHUNK)
        try:
            text = decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError:
            if last:
                raise UnreadableFileError(f"the file is not valid {encoding} text") from None
            return False
        if (control := _CONTROL.search(text)) is not None:
            line += text.count("\n", 0, control.start())
            raise UnreadableFileError(
                f"the file holds binary data (byte {ord(control.group()):#04x} on line {line}):"
                " a CSV file is text, such as a spreadsheet saved as CSV (UTF-8)"
            )
        line += text.count("\n")
        if not chunk:
            return True


def _delimiter(first_line: str) -> str:
    unquoted = re.sub(r'"[^"]*"', "", first_line)
    counts = {d: unquoted.count(d) for d in _CANDIDATES}
    best = max(_CANDIDATES, key=lambda d: counts[d])
    return best if counts[best] else ","


def _header_targets(headers: list[str], delimiter: str) -> list[str]:
    if not any(h.strip() for h in headers):
        raise UnreadableFileError("the file has no header row: its first row is empty")
    targets: list[str] = []
    for position, header in enumerate(headers, start=1):
        name = _header(header)
        if len(name) > _MAX_HEADER:
            raise UnreadableFileError(f"column {position}'s header is over {_MAX_HEADER} letters")
        target = _TARGETS.get(_key(name), "custom")
        # The first column for a field wins; a second one keeps its values as custom fields.
        targets.append("custom" if target in targets else target)
    if "first_name" in targets or "full_name" in targets:
        return targets
    if len(headers) == 1 and (foreign := [c for c in _FOREIGN_DELIMITERS if c in headers[0]]):
        raise UnreadableFileError(
            f"unknown delimiter: the header row is not separated by commas, semicolons or tabs"
            f" (it holds {foreign[0]!r})"
        )
    if any("@" in h or sum(ch.isdigit() for ch in h) >= 3 for h in headers):
        raise UnreadableFileError(
            "the file has no header row: its first row looks like a customer; the first row"
            " must name the columns (First Name, Last Name, Email...)"
        )
    raise UnreadableFileError(
        "no column for first_name: name one First Name, first_name or Name", field="first_name"
    )


# ---- a row -----------------------------------------------------------------------------------


def _fields(layout: Layout, cells: list[str], defaults: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    address: dict[str, str] = {}
    address_headers: dict[str, str] = {}
    custom: dict[str, str] = {}
    columns = zip(layout.headers, layout.targets, cells, strict=True)
    for position, (header, target, cell) in enumerate(columns, start=1):
        # A leading quote is how an export keeps spreadsheets from running a cell as a
        # formula (ours does so): the value is what follows it.
        value = _SPREADSHEET_ESCAPE.sub("", cell.strip(), count=1)
        if not value:
            continue
        if target == "custom":
            custom[_header(header) or f"column {position}"] = value
        elif target.startswith("address."):
            address[target.removeprefix("address.")] = value
            address_headers[target.removeprefix("address.")] = _header(header)
        elif target == "full_name":
            first, _, last = value.rpartition(" ")
            data.setdefault("first_name", first or last)
            if first:
                data.setdefault("last_name", last)
        elif target in _LIST_FIELDS:
            data[target] = [v.strip() for v in _LIST_SPLIT.split(value) if v.strip()]
        else:
            data[target] = value
    if "line1" in address:
        data["addresses"] = [{"kind": "billing", **address}]
    else:
        # An address needs its street line: without one, the parts given are kept as
        # custom fields rather than lost or made up.
        custom.update({address_headers[part]: v for part, v in address.items()})
    if custom:
        data["custom_fields"] = custom
    return {**defaults, **data}


def _validated(
    number: int, data: dict[str, Any], encode: Callable[[dict[str, Any]], bytes]
) -> RowOutcome:
    try:
        registration = CustomerRegistration.model_validate(data)
    except ValidationError as error:
        errors = [e.model_dump() for e in validation_problem(error).errors]
        return RowOutcome(number, "invalid", errors=errors)
    return RowOutcome(number, "pending", fields=encode(registration.model_dump(exclude_none=True)))
