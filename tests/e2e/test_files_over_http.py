"""Customer files over HTTP on a real event store: upload (raw and multipart), list,
download byte-exact, delete, dedup by SHA-256, the refusals, idempotent retries, erasure."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any
from urllib.parse import unquote
from uuid import UUID, uuid4

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from psycopg import sql
from tests.e2e.answers import ok, problem

from domain.service import CustomerService
from gateway import create_app
from gateway.files import file_contents
from infrastructure.settings import Settings

Client = TestClient[Any, Any]
Bearer = Callable[..., dict[str, str]]
PDF = b"%PDF-1.4\n"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module", autouse=True)
def files_view(followed: Any) -> Iterator[None]:
    """The files read model, kept current by a follower thread."""
    with followed("files"):
        yield


async def customer(client: Client, bearer: Bearer) -> str:
    body = {"first_name": "Flo", "email": f"flo.{secrets.token_hex(6)}@example.net"}
    return str(
        (await ok(await client.post("/v1/customers", json=body, headers=bearer()), 201))["id"]
    )


def raw(name: str, **headers: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"', **headers}


async def upload(
    client: Client, bearer: Bearer, customer_id: str, content: bytes, name: str = "a.pdf"
) -> dict[str, Any]:
    response = await client.post(
        f"/v1/customers/{customer_id}/files",
        data=io.BytesIO(content),  # as a stream: aiohttp warns of large bytes bodies
        headers={**bearer(), **raw(name)},
    )
    body: dict[str, Any] = await ok(response, 201)
    body["position"] = int(response.headers["X-Event-Position"])
    return body


def rows(service: CustomerService, schema: str, table: str, sha256: str) -> int:
    """How many rows of a content store table hold that content."""
    with service.recorder.datastore.transaction(commit=False) as cursor:  # type: ignore[attr-defined]
        cursor.execute(
            sql.SQL("SELECT count(*) AS n FROM {} WHERE sha256 = %s").format(
                sql.Identifier(schema, table)
            ),
            (sha256,),
        )
        return int(cursor.fetchone()["n"])


async def test_a_raw_upload_downloads_byte_exact_with_its_metadata_headers(
    client: Client, bearer: Bearer
) -> None:
    """The body is the file; the download gives the same bytes, the sniffed type, the
    length, the SHA-256 as ETag, nosniff, and an attachment disposition."""
    customer_id = await customer(client, bearer)
    content = PDF + secrets.token_bytes(3000)
    response = await client.post(
        f"/v1/customers/{customer_id}/files",
        data=content,
        headers={**bearer(), **raw("site map.pdf", **{"Content-Type": "application/pdf"})},
    )
    created = await ok(response, 201)
    sha256 = hashlib.sha256(content).hexdigest()
    assert created["sha256"] == sha256 and created["size"] == len(content)
    assert created["content_type"] == "application/pdf" and created["version"] == 1
    assert response.headers["Location"] == f"/v1/customers/{customer_id}/files/{created['id']}"
    assert response.headers["ETag"] == '"1"'

    download = await client.get(response.headers["Location"], headers=bearer())
    assert download.status == 200
    assert await download.read() == content
    assert download.headers["Content-Type"] == "application/pdf"
    assert download.headers["Content-Length"] == str(len(content))
    assert download.headers["ETag"] == f'"{sha256}"'
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert download.headers["Content-Disposition"].startswith('attachment; filename="site map.pdf"')
    again = await client.get(
        response.headers["Location"], headers={**bearer(), "If-None-Match": f'"{sha256}"'}
    )
    assert again.status == 304


async def test_a_multipart_upload_keeps_a_name_beyond_ascii_and_quotes_it_safely(
    client: Client, bearer: Bearer
) -> None:
    """A form's one file part is the file; a name with quotes and accents comes back as a
    safe ASCII `filename` plus the exact name as `filename*`."""
    customer_id = await customer(client, bearer)
    content = PNG + secrets.token_bytes(500)
    name = 'Plan "étage" 2.png'
    form = aiohttp.FormData(quote_fields=False)  # as browsers send names: in UTF-8
    form.add_field("file", content, filename=name, content_type="image/png")
    response = await client.post(f"/v1/customers/{customer_id}/files", data=form, headers=bearer())
    created = await ok(response, 201)
    assert created["content_type"] == "image/png"

    download = await client.get(response.headers["Location"], headers=bearer())
    assert await download.read() == content
    disposition = download.headers["Content-Disposition"]
    assert 'filename="Plan __tage_ 2.png"' in disposition
    assert unquote(disposition.split("filename*=UTF-8''", 1)[1]) == name
    listed = await ok(
        await client.get(
            f"/v1/customers/{customer_id}/files",
            params={"min_position": response.headers["X-Event-Position"]},
            headers=bearer(),
        )
    )
    assert [item["name"] for item in listed["items"]] == [name]


async def test_the_list_shows_the_newest_first_in_keyset_pages(
    client: Client, bearer: Bearer
) -> None:
    """Three uploads list newest first, two to a page, with the list tab's fields."""
    customer_id = await customer(client, bearer)
    uploaded = [
        await upload(client, bearer, customer_id, PDF + secrets.token_bytes(100), f"{n}.pdf")
        for n in range(3)
    ]
    url = f"/v1/customers/{customer_id}/files"
    query = {"limit": "2", "min_position": str(uploaded[-1]["position"])}
    first = await ok(await client.get(url, params=query, headers=bearer()))
    assert [i["name"] for i in first["items"]] == ["2.pdf", "1.pdf"]
    item = first["items"][0]
    assert item["id"] == uploaded[2]["id"] and item["uploader"] == "alice@shop"
    assert item["size"] == 109 and item["content_type"] == "application/pdf"
    assert item["sha256"] == uploaded[2]["sha256"] and item["uploaded_at"]
    second = await ok(
        await client.get(url, params={"cursor": first["next_cursor"]}, headers=bearer())
    )
    assert [i["name"] for i in second["items"]] == ["0.pdf"] and second["next_cursor"] is None


async def test_a_25_mb_file_streams_byte_exact(client: Client, bearer: Bearer) -> None:
    """The largest file allowed goes up as a stream and comes back exactly, chunk by chunk."""
    customer_id = await customer(client, bearer)
    content = PDF + os.urandom(25 * 1024 * 1024 - len(PDF))

    async def chunks() -> AsyncIterator[bytes]:  # chunked: no Content-Length to trust
        for start in range(0, len(content), 1 << 20):
            yield content[start : start + (1 << 20)]

    response = await client.post(
        f"/v1/customers/{customer_id}/files", data=chunks(), headers={**bearer(), **raw("b.pdf")}
    )
    created = await ok(response, 201)
    assert created["size"] == len(content)
    download = await client.get(response.headers["Location"], headers=bearer())
    digest = hashlib.sha256()
    async for chunk in download.content.iter_chunked(1 << 16):
        digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(content).hexdigest() == created["sha256"]


async def test_one_byte_over_the_limit_is_413_and_nothing_is_stored(
    aiohttp_client: Any,
    api_settings: Settings,
    service: CustomerService,
    bearer: Bearer,
) -> None:
    """At the limit the file is taken; one byte more answers 413, raw with a length, raw
    chunked and as a form, and its content is nowhere."""
    settings = api_settings.model_copy(update={"max_file_bytes": 1000})
    client = await aiohttp_client(create_app(settings, service=service))
    customer_id = await customer(client, bearer)
    url = f"/v1/customers/{customer_id}/files"
    over = PDF + secrets.token_bytes(1001 - len(PDF))

    async def chunked() -> AsyncIterator[bytes]:
        yield over[:500]
        yield over[500:]

    form = aiohttp.FormData()
    form.add_field("file", over, filename="over.pdf")
    for body in (over, chunked(), form):
        headers = bearer() if body is form else {**bearer(), **raw("over.pdf")}
        await problem(await client.post(url, data=body, headers=headers), 413)
    schema = api_settings.db_schema
    assert rows(service, schema, "file_contents", hashlib.sha256(over).hexdigest()) == 0

    at_limit = over[:1000]
    created = await upload(client, bearer, customer_id, at_limit)
    assert created["size"] == 1000
    assert rows(service, schema, "file_contents", created["sha256"]) == 1


def fields(body: dict[str, Any]) -> list[str | None]:
    return [e["field"] for e in body.get("errors", [])]


async def test_what_an_upload_is_refused_for(client: Client, bearer: Bearer) -> None:
    """Missing name, empty file, a type the content contradicts, programs, card numbers,
    malformed forms: each its status, naming the field."""
    customer_id = await customer(client, bearer)
    url = f"/v1/customers/{customer_id}/files"
    me = bearer()

    async def refused(status: int, data: Any, headers: dict[str, str]) -> list[str | None]:
        return fields(await problem(await client.post(url, data=data, headers=headers), status))

    assert await refused(422, PDF + b"x", me) == ["filename"]
    no_name = {**me, "Content-Disposition": "attachment"}
    assert await refused(422, PDF + b"x", no_name) == ["filename"]
    assert await refused(422, b"", {**me, **raw("empty.txt")}) == ["file"]
    text_as_png = {**me, **raw("a.png", **{"Content-Type": "image/png"})}
    assert await refused(422, b"just some text\n", text_as_png) == ["content_type"]
    pdf_as_png = {**me, **raw("a.png", **{"Content-Type": "image/png"})}
    assert await refused(422, PDF + b"x", pdf_as_png) == ["content_type"]
    binary_as_text = {**me, **raw("a.txt", **{"Content-Type": "text/plain"})}
    assert await refused(422, b"\x00\x01\x02\xff" * 10, binary_as_text) == ["content_type"]
    await refused(415, b"MZ\x90\x00" + bytes(200), {**me, **raw("tool.bin")})
    await refused(415, b"echo hi\r\n", {**me, **raw("run.bat")})
    card = b"Customer paid with 4111 1111 1111 1111 last week\n"
    assert await refused(422, card, {**me, **raw("notes.txt")}) == ["file"]

    no_file = aiohttp.FormData(default_to_multipart=True)
    no_file.add_field("comment", "hello")
    assert await refused(422, no_file, me) == ["file"]
    two = aiohttp.FormData()
    two.add_field("file", PDF + b"1", filename="1.pdf")
    two.add_field("file", PDF + b"2", filename="2.pdf")
    assert await refused(422, two, me) == ["file"]
    mixed = {**me, "Content-Type": "multipart/mixed; boundary=x"}
    await refused(415, b"--x--\r\n", mixed)
    broken = {**me, "Content-Type": "multipart/form-data; boundary=x"}
    await refused(400, b"not a form at all", broken)


async def test_whose_files_may_be_uploaded(
    client: Client, bearer: Bearer, service: CustomerService
) -> None:
    """Unknown customer 404, a deleted or an erased one 409, a stale If-Match 412, before
    anything is stored; a deleted customer's files still download."""
    me = {**bearer(), **raw("a.pdf")}
    await problem(await client.post(f"/v1/customers/{uuid4()}/files", data=PDF, headers=me), 404)
    customer_id = await customer(client, bearer)
    url = f"/v1/customers/{customer_id}/files"
    stale = {**me, "If-Match": '"7"'}
    await problem(await client.post(url, data=PDF + b"v", headers=stale), 412)
    current = {**me, "If-Match": '"1"'}
    kept = await client.post(url, data=PDF + b"v", headers=current)
    await ok(kept, 201)
    deleted = await client.delete(
        f"/v1/customers/{customer_id}", headers={**bearer(), "If-Match": '"1"'}
    )
    await ok(deleted)
    await problem(await client.post(url, data=PDF + b"d", headers=me), 409)
    # A deleted customer can be restored: its files stay, and download.
    still = await client.get(kept.headers["Location"], headers=bearer())
    assert await still.read() == PDF + b"v"
    erased_id = await customer(client, bearer)
    erased = await client.post(
        f"/v1/customers/{erased_id}/erase", headers={**bearer("admin"), "If-Match": '"1"'}
    )
    await ok(erased)
    url = f"/v1/customers/{erased_id}/files"
    await problem(await client.post(url, data=PDF + b"e", headers=me), 409)


async def test_a_customer_token_finds_no_files_even_its_own(client: Client, bearer: Bearer) -> None:
    """Files are the shop's: every operation answers a customer token 404."""
    customer_id = await customer(client, bearer)
    created = await upload(client, bearer, customer_id, PDF + b"mine")
    own = bearer("customer", sub="flo", customer_id=customer_id)
    base = f"/v1/customers/{customer_id}/files"
    await problem(await client.post(base, data=PDF, headers={**own, **raw("x.pdf")}), 404)
    await problem(await client.get(base, headers=own), 404)
    await problem(await client.get(f"{base}/{created['id']}", headers=own), 404)
    gone = await client.delete(f"{base}/{created['id']}", headers={**own, "If-Match": '"1"'})
    await problem(gone, 404)


async def test_the_same_bytes_are_stored_once_and_go_with_the_last_file(
    client: Client, bearer: Bearer, service: CustomerService, api_settings: Settings
) -> None:
    """Two customers' uploads of one backup share one content row; deleting one file
    keeps it for the other; deleting the last takes it."""
    content = PDF + secrets.token_bytes(2 * (1 << 20) + 17)  # three chunks
    sha256 = hashlib.sha256(content).hexdigest()
    first, second = await customer(client, bearer), await customer(client, bearer)
    a = await upload(client, bearer, first, content)
    b = await upload(client, bearer, second, content, "copy.pdf")
    schema = api_settings.db_schema
    assert rows(service, schema, "file_contents", sha256) == 1
    assert rows(service, schema, "file_chunks", sha256) == 3

    url_a, url_b = (
        f"/v1/customers/{first}/files/{a['id']}",
        f"/v1/customers/{second}/files/{b['id']}",
    )
    await problem(await client.delete(url_a, headers=bearer()), 428)
    await problem(await client.delete(url_a, headers={**bearer(), "If-Match": '"2"'}), 412)
    deleted = await client.delete(url_a, headers={**bearer(), "If-Match": '"1"'})
    assert (await ok(deleted))["version"] == 2
    await problem(await client.get(url_a, headers=bearer()), 404)
    await problem(await client.delete(url_a, headers={**bearer(), "If-Match": '"2"'}), 404)
    assert rows(service, schema, "file_contents", sha256) == 1
    assert await (await client.get(url_b, headers=bearer())).read() == content
    # Another customer's file id under this customer's path is not found.
    await problem(await client.get(f"/v1/customers/{first}/files/{b['id']}", headers=bearer()), 404)

    await ok(await client.delete(url_b, headers={**bearer(), "If-Match": '"1"'}))
    assert rows(service, schema, "file_contents", sha256) == 0
    assert rows(service, schema, "file_chunks", sha256) == 0
    listed = await ok(
        await client.get(
            f"/v1/customers/{second}/files",
            params={"min_position": str(service.recorder.max_notification_id())},
            headers=bearer(),
        )
    )
    assert listed["items"] == []


async def test_an_idempotent_retry_answers_the_first_upload(
    client: Client, bearer: Bearer, service: CustomerService, api_settings: Settings
) -> None:
    """The same key and file again: the same file, replayed, one reference; the same key
    with other bytes: 422."""
    customer_id = await customer(client, bearer)
    content = PDF + secrets.token_bytes(400)
    keyed = {**bearer(), **raw("k.pdf"), "Idempotency-Key": f"file-{secrets.token_hex(4)}"}
    url = f"/v1/customers/{customer_id}/files"
    first = await client.post(url, data=content, headers=keyed)
    created = await ok(first, 201)
    retry = await client.post(url, data=content, headers=keyed)
    assert (await ok(retry, 201))["id"] == created["id"]
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert rows(service, api_settings.db_schema, "file_references", created["sha256"]) == 1
    other = await client.post(url, data=content + b"!", headers=keyed)
    await problem(other, 422)


async def test_a_reference_left_by_a_failed_save_or_an_interrupted_delete_is_swept(
    client: Client, bearer: Bearer, service: CustomerService, api_settings: Settings
) -> None:
    """Content stored for a file whose event was never saved, or whose delete was saved
    but not followed by the release, is collected by the sweep; a live file's stays."""
    contents = file_contents(client.app)
    customer_id = await customer(client, bearer)
    live = await upload(client, bearer, customer_id, PDF + secrets.token_bytes(50))
    orphan = PDF + secrets.token_bytes(60)
    orphan_sha = hashlib.sha256(orphan).hexdigest()
    contents.put(uuid4(), UUID(customer_id), orphan_sha, len(orphan), io.BytesIO(orphan))
    interrupted = await upload(client, bearer, customer_id, PDF + secrets.token_bytes(70))
    service.delete_file(UUID(customer_id), UUID(interrupted["id"]), expected_version=1)
    schema = api_settings.db_schema
    assert rows(service, schema, "file_contents", orphan_sha) == 1
    assert rows(service, schema, "file_contents", interrupted["sha256"]) == 1

    assert contents.sweep(timedelta(hours=1)).references == 0, "within the grace period"
    swept = contents.sweep(timedelta(0))
    assert swept.references >= 2 and swept.contents >= 2
    assert rows(service, schema, "file_contents", orphan_sha) == 0
    assert rows(service, schema, "file_contents", interrupted["sha256"]) == 0
    assert rows(service, schema, "file_contents", live["sha256"]) == 1


async def test_erasure_destroys_the_customers_file_content_but_not_what_others_share(
    client: Client, bearer: Bearer, service: CustomerService, api_settings: Settings
) -> None:
    """After an erasure the customer's own bytes are gone, its files are not found, and a
    backup another customer also uploaded stays theirs."""
    erased, other = await customer(client, bearer), await customer(client, bearer)
    own = await upload(client, bearer, erased, b"Flo's gate code is 4711\n", "flo.txt")
    shared_content = PDF + secrets.token_bytes(80)
    shared = await upload(client, bearer, erased, shared_content)
    kept = await upload(client, bearer, other, shared_content)
    response = await client.post(
        f"/v1/customers/{erased}/erase", headers={**bearer("admin"), "If-Match": '"1"'}
    )
    await ok(response)
    schema = api_settings.db_schema
    assert rows(service, schema, "file_contents", own["sha256"]) == 0
    assert rows(service, schema, "file_contents", shared["sha256"]) == 1
    for file in (own, shared):
        url = f"/v1/customers/{erased}/files/{file['id']}"
        await problem(await client.get(url, headers=bearer()), 404)
    url = f"/v1/customers/{other}/files/{kept['id']}"
    assert await (await client.get(url, headers=bearer())).read() == shared_content
    listed = await ok(
        await client.get(
            f"/v1/customers/{erased}/files",
            params={"min_position": response.headers["X-Event-Position"]},
            headers=bearer(),
        )
    )
    assert listed["items"] == []


async def test_the_history_lists_uploads_and_deletes_field_by_field(
    client: Client, bearer: Bearer, followed: Any
) -> None:
    """`files[<id>].name`, `.size`, `.content_type`, `.sha256` set by the upload, cleared
    by the delete."""
    with followed("history"):
        customer_id = await customer(client, bearer)
        created = await upload(client, bearer, customer_id, PDF + b"hist", "h.pdf")
        url = f"/v1/customers/{customer_id}/files/{created['id']}"
        deleted = await client.delete(url, headers={**bearer(), "If-Match": '"1"'})
        await ok(deleted)
        history = await ok(
            await client.get(
                f"/v1/customers/{customer_id}/history",
                params={"min_position": deleted.headers["X-Event-Position"]},
                headers=bearer(),
            )
        )
    by_type = {item["type"]: item["changes"] for item in history["items"]}
    prefix = f"files[{created['id']}]."
    uploaded = {c["field"]: c["to"] for c in by_type["customer_file.uploaded"]}
    assert uploaded == {
        f"{prefix}name": "h.pdf",
        f"{prefix}size": len(PDF) + 4,
        f"{prefix}content_type": "application/pdf",
        f"{prefix}sha256": created["sha256"],
    }
    cleared = {c["field"]: (c["from"], c["to"]) for c in by_type["customer_file.deleted"]}
    assert cleared[f"{prefix}name"] == ("h.pdf", None) and len(cleared) == 4


async def test_the_openapi_document_describes_the_binary_bodies(client: Client) -> None:
    """The upload takes a raw binary body or a form with a file; the download is binary."""
    document = await ok(await client.get("/openapi.json"))
    path = document["paths"]["/v1/customers/{id}/files"]
    content = path["post"]["requestBody"]["content"]
    assert content["application/octet-stream"]["schema"] == {"type": "string", "format": "binary"}
    form = content["multipart/form-data"]["schema"]
    assert form["properties"]["file"] == {"type": "string", "format": "binary"}
    download = document["paths"]["/v1/customers/{id}/files/{file_id}"]["get"]
    assert download["responses"]["200"]["content"]["application/octet-stream"]["schema"] == {
        "type": "string",
        "format": "binary",
    }
    assert {"413", "415", "422"} <= set(path["post"]["responses"])


async def test_racing_uploads_of_new_bytes_store_them_once_and_keyed_twins_make_one_file(
    client: Client, bearer: Bearer, service: CustomerService, api_settings: Settings
) -> None:
    """Two uploads of the same new bytes at once: one content row with every chunk; two
    keyed twins at once: one file, both answered with it."""
    customer_id = await customer(client, bearer)
    url = f"/v1/customers/{customer_id}/files"
    content = PDF + secrets.token_bytes(3 << 20)  # four chunks
    sha256 = hashlib.sha256(content).hexdigest()

    async def post(headers: dict[str, str]) -> Any:
        return await client.post(url, data=io.BytesIO(content), headers=headers)

    plain = {**bearer(), **raw("race.pdf")}
    first, second = await asyncio.gather(post(plain), post(plain))
    ids = {(await ok(first, 201))["id"], (await ok(second, 201))["id"]}
    assert len(ids) == 2, "two uploads, two files"
    schema = api_settings.db_schema
    assert rows(service, schema, "file_contents", sha256) == 1
    assert rows(service, schema, "file_chunks", sha256) == 4

    keyed = {**plain, "Idempotency-Key": f"twin-{secrets.token_hex(4)}"}
    twins = await asyncio.gather(post(keyed), post(keyed))
    assert len({(await ok(twin, 201))["id"] for twin in twins}) == 1
    assert rows(service, schema, "file_references", sha256) == 3


def test_a_delete_racing_an_upload_of_the_same_bytes_never_leaves_it_without_content(
    client: Client, service: CustomerService, api_settings: Settings
) -> None:
    """The content store's collector and writers take turns per hash: whichever goes
    first, the new file's content is whole afterwards."""
    contents = file_contents(client.app)
    content = secrets.token_bytes((1 << 20) + 5)  # two chunks
    sha256 = hashlib.sha256(content).hexdigest()
    customer_id = uuid4()
    with ThreadPoolExecutor(max_workers=2) as pool:
        for _ in range(10):
            leaving, arriving = uuid4(), uuid4()
            contents.put(leaving, customer_id, sha256, len(content), io.BytesIO(content))
            released = pool.submit(contents.release, [leaving])
            stored = pool.submit(
                contents.put, arriving, customer_id, sha256, len(content), io.BytesIO(content)
            )
            released.result(), stored.result()
            schema = api_settings.db_schema
            assert rows(service, schema, "file_chunks", sha256) == 2
            assert contents.release([arriving]) == 1
            assert rows(service, schema, "file_contents", sha256) == 0
