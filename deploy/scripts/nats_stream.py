"""Create the CRM stream replicated on a NATS cluster, or bring an existing one to N replicas.

The relay creates the stream itself when it is missing, with one replica (all a single
server has). On a cluster, run this once before the relay starts, and again to change the
replica count; the relay keeps whatever replica count it finds. Subjects, storage,
duplicate window and age come from the service's own `workers.jetstream.stream_config`,
so this script and the relay never disagree about them.

    CUSTOMERS_NATS_URL=nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222 \
        python nats_stream.py --replicas 3

It waits (up to --timeout seconds) for the cluster to elect a JetStream meta leader, so it
can start together with the NATS servers. Exit status 0 when the stream has the replicas.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

import nats
from nats.js.errors import NotFoundError

from workers.jetstream import nats_servers, stream_config


async def ensure_replicated_stream(url: str, replicas: int, wait_seconds: float) -> str:
    """Create or update the stream; return what was done. Retries for `wait_seconds`."""
    deadline = time.monotonic() + wait_seconds
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            return await _attempt(url, replicas)
        except (nats.errors.Error, OSError, TimeoutError) as error:
            # No meta leader yet, a server still starting, a peer not yet caught up...
            last_error = error
            await asyncio.sleep(1)
    raise TimeoutError(f"stream not ready after {wait_seconds:.0f} s: {last_error!r}")


async def _attempt(url: str, replicas: int) -> str:
    client = await nats.connect(
        nats_servers(url), connect_timeout=2, allow_reconnect=False, max_reconnect_attempts=1
    )
    try:
        js = client.jetstream(timeout=5)
        wanted = stream_config()
        wanted.num_replicas = replicas
        try:
            info = await js.stream_info(wanted.name or "")
        except NotFoundError:
            await js.add_stream(wanted)
            return f"created {wanted.name} with {replicas} replicas"
        current = info.config
        if current.num_replicas == replicas:
            return f"{wanted.name} already has {replicas} replicas"
        current.num_replicas = replicas
        await js.update_stream(current)
        return f"updated {wanted.name} to {replicas} replicas"
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=3, help="stream replicas (default 3)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to keep trying")
    parser.add_argument(
        "--url",
        default=os.environ.get("CUSTOMERS_NATS_URL"),
        help="NATS URL(s), comma-separated (default: $CUSTOMERS_NATS_URL)",
    )
    arguments = parser.parse_args(argv)
    if not arguments.url:
        print("CUSTOMERS_NATS_URL: required (or --url)", file=sys.stderr)
        return 2
    try:
        print(
            asyncio.run(
                ensure_replicated_stream(arguments.url, arguments.replicas, arguments.timeout)
            )
        )
    except TimeoutError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
