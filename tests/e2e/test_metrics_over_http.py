"""/metrics shows the event log's head and each read model's position, read at scrape time."""

from __future__ import annotations

import re
from typing import Any


async def test_metrics_show_the_head_of_the_event_log(
    client: Any, bearer: Any, registration: Any
) -> None:
    """After a registration, `event_log_head` is at least its X-Event-Position."""
    created = await client.post("/v1/customers", json=registration(), headers=bearer())
    position = int(created.headers["X-Event-Position"])
    metrics = await (await client.get("/metrics")).text()
    head = re.search(r"^event_log_head (\S+)$", metrics, re.M)
    assert head is not None
    assert float(head.group(1)) >= position
    assert "http_requests_total{" in metrics
