"""A write load on a gateway that records what was acknowledged and what went unanswered.

Registrations with an Idempotency-Key, every third followed by a profile change (If-Match
"1"): the fault tests compare what this load was told with what the store, the read
models and the stream hold afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

TIMEOUT = aiohttp.ClientTimeout(total=30)


@dataclass
class Load:
    """Registrations with an Idempotency-Key, every third followed by a profile change."""

    base: str
    token: str
    clients: int = 4
    pause: float = 0.02
    stop: threading.Event = field(default_factory=threading.Event)
    acknowledged: dict[str, str] = field(default_factory=dict)
    """customer id -> Idempotency-Key of every 201."""
    changed: dict[str, int] = field(default_factory=dict)
    """customer id -> the version a 200 to its PATCH named."""
    unanswered: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    """(Idempotency-Key, body) of registrations that got no answer or a 503."""
    statuses: Counter[int | str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    """Answers other than 201/200/503-with-Retry-After: what no fault may cause."""
    thread: threading.Thread | None = None

    def start(self) -> Load:
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self.thread.start()
        return self

    def finish(self) -> None:
        self.stop.set()
        assert self.thread is not None
        self.thread.join(60)
        assert not self.thread.is_alive(), "the load did not stop"

    def answered(self, status: int | str) -> int:
        return self.statuses[status]

    async def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with aiohttp.ClientSession(headers=headers, timeout=TIMEOUT) as http:
            await asyncio.gather(*(self._client(http) for _ in range(self.clients)))

    async def _client(self, http: aiohttp.ClientSession) -> None:
        sent = 0
        while not self.stop.is_set():
            sent += 1
            key = secrets.token_hex(12)
            body = {"first_name": "Fault", "last_name": "Load", "email": f"{key}@example.com"}
            try:
                customer_id = await self._register(http, key, body)
            except aiohttp.ClientConnectorError as error:
                # Refused before anything was sent (the gateway is restarting): a final
                # check that the store holds only answered ones covers these too.
                self.statuses[type(error).__name__] += 1
                await asyncio.sleep(0.1)
                continue
            except (aiohttp.ClientError, TimeoutError) as error:
                self.statuses[type(error).__name__] += 1
                self.unanswered.append((key, body))
                customer_id = None
            if customer_id is not None and sent % 3 == 0:
                # A change lost with its connection is no acknowledged command: not retried.
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    await self._change(http, customer_id)
            await asyncio.sleep(self.pause)

    def retry_unanswered(self) -> dict[str, str]:
        """Send every unanswered registration again with its key: customer id -> key."""

        async def retry() -> dict[str, str]:
            headers = {"Authorization": f"Bearer {self.token}"}
            created: dict[str, str] = {}
            async with aiohttp.ClientSession(headers=headers, timeout=TIMEOUT) as http:
                for key, body in self.unanswered:
                    url = f"{self.base}/v1/customers"
                    async with http.post(url, json=body, headers={"Idempotency-Key": key}) as r:
                        assert r.status == 201, await r.text()
                        created[str((await r.json())["id"])] = key
            return created

        return asyncio.run(retry())

    async def _register(
        self, http: aiohttp.ClientSession, key: str, body: dict[str, str]
    ) -> str | None:
        url = f"{self.base}/v1/customers"
        async with http.post(url, json=body, headers={"Idempotency-Key": key}) as answer:
            self._count(answer, await answer.text())
            if answer.status != 201:
                self.unanswered.append((key, body))
                return None
            customer_id = str((await answer.json())["id"])
        self.acknowledged[customer_id] = key
        return customer_id

    async def _change(self, http: aiohttp.ClientSession, customer_id: str) -> None:
        url = f"{self.base}/v1/customers/{customer_id}"
        patch = {"group": "faults"}
        async with http.patch(url, json=patch, headers={"If-Match": '"1"'}) as answer:
            self._count(answer, await answer.text())
            if answer.status == 200:
                self.changed[customer_id] = int(answer.headers["ETag"].strip('"'))

    def _count(self, answer: aiohttp.ClientResponse, text: str) -> None:
        self.statuses[answer.status] += 1
        if answer.status in (200, 201):
            return
        if answer.status == 503 and answer.headers.get("Retry-After", "").isdigit():
            return
        self.unexpected.append(f"{answer.method} {answer.url.path}: {answer.status} {text}")
