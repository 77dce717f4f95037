"""The HTTP gateway: a thin aiohttp app in front of the domain service.

It authenticates, validates with pydantic, runs the synchronous service in a bounded
thread pool and maps refusals to RFC 9457 problems; no business rule lives here. A
handler author needs only the names below:

    create_app                         the app factory (tests and `python -m gateway`)
    operation, Body                    declare a handler's OpenAPI operation
    read_json, parse_query, path_uuid  validated body, query string and id (or a 4xx problem)
    require_if_match, optional_if_match, idempotency_key
    json_response, command_headers, etag
    principal, requires, require_role, can_see_customer, Principal
    run_sync                           call the synchronous service off the event loop
    Tab, tab_customer                  a customer's tab: its customer, If-Match, command, answer
    Problem                            raise any HTTP error as problem+json
"""

from __future__ import annotations

from gateway.app import create_app
from gateway.auth import (
    Principal,
    can_see_customer,
    issue_token,
    principal,
    require_role,
    requires,
)
from gateway.keys import SERVICE_KEY, SETTINGS_KEY
from gateway.operations import Body, operation
from gateway.problems import FieldError, Problem
from gateway.requests import (
    command_headers,
    etag,
    idempotency_key,
    json_response,
    optional_if_match,
    parse_query,
    path_uuid,
    read_json,
    require_if_match,
)
from gateway.tabs import Tab, tab_customer
from gateway.threads import run_sync

__all__ = [
    "SERVICE_KEY",
    "SETTINGS_KEY",
    "Body",
    "FieldError",
    "Principal",
    "Problem",
    "Tab",
    "can_see_customer",
    "command_headers",
    "create_app",
    "etag",
    "idempotency_key",
    "issue_token",
    "json_response",
    "operation",
    "optional_if_match",
    "parse_query",
    "path_uuid",
    "principal",
    "read_json",
    "require_if_match",
    "require_role",
    "requires",
    "run_sync",
    "tab_customer",
]
