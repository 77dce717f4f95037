"""The refusal of full card numbers, for every request the gateway takes, before anything sees it.

Cards are kept only as a payment provider's token (`POST /v1/customers/{id}/cards`). A
value that looks like a full card number (`domain.card_numbers`) anywhere a request can
carry data the service might keep or write down is answered 422 naming where it was, and
never echoed: not in the answer, not in a log line, not in an event, an idempotency
record or a read model. Where each place is checked:

    the path and the query string   here (the access log writes the path, redacted)
    X-Request-ID, Idempotency-Key,  here: the request id is logged and stored as every
    Content-Disposition               event's correlation id, the key is remembered (hashed),
                                      a file name is stored
    a JSON body (any `*/json` or    here, before the handler reads it: so before the
      `*+json` content type)          idempotency layer fingerprints it and before any log
    a CSV import                    by the import reader (`gateway.import_files`), row by row
                                      as the file is read: the file is refused whole

Other headers are neither stored nor logged, so they are not searched. Bodies of other
types are either refused by their handler (415) without being kept, or are uploaded files,
which their own module judges. So are the bodies of operations that declare a body other
than a JSON model (a file upload, a CSV import), whatever type they are sent as: their
handlers stream them with limits of their own, which reading them here would override
(and the stream would be empty for the handler after it).

The middleware runs inside authentication: an anonymous caller gets its 401 without the
body being read at all.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web
from aiohttp.typedefs import Handler

from domain.card_numbers import json_card_number_fields, looks_like_card_number
from gateway.operations import operation_of
from gateway.problems import FieldError, Problem
from gateway.requests import parse_json, read_body

__all__ = ["CARD_NUMBER_MESSAGE", "card_number_middleware", "card_number_problem"]

CARD_NUMBER_MESSAGE = (
    "looks like a full card number, which is never stored: send the payment provider's"
    " token with brand, last 4 digits and expiry instead"
)
CHECKED_HEADERS = ("X-Request-ID", "Idempotency-Key", "Content-Disposition")
_MAX_LISTED = 20


def card_number_problem(fields: Iterable[str]) -> Problem:
    """The 422 that names where card numbers were found (never what they were)."""
    named = list(dict.fromkeys(fields))
    listed = named[:_MAX_LISTED]
    more = f" and {len(named) - len(listed)} more" if len(named) > len(listed) else ""
    return Problem(
        422,
        f"These look like full card numbers and are refused: {', '.join(listed)}{more}.",
        slug="card-number",
        errors=[FieldError(field=f, message=CARD_NUMBER_MESSAGE) for f in listed],
    )


@web.middleware
async def card_number_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse (422) a request that carries something that looks like a full card number."""
    fields = [*_in_path(request), *_in_query(request), *_in_headers(request)]
    fields += await _in_body(request)
    if fields:
        raise card_number_problem(fields)
    return await handler(request)


def _in_path(request: web.Request) -> list[str]:
    return ["path"] if looks_like_card_number(request.path) else []


def _in_query(request: web.Request) -> list[str]:
    fields = []
    for place, (name, value) in enumerate(request.query.items()):
        if looks_like_card_number(name):
            fields.append(f"<query parameter {place}>")
        elif looks_like_card_number(value):
            fields.append(name)
    return fields


def _in_headers(request: web.Request) -> list[str]:
    return [
        name for name in CHECKED_HEADERS if looks_like_card_number(request.headers.get(name, ""))
    ]


async def _in_body(request: web.Request) -> list[str]:
    if not request.body_exists or not _is_json(request.content_type) or _streams_body(request):
        return []
    # Read and parsed once here; aiohttp keeps the bytes and `read_json` takes the parse.
    body = await read_body(request)
    parsed = await parse_json(request)
    if parsed.malformed is not None:
        # The handler answers 400 for the syntax; the text is still searched as text.
        text = body.decode("utf-8", errors="replace")
        return ["body"] if looks_like_card_number(text) else []
    # Well-formed JSON is valid UTF-8.
    return json_card_number_fields(body.decode("utf-8"), parsed.value)


def _streams_body(request: web.Request) -> bool:
    """Whether the handler declares a body that is not a JSON model: it streams it itself."""
    declared = operation_of(request.match_info.handler)
    return declared is not None and declared.request is not None and declared.request.model is None


def _is_json(content_type: str) -> bool:
    return content_type.endswith(("/json", "+json"))
