"""Read-your-writes when a read model lags: 503 with Retry-After, never a wrong answer."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

Client = TestClient[Any, Any]


async def test_a_view_that_has_not_reached_a_real_position_answers_503_with_retry_after(
    client: Client, bearer: Any, registration: Any
) -> None:
    """No tickets follower runs here: a position the log has, that view has not reached."""
    created = await client.post("/v1/customers", json=registration(), headers=bearer())
    position = created.headers["X-Event-Position"]
    response = await client.get(
        "/v1/tickets", params={"min_position": position, "wait_ms": "100"}, headers=bearer()
    )
    assert response.status == 503
    assert int(response.headers["Retry-After"]) > 0
    assert response.content_type == "application/problem+json"
