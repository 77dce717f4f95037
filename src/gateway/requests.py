"""Reading requests and writing JSON answers: bodies, query strings, ETags, command headers.

Each reader either returns a validated value or raises a `Problem` that already says what
the client got wrong (which header, which line and column, which field), so handlers
stay a few lines long and every refusal has the same shape.
"""

from __future__ import annotations

import asyncio
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar, Union, get_args, get_origin
from uuid import UUID

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from gateway.keys import PARSED_JSON_KEY, SETTINGS_KEY
from gateway.problems import FieldError, Problem, validation_problem

__all__ = [
    "JSON_CONTENT_TYPE",
    "MERGE_PATCH_CONTENT_TYPE",
    "ParsedJson",
    "command_headers",
    "dumps",
    "etag",
    "idempotency_key",
    "json_response",
    "optional_if_match",
    "parse_json",
    "parse_query",
    "path_uuid",
    "read_body",
    "read_json",
    "require_if_match",
]

M = TypeVar("M", bound=BaseModel)

JSON_CONTENT_TYPE = "application/json"
MERGE_PATCH_CONTENT_TYPE = "application/merge-patch+json"
_ENTITY_TAG = re.compile(r'\s*(W/)?"([^"]*)"\s*')
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # visible ASCII, as a header allows


async def read_json(request: web.Request, model: type[M], *, allow_empty: bool = False) -> M:
    """The body validated as `model`: 415 wrong type, 400 malformed, 422 invalid.

    `allow_empty` lets an action with only optional fields be sent without a body.
    """
    if allow_empty and not request.body_exists:
        return _validate(model, b"{}")
    _require_json_content_type(request)
    body = await read_body(request)
    if not body.strip():
        raise Problem(400, "The body is empty; a JSON object is expected.", slug="malformed-json")
    parsed = await parse_json(request)
    if parsed.malformed is not None:
        raise Problem(400, f"Malformed JSON at {parsed.malformed}.", slug="malformed-json")
    data = parsed.value
    if not isinstance(data, dict):
        message = f"expected a JSON object, got {_json_kind(data)}"
        raise Problem(
            422,
            f"The body must be a JSON object, not {_json_kind(data)}.",
            errors=[FieldError(field=None, message=message)],
        )
    return _validate(model, body)


@dataclass(frozen=True, slots=True)
class ParsedJson:
    """A request's body parsed as JSON: its value, or where and why it is malformed."""

    value: Any
    malformed: str | None = None
    """`line 1, column 7: unexpected character` (None: well-formed)."""


async def parse_json(request: web.Request) -> ParsedJson:
    """The body parsed as JSON, once per request: the card-number refusal parses it before
    the handler, and `read_json` takes its result instead of parsing again."""
    parsed = request.get(PARSED_JSON_KEY)
    if parsed is None:
        body = await read_body(request)
        try:
            parsed = ParsedJson(orjson.loads(body))
        except orjson.JSONDecodeError as exc:
            parsed = ParsedJson(None, f"line {exc.lineno}, column {exc.colno}: {exc.msg}")
        request[PARSED_JSON_KEY] = parsed
    return parsed


async def read_body(request: web.Request) -> bytes:
    """The whole body: 413 past the size limit, 408 when it has not arrived in time.

    aiohttp waits for a body as long as the client keeps the connection open, so a client
    that sends its headers and then dribbles (or withholds) the body would hold a handler
    and its memory forever: the time to the last byte is bounded, and the connection is
    closed with the answer (what is left of the body is never read).
    """
    if not request.can_read_body:
        # Read already (the card-number refusal, `read_json` and the idempotency
        # fingerprint each ask), or none was sent: nothing to wait for, so no timer to set.
        return await request.read()
    seconds = request.app[SETTINGS_KEY].body_timeout_seconds
    try:
        async with asyncio.timeout(seconds):
            return await request.read()  # raises 413 past client_max_size
    except TimeoutError:
        # The body ends here for aiohttp too, or it would linger reading the dribble for
        # up to 10 s more before it closes the connection.
        request.content.feed_eof()
        raise Problem(
            408,
            f"The request body did not arrive within {seconds:g} s.",
            headers={"Connection": "close"},
        ) from None
    except ConnectionResetError:
        # The client went away mid-body: nobody will read the answer, but it is theirs.
        raise Problem(400, "The connection closed before the body arrived.") from None


def parse_query(request: web.Request, model: type[M]) -> M:
    """The query string validated as `model` (extra="forbid"): 422 names each bad parameter.

    A parameter may repeat only when its field is a list (`?status=a&status=b`).
    """
    repeatable = _list_fields(model)
    data: dict[str, str | list[str]] = {}
    repeated: list[FieldError] = []
    for name in dict.fromkeys(request.query.keys()):
        values = request.query.getall(name)
        if name in repeatable:
            data[name] = values
        elif len(values) > 1:
            repeated.append(FieldError(field=name, message="given more than once"))
        else:
            data[name] = values[0]
    if repeated:
        raise Problem(422, "Some query parameters were repeated.", errors=repeated)
    # Lax mode would also take "45220" as a Unix time: the document promises RFC 3339.
    malformed = [
        FieldError(field=name, message=message)
        for name, (pattern, message) in _time_fields(model).items()
        if isinstance(data.get(name), str) and not pattern.fullmatch(str(data[name]))
    ]
    if malformed:
        raise Problem(422, "Some times are not RFC 3339.", errors=malformed)
    try:
        # Every value is a string: lax mode turns "10" into 10 and "true" into True even
        # on a strict model (validate_strings would, but it cannot take repeated values).
        return model.model_validate(data, strict=False)
    except ValidationError as exc:
        raise validation_problem(exc, source="query") from None


def path_uuid(request: web.Request, name: str = "id") -> UUID:
    """The path parameter `name` as a UUID; a 404 when it is not one (no such resource)."""
    raw = request.match_info[name]
    try:
        return UUID(raw)
    except ValueError:
        raise Problem(404, "No such resource: the id is not a UUID.") from None


def dumps(body: Any) -> bytes:
    """JSON bytes for a response: UUIDs and times as strings, Decimal as a plain decimal string."""
    # Naive datetimes are taken as UTC so that every time carries an offset (RFC 3339).
    return orjson.dumps(body, default=_encode_default, option=orjson.OPT_NAIVE_UTC)


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """An application/json response (body: JSON-able values, Decimals or pydantic models)."""
    return web.Response(
        status=status,
        body=dumps(body),
        headers={**(headers or {}), "Content-Type": JSON_CONTENT_TYPE},
    )


def etag(version: int) -> str:
    """The strong entity tag of an aggregate version: `"<version>"`."""
    return f'"{version}"'


def command_headers(
    *, version: int | None = None, position: int | None = None, location: str | None = None
) -> dict[str, str]:
    """ETag, X-Event-Position and Location for a command's response (the ones given)."""
    headers: dict[str, str] = {}
    if version is not None:
        headers["ETag"] = etag(version)
    if position is not None:
        headers["X-Event-Position"] = str(position)
    if location is not None:
        headers["Location"] = location
    return headers


def require_if_match(request: web.Request) -> int:
    """The version the client expects: 428 without If-Match, 400 malformed, 412 weak/non-numeric."""
    version = optional_if_match(request)
    if version is None:
        raise Problem(
            428, 'This operation needs If-Match: "<version>" (the ETag of the version you saw).'
        )
    return version


def optional_if_match(request: web.Request) -> int | None:
    """The version in If-Match if present (None: apply to the latest version)."""
    raw = request.headers.get("If-Match")
    if raw is None:
        return None
    if raw.strip() == "*" or "," in raw:
        raise Problem(400, 'If-Match must be one entity tag, such as "3".', slug="malformed-header")
    match = _ENTITY_TAG.fullmatch(raw)
    if match is None:
        raise Problem(
            400,
            f'If-Match must be a quoted entity tag, such as "{raw.strip()}".',
            slug="malformed-header",
        )
    weak, tag = match.groups()
    # RFC 9110 compares If-Match strongly: a weak tag or one we never issued cannot match.
    if weak or not tag.isdigit():
        raise Problem(412, f"If-Match {raw.strip()} does not match the current version.")
    return int(tag)


def idempotency_key(request: web.Request) -> str | None:
    """The Idempotency-Key header (1 to 255 visible ASCII characters), or None."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and not _IDEMPOTENCY_KEY.fullmatch(key):
        raise Problem(
            400,
            "Idempotency-Key must be 1 to 255 visible ASCII characters.",
            slug="malformed-header",
        )
    return key


def _require_json_content_type(request: web.Request) -> None:
    accepted = {JSON_CONTENT_TYPE}
    if request.method == "PATCH":
        accepted.add(MERGE_PATCH_CONTENT_TYPE)
    # aiohttp reports application/octet-stream when the header is missing.
    charset = (request.charset or "utf-8").lower()
    if request.content_type not in accepted or charset not in {"utf-8", "utf8"}:
        raise Problem(
            415,
            f"Content-Type must be {' or '.join(sorted(accepted))} (UTF-8).",
            headers={"Accept-Patch": MERGE_PATCH_CONTENT_TYPE} if request.method == "PATCH" else {},
        )


def _validate(model: type[M], body: bytes) -> M:
    try:
        # JSON-mode validation, so strings become UUIDs, dates and decimals as the schema says.
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise validation_problem(exc) from None


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATE_TIME = re.compile(
    # An unencoded "+02:00" arrives as " 02:00" (a query string's "+" is a space).
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+ -]\d{2}:?\d{2})?"
)
_TIME_FORMATS = {
    datetime: (_DATE_TIME, "should be an RFC 3339 date-time, such as 2025-01-31T09:00:00Z"),
    date: (_DATE, "should be a date, such as 2025-01-31"),
}


def _time_fields(model: type[BaseModel]) -> dict[str, tuple[re.Pattern[str], str]]:
    """The date and date-time fields of `model` (by alias), with the form each must have."""
    fields: dict[str, tuple[re.Pattern[str], str]] = {}
    for name, field in model.model_fields.items():
        annotation = field.annotation
        candidates = (
            get_args(annotation)
            if get_origin(annotation) in (Union, types.UnionType)
            else (annotation,)
        )
        for kind, form in _TIME_FORMATS.items():
            if any(_is_a(c, kind) for c in candidates):
                fields[field.alias or name] = form
                break
    return fields


def _is_a(candidate: Any, kind: type) -> bool:
    # pydantic's AwareDatetime, PastDate... are markers, not subclasses of datetime or date.
    if isinstance(candidate, type) and issubclass(candidate, kind):
        return True
    return getattr(candidate, "__name__", "").endswith(kind.__name__.capitalize())


def _list_fields(model: type[BaseModel]) -> set[str]:
    names: set[str] = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        candidates = (
            get_args(annotation)
            if get_origin(annotation) in (Union, types.UnionType)
            else (annotation,)
        )
        if any(get_origin(c) in (list, set, frozenset, tuple) for c in candidates):
            names.add(field.alias or name)
    return names


def _json_kind(value: object) -> str:
    match value:
        case list():
            return "an array"
        case str():
            return "a string"
        case bool():
            return "a boolean"
        case int() | float():
            return "a number"
        case None:
            return "null"
        case _:
            return "a value"


def _encode_default(value: object) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")  # "12.50", never "1.25E+1"
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
