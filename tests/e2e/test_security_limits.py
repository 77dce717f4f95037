"""Abuse of the transport: oversized bodies and headers, and clients too slow to finish.

Each is sent over a raw socket to a real gateway (aiohttp's test server listens on a
loopback port), because a well-behaved HTTP client library would refuse to send them.
The answer must be a 4xx, never a 500 or a hang, and a slow client must lose its
connection so that it holds no handler, no memory and no thread for long.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp.test_utils import TestClient

from domain.service import CustomerService
from gateway import create_app
from infrastructure.settings import Settings

Client = TestClient[Any, Any]

BODY_TIMEOUT = 1.0


async def _raw_exchange(
    client: Client,
    head: bytes,
    body_parts: list[bytes] = (),
    pause: float = 0.0,  # type: ignore[assignment]
) -> tuple[bytes, bool, float]:
    """Send `head` then each of `body_parts` `pause` s apart; the answer, whether the
    server closed the connection after it, and the seconds from the head to the answer."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    started = time.monotonic()
    writer.write(head)
    await writer.drain()

    async def dribble() -> None:
        for part in body_parts:
            await asyncio.sleep(pause)
            if writer.is_closing():
                return
            writer.write(part)
            try:
                await writer.drain()
            except ConnectionError:
                return

    sender = asyncio.create_task(dribble())
    try:
        answer = await asyncio.wait_for(reader.read(65536), 30)
        elapsed = time.monotonic() - started
        # After the answer, a closed connection reads as EOF.
        try:
            closed = await asyncio.wait_for(reader.read(65536), 5) == b""
        except TimeoutError:
            closed = False
    finally:
        sender.cancel()
        writer.close()
    return answer, closed, elapsed


def _head(client: Client, bearer: Any, method: str, path: str, extra: str = "") -> bytes:
    auth = bearer()["Authorization"]
    return (
        f"{method} {path} HTTP/1.1\r\nHost: {client.host}\r\nAuthorization: {auth}\r\n{extra}\r\n"
    ).encode()


async def test_a_body_over_the_limit_answers_413_before_it_is_all_read(
    client: Client, bearer: Any
) -> None:
    """A body declared and sent larger than CUSTOMERS_MAX_BODY_BYTES answers 413 problem+json."""
    size = 2 * 1024 * 1024
    head = _head(
        client,
        bearer,
        "POST",
        "/v1/customers",
        f"Content-Type: application/json\r\nContent-Length: {size}\r\n",
    )
    answer, _, _ = await _raw_exchange(client, head, [b"{" + b" " * (size - 1)])
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"application/problem+json" in answer


async def test_an_oversized_header_answers_400_not_500(client: Client, bearer: Any) -> None:
    """A header line past aiohttp's 8190 bytes, or too many headers, answers 400."""
    huge = _head(client, bearer, "GET", "/v1/customers", f"X-Junk: {'a' * 20_000}\r\n")
    many = _head(
        client, bearer, "GET", "/v1/customers", "".join(f"X-{i}: a\r\n" for i in range(5000))
    )
    for head in (huge, many):
        answer, closed, _ = await _raw_exchange(client, head)
        assert answer.split(b" ", 2)[1] in {b"400", b"431"}, answer[:200]
        assert closed


async def test_a_huge_token_answers_400_or_401(client: Client) -> None:
    """An Authorization header of 100 kB is refused without reaching the token parser's limits."""
    head = (
        f"GET /v1/customers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {'a' * 100_000}\r\n\r\n"
    ).encode()
    answer, _, _ = await _raw_exchange(client, head)
    assert answer.split(b" ", 2)[1] in {b"400", b"401", b"431"}, answer[:200]


async def test_a_client_dribbling_its_body_gets_408_and_loses_the_connection(
    aiohttp_client: Any, api_settings: Settings, service: CustomerService, bearer: Any
) -> None:
    """Headers, then one byte every 0.3 s: the body timeout ends it with 408 and closes the
    connection, although bytes keep arriving; other clients are served meanwhile."""
    settings = api_settings.model_copy(update={"body_timeout_seconds": BODY_TIMEOUT})
    client: Client = await aiohttp_client(create_app(settings, service=service))
    head = _head(
        client,
        bearer,
        "POST",
        "/v1/customers",
        "Content-Type: application/json\r\nContent-Length: 1000\r\nIdempotency-Key: slow-1\r\n",
    )
    slow = asyncio.create_task(_raw_exchange(client, head, [b"{"] + [b" "] * 50, pause=0.3))
    await asyncio.sleep(0.2)
    healthy = await client.get("/healthz")
    assert healthy.status == 200
    answer, closed, elapsed = await slow
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"application/problem+json" in answer
    assert closed
    assert BODY_TIMEOUT <= elapsed < BODY_TIMEOUT + 5
    # Nothing was registered under the slow request's key: a retry starts afresh.
    retry = await client.post(
        "/v1/customers",
        json={"first_name": "Slow", "email": "slow-client@example.com"},
        headers={**bearer(), "Idempotency-Key": "slow-1"},
    )
    assert retry.status in {201, 409}


async def test_a_client_withholding_its_body_gets_408_on_an_action_too(
    aiohttp_client: Any, api_settings: Settings, service: CustomerService, bearer: Any
) -> None:
    """An action whose body is optional (block) waits no longer for a withheld body either."""
    settings = api_settings.model_copy(update={"body_timeout_seconds": BODY_TIMEOUT})
    client: Client = await aiohttp_client(create_app(settings, service=service))
    head = _head(
        client,
        bearer,
        "POST",
        "/v1/customers/00000000-0000-4000-8000-000000000000/block",
        'Content-Type: application/json\r\nContent-Length: 50\r\nIf-Match: "1"\r\n'
        "Idempotency-Key: withheld-1\r\n",
    )
    answer, closed, elapsed = await _raw_exchange(client, head)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert closed
    assert elapsed < BODY_TIMEOUT + 5
