"""Many clients change the same few customers with If-Match through a real gateway process.

Each client reads a customer, sends a merge patch with the version it read in If-Match,
and on 412 reads again and retries. Every 200 is recorded with the version its ETag
names. Optimistic concurrency is right when the accepted commands, applied one after
the other in version order, give exactly the final state, and each customer's stream
holds each accepted command's events right after the version it read: no two commands
accepted on one version (a lost update), no event without an accepted command.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import aiohttp
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

CUSTOMERS = 3
CLIENTS = 8
CHANGES_PER_CLIENT = 30
CHANGED_FIELDS = ("group", "company_name", "newsletter")


@dataclass(frozen=True)
class Accepted:
    customer_id: str
    read_version: int
    """The version in its If-Match."""
    version: int
    """The version its ETag named: one event later, or two when consent changed too."""
    patch: dict[str, Any]


def _patch(rng: random.Random, client: int, number: int) -> dict[str, Any]:
    """A patch that always changes `group` (so every accepted command is an event)."""
    patch: dict[str, Any] = {"group": f"c{client}-{number}"}
    if rng.random() < 0.5:
        patch["company_name"] = rng.choice(["Ölwerk", "Ⓐcme 株式会社", "O'Brien; DROP", None])
    if rng.random() < 0.5:
        patch["newsletter"] = rng.random() < 0.5
    return patch


async def _client(
    http: aiohttp.ClientSession, base: str, ids: list[str], client: int, accepted: list[Accepted]
) -> int:
    """CHANGES_PER_CLIENT accepted changes; the number of 412s it met on the way."""
    rng = random.Random(client)
    refused = 0
    for number in range(CHANGES_PER_CLIENT):
        customer_id = rng.choice(ids)
        patch = _patch(rng, client, number)
        while True:
            async with http.get(f"{base}/v1/customers/{customer_id}") as read:
                assert read.status == 200, await read.text()
                etag = read.headers["ETag"]
            headers = {"If-Match": etag}
            async with http.patch(
                f"{base}/v1/customers/{customer_id}", json=patch, headers=headers
            ) as answer:
                if answer.status == 412:
                    refused += 1
                    continue
                assert answer.status == 200, await answer.text()
                version = int(answer.headers["ETag"].strip('"'))
            accepted.append(Accepted(customer_id, int(etag.strip('"')), version, patch))
            break
    return refused


def test_concurrent_if_match_changes_equal_their_sequential_application(
    processes: Any, admin_token: str, audit: Any
) -> None:
    """8 clients x 30 If-Match patches on 3 customers: final state = accepted ones in order."""
    processes.start("gateway")
    token = admin_token
    accepted: list[Accepted] = []

    async def run() -> tuple[list[str], list[int]]:
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            ids = []
            for n in range(CUSTOMERS):
                body = {"first_name": "Same", "last_name": f"Customer {n}"}
                async with http.post(f"{processes.base}/v1/customers", json=body) as answer:
                    assert answer.status == 201, await answer.text()
                    ids.append(str((await answer.json())["id"]))
            refused = await asyncio.gather(
                *(_client(http, processes.base, ids, c, accepted) for c in range(CLIENTS))
            )
            return ids, list(refused)

    ids, refused = asyncio.run(run())
    print(f"\nconcurrent changes: {len(accepted)} accepted, {sum(refused)} answered 412")
    assert len(accepted) == CLIENTS * CHANGES_PER_CLIENT
    assert sum(refused) > 0, "the clients never raced: the test proved nothing"

    by_customer: dict[str, list[Accepted]] = defaultdict(list)
    for change in accepted:
        by_customer[change.customer_id].append(change)
    for customer_id in ids:
        changes = sorted(by_customer[customer_id], key=lambda c: c.version)
        # Registered is version 1; each accepted change starts where the one before ended.
        chain = [(c.read_version, c.version) for c in changes]
        assert [start for start, _ in chain] == [1] + [end for _, end in chain[:-1]], chain
        expected: dict[str, Any] = {"group": None, "company_name": None, "newsletter": True}
        for change in changes:
            expected.update(change.patch)
            at_version = audit.service.get_customer(UUID(customer_id), version=change.version)
            assert at_version.version == change.version
            assert at_version.profile.group == change.patch["group"], "a lost update"
        final = audit.service.get_customer(UUID(customer_id))
        assert final.version == changes[-1].version, "an event no accepted command explains"
        actual = {name: getattr(final.profile, name) for name in CHANGED_FIELDS}
        assert actual == {name: expected[name] for name in CHANGED_FIELDS}
