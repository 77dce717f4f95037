"""How a handler declares its HTTP operation, for the OpenAPI document.

A handler states its contract once, beside its code, with `@operation(...)`: summary, tag,
request model, response models per status, query and path models, If-Match, response
headers and the extra errors it can answer. Method and path are not repeated: they come
from the route the handler is registered on (`routes.py`), which `openapi.build_openapi`
walks. The decorator only attaches this metadata; the handler itself is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

__all__ = ["Body", "IfMatch", "Operation", "operation", "operation_of"]

H = TypeVar("H", bound=Callable[..., Any])
IfMatch = Literal["required", "optional"]

_ATTR = "__gateway_operation__"


@dataclass(frozen=True, slots=True)
class Body:
    """A request or response body: a pydantic model, or a raw schema for other media types."""

    model: type[BaseModel] | None = None
    media_type: str = "application/json"
    description: str | None = None
    schema: Mapping[str, Any] | None = None
    required: bool = True
    also_as: tuple[str, ...] = ()
    """Other media types the same body can be sent as (chosen by the request's Accept)."""
    variants: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Other media types a request body may come as, each with its own schema (a file as
    the raw body or as a multipart form's part)."""


@dataclass(frozen=True, slots=True)
class Operation:
    """What a handler declares about itself (method and path come from its route)."""

    summary: str
    tag: str
    description: str = ""
    request: Body | None = None
    responses: Mapping[int, Body] = field(default_factory=lambda: {200: Body()})
    query: type[BaseModel] | None = None
    path: type[BaseModel] | None = None
    if_match: IfMatch | None = None
    response_headers: tuple[str, ...] = ()
    errors: tuple[int, ...] = ()
    deprecated: bool = False
    operation_id: str | None = None


def operation(
    summary: str,
    *,
    tag: str,
    description: str = "",
    request: type[BaseModel] | Body | None = None,
    responses: Mapping[int, type[BaseModel] | Body | None] | None = None,
    query: type[BaseModel] | None = None,
    path: type[BaseModel] | None = None,
    if_match: IfMatch | None = None,
    response_headers: Iterable[str] = (),
    errors: Iterable[int] = (),
    deprecated: bool = False,
    operation_id: str | None = None,
) -> Callable[[H], H]:
    """Declare a handler's operation for the OpenAPI document; the handler is unchanged."""
    declared = Operation(
        summary=summary,
        tag=tag,
        description=description,
        request=_body(request) if request is not None else None,
        responses={s: _body(b) for s, b in (responses or {200: None}).items()},
        query=query,
        path=path,
        if_match=if_match,
        response_headers=tuple(response_headers),
        errors=tuple(errors),
        deprecated=deprecated,
        operation_id=operation_id,
    )

    def decorate(handler: H) -> H:
        setattr(handler, _ATTR, declared)
        return handler

    return decorate


def operation_of(handler: object) -> Operation | None:
    """The operation a handler declared, if any."""
    return getattr(handler, _ATTR, None)


def _body(value: type[BaseModel] | Body | None) -> Body:
    if value is None:
        return Body()
    return value if isinstance(value, Body) else Body(model=value)
