"""What an uploaded file is said to be: sniffed types, declared types checked, refusals."""

from __future__ import annotations

import io
from urllib.parse import unquote

import pytest

from gateway.file_types import Sniffed, sniff, stored_type
from gateway.files import attachment
from gateway.problems import Problem

PDF = b"%PDF-1.7\n" + bytes(range(256))
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)
ZIP = b"PK\x03\x04" + bytes(64)
EXE = b"MZ\x90\x00" + bytes(200)
ELF = b"\x7fELF\x02\x01\x01" + bytes(64)


def typed(content: bytes, declared: str | None = None, name: str = "f") -> str:
    return stored_type(name, declared, sniff(io.BytesIO(content)))


def refusal(content: bytes, declared: str | None = None, name: str = "f") -> tuple[int, list]:
    with pytest.raises(Problem) as refused:
        typed(content, declared, name)
    return refused.value.status, [e.field for e in refused.value.errors]


@pytest.mark.parametrize(
    ("content", "declared", "expected"),
    [
        (PDF, None, "application/pdf"),
        (PDF, "application/octet-stream", "application/pdf"),
        (PDF, "application/x-pdf", "application/pdf"),
        (PDF, "application/x-www-form-urlencoded", "application/pdf"),
        (PNG, "image/png", "image/png"),
        (
            ZIP,
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/zip",
        ),
        (b"name;email\nAnn;ann@example.com\n", "text/csv", "text/csv"),
        (b"plain words\n", None, "text/plain"),
        ("Grüße\n".encode(), "text/html", "text/plain"),
        (b"\x00\x01vendor backup\xff", None, "application/octet-stream"),
        (b"\x00\x01vendor backup\xff", "application/x-panel-backup", "application/octet-stream"),
    ],
)
def test_the_stored_type_comes_from_the_content(
    content: bytes, declared: str | None, expected: str
) -> None:
    """Signatures first, then UTF-8 text (a declared text type kept only if listed), else
    octet-stream; the client's word never makes the type."""
    assert typed(content, declared) == expected


@pytest.mark.parametrize(
    ("content", "declared"),
    [
        (PDF, "image/png"),
        (b"hello\n", "image/jpeg"),
        (b"\x00\x01\x02", "text/plain"),
        (b"\x00\x01\x02", "image/png"),
    ],
)
def test_a_declared_type_the_content_contradicts_is_422(content: bytes, declared: str) -> None:
    """A claim the sniffer can check and finds false names `content_type`."""
    assert refusal(content, declared) == (422, ["content_type"])


@pytest.mark.parametrize(
    ("content", "name"), [(EXE, "tool.bin"), (ELF, "firmware"), (b"echo", "SETUP.BAT")]
)
def test_programs_are_refused_with_415(content: bytes, name: str) -> None:
    """Executables by content (PE, ELF) or by a name Windows runs."""
    assert refusal(content, None, name)[0] == 415


def test_text_with_a_card_number_is_refused_even_across_chunks() -> None:
    """A full card number in text is refused naming `file`, wherever it falls."""
    card = b"4111 1111 1111 1111"
    split = b"a" * ((1 << 20) - 7) + b" " + card + b" paid\n"
    assert refusal(split)[0:2] == (422, ["file"])
    assert typed(b"order 4111 1111 1111 1112 (not Luhn)\n") == "text/plain"
    assert sniff(io.BytesIO(PNG + card)) == Sniffed("image/png", text=False, card_number=False)


def test_the_download_names_the_file_safely() -> None:
    """The ASCII `filename` can neither break out of its quotes nor carry a header; the
    exact name is in `filename*`."""
    header = attachment('evil"; filename="x.exe\r\nSet-Cookie: a=b%.txt')
    fallback = header.split('filename="', 1)[1].split('"', 1)[0]
    assert '"' not in fallback and "\r" not in header and "\n" not in header
    assert unquote(header.split("filename*=UTF-8''", 1)[1]) == (
        'evil"; filename="x.exe\r\nSet-Cookie: a=b%.txt'
    )
