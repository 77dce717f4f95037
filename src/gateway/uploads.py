"""Receiving an uploaded file: streamed to a temporary file while hashed, with its own limit.

Uploads (a CSV import, a customer file) are larger than the gateway's JSON body limit, so
they bypass it (`request.read()` is never called) and are copied chunk by chunk to a
temporary file instead: memory holds one chunk, never the file. The route's own limit is
checked against `Content-Length` before anything is read and again as bytes arrive (a
chunked body has no length); past it the answer is 413 and nothing was kept. A body that
stops arriving (no chunk for `body_timeout_seconds`) answers 408 and the connection closes,
as `requests.read_body` does for JSON; a slow but steady upload is not cut off.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass
from typing import IO

from aiohttp import BodyPartReader, web

from gateway.keys import SETTINGS_KEY
from gateway.problems import Problem

__all__ = ["CHUNK_BYTES", "Received", "body_chunks", "part_chunks", "receive"]

CHUNK_BYTES = 1 << 16


@dataclass(frozen=True)
class Received:
    sha256: str
    """Hex SHA-256 of what was received."""
    size: int


def body_chunks(request: web.Request) -> AsyncIterable[bytes]:
    """The request body, chunk by chunk."""
    return request.content.iter_chunked(CHUNK_BYTES)


async def part_chunks(part: BodyPartReader) -> AsyncIterable[bytes]:
    """One multipart part's content, chunk by chunk, as sent (RFC 7578 form data has no
    transfer encoding: the caller refuses a part that declares one)."""
    while chunk := await part.read_chunk(CHUNK_BYTES):
        yield chunk


async def receive(
    request: web.Request,
    chunks: AsyncIterable[bytes],
    file: IO[bytes],
    *,
    limit: int,
    too_large: Callable[[int], Problem],
) -> Received:
    """Copy `chunks` to `file` and hash them; `too_large(limit)` is raised past `limit` bytes."""
    seconds = request.app[SETTINGS_KEY].body_timeout_seconds
    digest = hashlib.sha256()
    size = 0
    iterator = aiter(chunks)
    while True:
        try:
            async with asyncio.timeout(seconds):
                chunk = await anext(iterator)
        except StopAsyncIteration:
            break
        except TimeoutError:
            request.content.feed_eof()
            raise Problem(
                408,
                f"The upload stopped: no data arrived for {seconds:g} s.",
                headers={"Connection": "close"},
            ) from None
        except ConnectionResetError:
            raise Problem(400, "The connection closed before the upload arrived.") from None
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        digest.update(chunk)
        file.write(chunk)
    return Received(digest.hexdigest(), size)
