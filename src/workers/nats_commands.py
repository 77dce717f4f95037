"""The NATS side of the CLI: `customers tail [SUBJECT]` and `customers asyncapi`.

`tail` prints the service's messages as they arrive: the example a consumer team starts
from. It reads the JetStream stream `CRM` through an ordered consumer (ephemeral, no
acks; nats-py recreates it after a gap or a reconnect), from now on by default, from the
beginning with `--all`, or after a position of the event log with `--from-position N`
(the stream is in log order, so a binary search over its sequence numbers finds where to
start). It deduplicates on CloudEvents `source` + `id`, as every consumer should:
JetStream drops republished ids only inside its duplicate window.

A service that must not miss a message uses a durable consumer instead, and acks each
message after its own work is committed:

    sub = await js.pull_subscribe("crm.customer.>", durable="billing", stream="CRM")
    for msg in await sub.fetch(100, timeout=5):
        handle(json.loads(msg.data)); await msg.ack()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import OrderedDict
from pathlib import Path
from typing import Annotated, Any

import nats
import typer
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from infrastructure.settings import ENV_PREFIX, Settings, load_settings
from projections.asyncapi import asyncapi_yaml
from projections.cloudevents import STREAM
from workers.jetstream import nats_servers

__all__ = ["asyncapi", "tail"]

_REMEMBERED_IDS = 100_000


def tail(
    subject: Annotated[str, typer.Argument(help="Subject filter, e.g. crm.customer.>")] = "crm.>",
    from_position: Annotated[
        int | None, typer.Option(help="Start after this position of the event log.")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Start at the stream's beginning.")] = False,
    count: Annotated[int | None, typer.Option(min=1, help="Stop after this many.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Whole CloudEvents, one a line.")] = False,
) -> None:
    """Print CloudEvents from NATS live (or from a position), one line each."""
    url = _nats_url(load_settings())
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_tail(url, subject, from_position, all_, count, as_json))


def asyncapi(
    output: Annotated[
        Path | None, typer.Option(help="Write here (deploy/asyncapi.yaml) instead of stdout.")
    ] = None,
) -> None:
    """Print the AsyncAPI 3.0 document of the NATS messages (YAML)."""
    if output is None:
        typer.echo(asyncapi_yaml(), nl=False)
    else:
        output.write_text(asyncapi_yaml())


async def _tail(
    url: str, subject: str, after: int | None, all_: bool, count: int | None, as_json: bool
) -> None:
    client = await nats.connect(nats_servers(url), name="customers-tail", connect_timeout=5)
    try:
        js = client.jetstream()
        config = ConsumerConfig(deliver_policy=DeliverPolicy.ALL if all_ else DeliverPolicy.NEW)
        if after is not None:
            start = await _first_sequence_after(js, subject, after)
            config = ConsumerConfig(deliver_policy=DeliverPolicy.NEW)
            if start is not None:
                config = ConsumerConfig(
                    deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start
                )
        seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        done = asyncio.Event()
        printed = 0

        async def show(message: Any) -> None:
            nonlocal printed
            event = json.loads(message.data)
            key = (event.get("source", ""), event.get("id", ""))
            if done.is_set() or key in seen or event.get("position", 0) <= (after or 0):
                return
            seen[key] = None
            if len(seen) > _REMEMBERED_IDS:
                seen.popitem(last=False)
            typer.echo(json.dumps(event) if as_json else _line(event))
            printed += 1
            if count is not None and printed >= count:
                done.set()

        subscription = await js.subscribe(
            subject, stream=STREAM, cb=show, ordered_consumer=True, config=config
        )
        await done.wait()
        await subscription.unsubscribe()
    finally:
        await client.close()


async def _first_sequence_after(js: JetStreamContext, subject: str, position: int) -> int | None:
    """The stream sequence of the first message on `subject` after `position`, if any."""
    info = await js.stream_info(STREAM)
    low, high, found = info.state.first_seq, info.state.last_seq, None
    while low <= high:
        middle = (low + high) // 2
        try:
            # The first message on the subject at or after `middle` (skips deleted ones).
            message = await js.get_msg(STREAM, seq=middle, subject=subject, next=True)
        except NotFoundError:
            high = middle - 1
            continue
        if json.loads(message.data or b"{}").get("position", 0) > position:
            found, high = message.seq, middle - 1
        else:
            low = (message.seq or middle) + 1
    return found


def _line(event: dict[str, Any]) -> str:
    data = json.dumps(event.get("data"), separators=(",", ":"))
    return (
        f"{event.get('position', '-'):>8} {event.get('time', '')} {event.get('type', '')}"
        f" {event.get('subject', '')} {event.get('actor', '')} {data}"
    )


def _nats_url(settings: Settings) -> str:
    """The configured URL, else the NATS that `customers run` started in the data folder."""
    if settings.nats_url is not None:
        return settings.nats_url
    try:
        state = json.loads((Path(settings.data_dir) / "nats" / "server.json").read_text())
        return f"nats://127.0.0.1:{int(state['port'])}"
    except (OSError, ValueError, KeyError):
        typer.echo(
            f"{ENV_PREFIX}NATS_URL is not set and no local NATS is running"
            " (start `customers run`, or set the URL)",
            err=True,
        )
        raise typer.Exit(2) from None
