"""Reading the gateway's answers in end-to-end tests: the body of a success, or of a problem."""

from __future__ import annotations

from typing import Any

PROBLEM = "application/problem+json"


async def ok(response: Any, status: int = 200) -> Any:
    """The JSON body of an answer that must have `status`."""
    assert response.status == status, await response.text()
    return await response.json()


async def problem(response: Any, status: int) -> dict[str, Any]:
    """The problem+json body of an answer that must have `status`."""
    assert response.status == status, await response.text()
    assert response.headers["Content-Type"].startswith(PROBLEM)
    body: dict[str, Any] = await response.json()
    return body
