"""Reading uploaded customer files: encodings, delimiters, headers, rows, and every refusal."""

from __future__ import annotations

import codecs
import io
from typing import Any

import orjson
import pytest

from gateway.import_files import Layout, UnreadableFileError, read_layout, read_rows
from infrastructure.imports import RowOutcome


def _encode(fields: dict[str, Any]) -> bytes:
    return orjson.dumps(fields, default=str)


def _read(content: bytes, charset: str | None = None) -> tuple[Layout, list[RowOutcome]]:
    file = io.BytesIO(content)
    layout = read_layout(file, charset)
    rows = list(read_rows(file, layout, defaults={"source": "import"}, encode=_encode))
    return layout, rows


def _fields(row: RowOutcome) -> dict[str, Any]:
    assert row.status == "pending", row.errors
    assert row.fields is not None
    fields: dict[str, Any] = orjson.loads(row.fields)
    return fields


def _refusal(content: bytes, charset: str | None = None) -> UnreadableFileError:
    with pytest.raises(UnreadableFileError) as refused:
        _read(content, charset)
    return refused.value


def test_headers_are_matched_by_alias_whatever_their_case_and_punctuation() -> None:
    """Headers like "First Name", "E-MAIL", "Mobile", "Customer ID", "Zip" find their fields."""
    content = (
        b"First Name,SURNAME,E-MAIL,Mobile,Company,Customer ID,Street,City,Zip,Phone\n"
        b"Ada,Lovelace,ada@example.com,(415) 555-2671,Engines,42,12 St James Sq,London,SW1,020\n"
    )
    layout, [row] = _read(content)
    fields = _fields(row)
    assert fields["first_name"] == "Ada" and fields["last_name"] == "Lovelace"
    assert fields["email"] == "ada@example.com"
    assert fields["mobile_phone"] == "(415) 555-2671" and fields["phone"] == "020"
    assert fields["company_name"] == "Engines" and fields["customer_number"] == 42
    assert fields["addresses"] == [
        {"kind": "billing", "line1": "12 St James Sq", "city": "London", "postal_code": "SW1"}
    ]
    assert fields["source"] == "import"
    assert row.row == 2  # the header is row 1, as a spreadsheet numbers them
    assert {"header": "Zip", "read_as": "address.postal_code"} in layout.report()


def test_unknown_columns_are_kept_as_custom_fields_and_reported() -> None:
    """A column no field knows keeps its cells under its header, and the report says so."""
    layout, [row] = _read(b"first_name,Loyalty Tier,Notes\nAda,gold,\n")
    assert _fields(row)["custom_fields"] == {"Loyalty Tier": "gold"}
    assert layout.report()[1:] == [
        {"header": "Loyalty Tier", "read_as": "custom_fields"},
        {"header": "Notes", "read_as": "custom_fields"},
    ]


def test_utf8_with_a_byte_order_mark_reads_its_first_header() -> None:
    """Excel's "CSV UTF-8" starts with a BOM: the first header is still "First Name"."""
    layout, [row] = _read(codecs.BOM_UTF8 + "First Name,Last Name\nZoë,Ørsted\n".encode())
    assert layout.targets[0] == "first_name"
    assert _fields(row)["last_name"] == "Ørsted"


@pytest.mark.parametrize(("encoding", "expected"), [("cp1252", "cp1252"), ("latin-1", "latin-1")])
def test_a_file_that_is_not_utf8_is_read_as_windows_1252_or_latin1(
    encoding: str, expected: str
) -> None:
    """Bytes that are not UTF-8 fall back to Windows-1252, and Latin-1 where 1252 has gaps."""
    text = "first_name;last_name\nZoë;Müller\n"
    if encoding == "latin-1":
        text += "José;\x81\n"  # 0x81 is undefined in Windows-1252
    layout, rows = _read(text.encode(encoding))
    assert layout.encoding == expected
    assert _fields(rows[0])["first_name"] == "Zoë"
    assert _fields(rows[0])["last_name"] == "Müller"


def test_utf16_with_a_byte_order_mark_is_read() -> None:
    """Excel's "Unicode text" is UTF-16 with a BOM."""
    _, [row] = _read("first_name\tcity\nAda\tLondon\n".encode("utf-16"))
    assert _fields(row)["first_name"] == "Ada"


def test_semicolons_and_quoted_fields_with_delimiters_quotes_and_newlines() -> None:
    """European Excel writes semicolons; quoted cells may hold ; "" and line breaks."""
    content = b'first_name;company;Remarks\n"Ada";"Engines; Ltd";"line one\nline ""two"""\nBob;;\n'
    layout, rows = _read(content)
    assert layout.delimiter == ";"
    first = _fields(rows[0])
    assert first["company_name"] == "Engines; Ltd"
    assert first["custom_fields"] == {"Remarks": 'line one\nline "two"'}
    assert rows[1].row == 3 and _fields(rows[1])["first_name"] == "Bob"


def test_an_excel_sep_line_names_the_delimiter() -> None:
    """A first line `sep=;` is Excel's way to say the delimiter; it is not the header."""
    layout, [row] = _read(b"sep=;\nfirst_name;email\nAda;ada@example.com\n")
    assert layout.delimiter == ";" and _fields(row)["email"] == "ada@example.com"


def test_a_full_name_column_is_split_into_first_and_last_name() -> None:
    """ "Name" gives the last word as last name and the rest as first name."""
    _, rows = _read(b"Name\nMary Ann Smith\nCher\n")
    assert _fields(rows[0])["first_name"] == "Mary Ann"
    assert _fields(rows[0])["last_name"] == "Smith"
    assert "last_name" not in _fields(rows[1])


def test_a_cell_escaped_against_spreadsheet_formulas_is_read_without_its_quote() -> None:
    """Our export writes '+1415... and '=x; reading them back gives the values."""
    _, [row] = _read(b"first_name,mobile,Formula\nAda,'+14155552671,'=1+1\n")
    fields = _fields(row)
    assert fields["mobile_phone"] == "+14155552671"
    assert fields["custom_fields"] == {"Formula": "=1+1"}


def test_address_parts_without_a_street_are_kept_as_custom_fields() -> None:
    """An address needs its street line; a city alone is kept, not made into an address."""
    _, [row] = _read(b"first_name,City,Zip\nAda,London,SW1\n")
    fields = _fields(row)
    assert not fields["addresses"]
    assert fields["custom_fields"] == {"City": "London", "Zip": "SW1"}


def test_invalid_cells_make_the_row_invalid_with_errors_naming_the_field() -> None:
    """The API's own registration model judges each row, and names the field it refuses."""
    _, rows = _read(b"first_name,customer_number,birthday,discount_percent\n,abc,31/12/1990,150\n")
    [row] = rows
    assert row.status == "invalid" and row.fields is None
    fields = {e["field"] for e in row.errors or []}
    assert fields == {"first_name", "customer_number", "birthday", "discount_percent"}


def test_ragged_rows_are_invalid_on_their_own_and_trailing_empty_cells_are_not() -> None:
    """A row with more or fewer cells than the header is reported; the others import."""
    _, rows = _read(b"first_name,last_name\nAda,Lovelace\nBob\nCarl,C,extra\nDan,D,,\n")
    assert [r.status for r in rows] == ["pending", "invalid", "invalid", "pending"]
    assert rows[1].errors == [
        {"field": None, "message": "the row has 1 cells but the header has 2 columns"}
    ]
    assert rows[2].row == 4


def test_blank_lines_are_skipped_but_keep_the_row_numbers() -> None:
    """Blank lines are not rows to import; the next row keeps its spreadsheet number."""
    _, rows = _read(b"first_name\nAda\n\n,\nBob\n\n")
    assert [r.row for r in rows] == [2, 5]


@pytest.mark.parametrize("content", [b"", b"   \n\n", codecs.BOM_UTF8])
def test_an_empty_file_is_refused(content: bytes) -> None:
    """Nothing to import is a mistake worth saying."""
    assert _refusal(content).message == "the file is empty"


def test_a_header_without_rows_is_refused() -> None:
    assert _refusal(b"first_name,email\n").message == "the file has a header but no rows"


def test_a_file_without_a_header_row_is_refused() -> None:
    """A first row that looks like a customer is no header."""
    refusal = _refusal(b"Ada,Lovelace,ada@example.com\nBob,B,bob@example.com\n")
    assert refusal.field == "file" and "no header row" in refusal.message


def test_a_header_without_a_first_name_column_is_refused_naming_it() -> None:
    refusal = _refusal(b"surname,email\nLovelace,x\n")
    assert refusal.field == "first_name"


def test_an_unknown_delimiter_is_refused() -> None:
    """Pipes are not a CSV delimiter the reader guesses at."""
    refusal = _refusal(b"first_name|last_name\nAda|Lovelace\n")
    assert "unknown delimiter" in refusal.message and "'|'" in refusal.message


@pytest.mark.parametrize(
    "content",
    [
        b"PK\x03\x04\x14\x00\x06\x00first_name",  # an .xlsx is a zip
        "first_name\nAda\n".encode("utf-16-le"),  # UTF-16 without its BOM
        b"first_name\nAda\x07\n",
    ],
)
def test_binary_content_is_refused_as_bad_encoding(content: bytes) -> None:
    """NUL and control bytes mean this is not a text file, whatever its Content-Type said."""
    assert "binary data" in _refusal(content).message


def test_bytes_that_do_not_match_the_declared_charset_are_refused() -> None:
    """A charset given in Content-Type is believed, and checked."""
    refusal = _refusal("first_name\nZoë\n".encode("latin-1"), charset="utf-8")
    assert refusal.message == "the file is not valid utf-8 text"
    assert _refusal(b"first_name\nAda\n", charset="klingon").message == "unknown charset 'klingon'"


def test_broken_quoting_is_refused_with_its_line() -> None:
    """A stray quote would merge rows silently: the file is refused, saying where."""
    refusal = _refusal(b'first_name,email\nAda,x\n"Bob"x,y\n')
    assert refusal.message.startswith("malformed CSV near line 3")
    assert "unexpected end of data" in _refusal(b'first_name,email\nAda,"x\n').message


def test_a_column_without_a_header_keeps_its_cells_under_its_position() -> None:
    """A cell under an empty header is not dropped: it is kept as "column N"."""
    _, [row] = _read(b"first_name,,email\nAda,note,\n")
    assert _fields(row)["custom_fields"] == {"column 2": "note"}
