"""Schemathesis against the served /openapi.json: no 5xx, and every answer as documented.

Every operation the document declares is fuzzed (so operations added later are covered
without a line here), first one by one with valid and invalid inputs, then statefully
along the document's links (register, then read, change, block, delete what was made).
The requests go over TCP to a real gateway on real PostgreSQL and NATS (`live_gateway`),
with an admin token, and once more with a customer's token, which must see only 404s and
its own record but never a server error. Afterwards every read model must have applied
every event the fuzzer caused: nothing it sent may be stored and then fail downstream.

CI cost and reproducibility: few examples per operation, a fixed seed, derandomized, and
no Hypothesis example database, so a run is the same run everywhere. More examples, to
hunt locally: `FUZZ_EXAMPLES=200 .venv/bin/pytest tests/fuzz -q`.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

import pytest
import requests
import schemathesis
from cryptography.fernet import Fernet
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway import create_app
from gateway.openapi import build_openapi
from infrastructure.settings import Settings

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(900),
    # The live gateway runs in this process: its connection pools draw their retry jitter
    # from `random` in their own threads while Hypothesis draws, which Hypothesis takes
    # for a strategy using `random`. The strategies here use none.
    pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies"),
]

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))
"""Examples per operation (valid, and again invalid): the document in a few minutes."""
STATEFUL_EXAMPLES = int(os.environ.get("FUZZ_STATEFUL_EXAMPLES", "20"))
STATEFUL_STEPS = 10
"""Walks along the links, and the steps of each."""
SEED = 20261201

SHORT_WAIT_MS = 50
MAX_WAIT_MS = 30_000
"""`ReadQuery.wait_ms`'s bound: a larger value must stay, to be refused."""
"""The longest `wait_ms` a fuzzed read sends: a made-up `min_position` waits that long."""


@schemathesis.hook
def map_query(context: Any, query: dict[str, Any] | None) -> dict[str, Any] | None:
    """Cap a valid `wait_ms` (an invalid one stays, to be refused) so waits stay short."""
    if query and "min_position" in query:
        wait = query.get("wait_ms", SHORT_WAIT_MS)
        if isinstance(wait, int) and not isinstance(wait, bool) and 0 <= wait <= MAX_WAIT_MS:
            query["wait_ms"] = min(wait, SHORT_WAIT_MS)
    return query


def no_server_error_but_a_documented_wait(ctx: Any, response: Any, case: Any) -> bool | None:
    """No 5xx, except the contract's 503 + Retry-After for a `min_position` not yet reached
    (API.md: a read waits up to `wait_ms`, else 503): a made-up position is such a one."""
    waited = (
        response.status_code == 503
        and "min_position" in (case.query or {})
        and "retry-after" in response.headers  # lower-cased by schemathesis
    )
    return None if waited else not_a_server_error(ctx, response, case)


CHECKS = [
    no_server_error_but_a_documented_wait,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
"""What every answer must satisfy: no 5xx, a documented status, media type, headers and
body, and invalid input (by the document) refused with a 4xx."""

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="session")
def served_document(live_gateway: Any) -> dict[str, Any]:
    """The document the live gateway serves, fetched as a client would."""
    answer = requests.get(f"{live_gateway.base_url}/openapi.json", timeout=30)
    assert answer.status_code == 200
    document: dict[str, Any] = answer.json()
    return document


def load_schema(document: dict[str, Any], base_url: str, token: str) -> schemathesis.BaseSchema:
    """The document loaded by schemathesis, aimed at `base_url` with `token`, seeded for CI."""
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "base-url": base_url,
            # The token is the run's, never negated: an invalid one would only test the 401.
            "generation": {
                "deterministic": True,
                "database": "none",
                "with-security-parameters": False,
            },
            "auth": {"openapi": {"bearerAuth": {"bearer": token}}},
            # Walks along links send valid requests, so that they reach deep: invalid input
            # is what the per-operation tests send.
            # Only the document's own links: inferred ones start walks at made-up ids.
            "phases": {
                "stateful": {"generation": {"mode": "positive"}, "inference": {"algorithms": []}}
            },
        }
    )
    return schemathesis.openapi.from_dict(document, config=config)


@pytest.fixture(scope="session")
def admin_schema(live_gateway: Any, served_document: dict[str, Any]) -> schemathesis.BaseSchema:
    """The served document, called with an admin token."""
    return load_schema(served_document, live_gateway.base_url, live_gateway.token("admin"))


@pytest.fixture(scope="session")
def customer_schema(
    live_gateway: Any, served_document: dict[str, Any], http: requests.Session
) -> schemathesis.BaseSchema:
    """The served document, called with the token of a customer who exists."""
    staff = {"Authorization": f"Bearer {live_gateway.token('staff')}"}
    answer = http.post(
        f"{live_gateway.base_url}/v1/customers",
        json={"first_name": "Fuzz", "email": f"{secrets.token_hex(6)}@example.com"},
        headers=staff,
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    token = live_gateway.token("customer", sub="fuzzed-customer", customer_id=answer.json()["id"])
    return load_schema(served_document, live_gateway.base_url, token)


@pytest.fixture(scope="session")
def http() -> requests.Session:
    return requests.Session()


def _declared_operations() -> dict[str, dict[str, Any]]:
    """Every operation the gateway declares, by id, read at collection from an app with no
    service (the same routes and declarations the live gateway serves: a test checks that)."""
    app = create_app(
        Settings(
            jwt_secret=secrets.token_urlsafe(32),
            secret_key=Fernet.generate_key().decode(),
            # As the live gateway: pet care, the business type with the most routes.
            business_type="pet_care",
        )
    )
    document = build_openapi(app)
    return {op["operationId"]: op for path in document["paths"].values() for op in path.values()}


def _can_be_invalid(operation: dict[str, Any]) -> bool:
    # The request id takes any string: an operation with nothing else has no invalid input.
    others = [
        p for p in operation["parameters"] if p.get("$ref", "").split("/")[-1] != "X-Request-ID"
    ]
    return bool(others) or "requestBody" in operation


OPERATIONS = _declared_operations()
OPERATION_IDS = sorted(OPERATIONS)
CASES = [
    pytest.param(operation_id, mode, id=f"{operation_id}-{mode.value}")
    for operation_id in OPERATION_IDS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or _can_be_invalid(OPERATIONS[operation_id])
]


def test_the_served_document_declares_the_operations_fuzzed_here(
    served_document: dict[str, Any],
) -> None:
    """The live gateway serves the operations collected here, so none goes unfuzzed."""
    served = sorted(
        op["operationId"] for path in served_document["paths"].values() for op in path.values()
    )
    assert served == OPERATION_IDS


def fuzz_operation(
    schema: schemathesis.BaseSchema, operation_id: str, mode: GenerationMode
) -> None:
    """Run the checks on `FUZZ_SETTINGS.max_examples` generated requests to one operation."""
    operation = schema.find_operation_by_id(operation_id)  # type: ignore[attr-defined]
    session = requests.Session()

    @FUZZ_SETTINGS
    @given(case=operation.as_strategy(generation_mode=mode))
    def fuzz(case: schemathesis.Case) -> None:
        case.call_and_validate(session=session, checks=CHECKS)

    try:
        fuzz()
    finally:
        session.close()


@pytest.mark.parametrize(("operation_id", "mode"), CASES)
def test_every_operation_with_an_admin_token(
    operation_id: str, mode: GenerationMode, admin_schema: schemathesis.BaseSchema
) -> None:
    """Any input an admin sends, valid or not, gets a documented answer and never a 5xx."""
    fuzz_operation(admin_schema, operation_id, mode)


@pytest.mark.parametrize(("operation_id", "mode"), CASES)
def test_every_operation_with_a_customer_token(
    operation_id: str, mode: GenerationMode, customer_schema: schemathesis.BaseSchema
) -> None:
    """A customer's token on any operation gets a documented answer (404 where not its own)."""
    fuzz_operation(customer_schema, operation_id, mode)


def run_statefully(schema: schemathesis.BaseSchema) -> None:
    """Follow the document's links from operation to operation, checking every answer."""

    class Links(schema.as_state_machine()):  # type: ignore[misc]
        def validate_response(
            self,
            response: schemathesis.Response,
            case: schemathesis.Case,
            additional_checks: Any = None,
            **kwargs: Any,
        ) -> None:
            case.validate_response(response, checks=CHECKS)

    Links.run(
        settings=settings(
            FUZZ_SETTINGS,
            max_examples=STATEFUL_EXAMPLES,
            stateful_step_count=STATEFUL_STEPS,
        )
    )


def test_following_the_links_as_an_admin(admin_schema: schemathesis.BaseSchema) -> None:
    """Register, then read, change, block, add and remove parts of what was made: no 5xx."""
    run_statefully(admin_schema)


def test_following_the_links_as_a_customer(customer_schema: schemathesis.BaseSchema) -> None:
    """The same walks with a customer's token: 404s where not its own, never a 5xx."""
    run_statefully(customer_schema)


def test_every_read_model_applied_every_event_the_fuzzing_caused(live_gateway: Any) -> None:
    """Whatever the fuzzer got stored, every read model could apply: nothing parked."""
    assert live_gateway.parked_after_catching_up() == []
