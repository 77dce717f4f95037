"""JetStream for a synchronous caller: the CRM stream, and batches published until acked.

The follower that drives the relay is synchronous and nats-py is asyncio, so
`JetStreamPublisher` runs one event loop in a daemon thread of its own and the follower's
thread hands it coroutines (`asyncio.run_coroutine_threadsafe`). A batch goes out with
`publish_async` (pipelined on one connection, in order), then every acknowledgement is
awaited under one timeout: `publish` returns only when JetStream has stored, or dropped as
a duplicate, every message, and raises otherwise. It connects on first use, then lets
nats-py reconnect for ever; while it is disconnected `publish` fails at once rather than
filling nats-py's reconnect buffer with batches that will be retried anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import nats
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import PubAck, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from projections.cloudevents import CONTENT_TYPE, STREAM, SUBJECT_PREFIX, Outgoing

__all__ = [
    "DUPLICATE_WINDOW_SECONDS",
    "MAX_AGE_SECONDS",
    "JetStreamPublisher",
    "PublishError",
    "ensure_stream",
    "nats_servers",
    "stream_config",
]

_log = structlog.get_logger("workers.jetstream")
T = TypeVar("T")

DUPLICATE_WINDOW_SECONDS = 600.0
"""How long JetStream remembers a `Nats-Msg-Id`: covers a relay's crash and restart with a
wide margin (the issue asks for at least 2 minutes); each id costs memory for that long."""
MAX_AGE_SECONDS = 7 * 24 * 3600.0
"""JetStream is a transport, not the archive (that is the event store): a week of messages,
so an erased customer's old messages leave the stream within a week."""


class PublishError(Exception):
    """JetStream did not acknowledge every message of a batch (NATS down, refused, timed out)."""


def nats_servers(url: str) -> list[str]:
    """The server list of a (comma-separated) NATS URL setting."""
    return [server.strip() for server in url.split(",") if server.strip()]


def stream_config() -> StreamConfig:
    """The stream every message goes to: file storage, a wide duplicate window."""
    return StreamConfig(
        name=STREAM,
        description="Customer service events and notification requests (CloudEvents).",
        subjects=[f"{SUBJECT_PREFIX}.>"],
        storage=StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
        max_age=MAX_AGE_SECONDS,
    )


async def ensure_stream(js: JetStreamContext) -> None:
    """Create the stream, or bring an existing one to our subjects, window and age.

    Settings we do not own (replicas, placement, limits an operator set) are kept.
    """
    wanted = stream_config()
    try:
        info = await js.stream_info(STREAM)
    except NotFoundError:
        await js.add_stream(wanted)
        _log.info("jetstream_stream_created", stream=STREAM)
        return
    current = info.config
    if (
        current.subjects != wanted.subjects
        or current.duplicate_window != wanted.duplicate_window
        or current.max_age != wanted.max_age
    ):
        current.subjects = wanted.subjects
        current.duplicate_window = wanted.duplicate_window
        current.max_age = wanted.max_age
        await js.update_stream(current)
        _log.info("jetstream_stream_updated", stream=STREAM)


class JetStreamPublisher:
    """One NATS connection, on its own event-loop thread, that publishes acknowledged batches."""

    def __init__(
        self,
        url: str,
        *,
        name: str = "customers-relay",
        connect_timeout: float = 5.0,
        ack_timeout: float = 5.0,
    ) -> None:
        self._url = url
        self._name = name
        self._connect_timeout = connect_timeout
        self._ack_timeout = ack_timeout
        self._client: Client | None = None
        self._js: JetStreamContext | None = None
        self._stream_ready = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._connected = threading.Event()

    # ---- the synchronous face -----------------------------------------------------------

    def publish(self, messages: Sequence[Outgoing]) -> list[PubAck]:
        """Publish in order and wait for every ack; raises PublishError if any is missing."""
        return self._run(self._publish(messages), self._connect_timeout + self._ack_timeout + 5)

    def delete(self, sequences: Sequence[int]) -> None:
        """Delete these messages from the stream (JetStream overwrites them on disk); one
        already gone (deleted before, or aged out) is skipped."""
        if sequences:
            timeout = self._connect_timeout + self._ack_timeout + 0.05 * len(sequences) + 5
            self._run(self._delete(sequences), timeout)

    def wait_connected(self, timeout: float) -> None:
        """Pause up to `timeout` seconds, less if NATS is (or comes back) connected."""
        self._connected.wait(timeout)

    def close(self) -> None:
        """Close the connection and stop the loop thread (idempotent)."""
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._disconnect(), loop).result(5)
        except Exception as error:  # closing is best effort: the process may be going away
            _log.warning("nats_close_failed", error=repr(error))
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=self._loop.run_forever, name=f"{self._name}-loop", daemon=True
                )
                self._thread.start()
            loop = self._loop
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise PublishError(f"no answer from the NATS client in {timeout} s") from None

    # ---- on the loop --------------------------------------------------------------------

    async def _publish(self, messages: Sequence[Outgoing]) -> list[PubAck]:
        js = await self._jetstream()
        futures = []
        try:
            for message in messages:
                headers = {"Nats-Msg-Id": message.msg_id, "Content-Type": CONTENT_TYPE}
                futures.append(
                    await js.publish_async(
                        message.subject, message.body, headers=headers, stream=STREAM
                    )
                )
            async with asyncio.timeout(self._ack_timeout):
                results = await asyncio.gather(*futures, return_exceptions=True)
        except TimeoutError:
            self._stream_ready = False
            waiting = sum(not f.done() for f in futures)
            raise PublishError(f"{waiting} of {len(messages)} messages not acknowledged") from None
        except nats.errors.Error as error:
            self._stream_ready = False
            raise PublishError(f"publishing failed: {error!r}") from error
        finally:
            for future in futures:
                future.cancel()  # no-op for the answered ones; frees nats-py's slots
        refused = [
            (m, r) for m, r in zip(messages, results, strict=True) if not isinstance(r, PubAck)
        ]
        if refused:
            self._stream_ready = False  # "no stream" is one refusal: check it again
            first, reason = refused[0]
            raise PublishError(
                f"{len(refused)} of {len(messages)} messages refused;"
                f" first {first.subject} {first.msg_id}: {reason!r}"
            )
        return list(results)  # type: ignore[arg-type]

    async def _delete(self, sequences: Sequence[int]) -> None:
        js = await self._jetstream()
        for sequence in sequences:
            with contextlib.suppress(NotFoundError):
                await js.delete_msg(STREAM, sequence)

    async def _jetstream(self) -> JetStreamContext:
        if self._client is None:
            self._client = await self._connect()
            self._js = self._client.jetstream()
        if not self._client.is_connected:
            raise PublishError("NATS is not connected (nats-py is reconnecting)")
        assert self._js is not None
        if not self._stream_ready:
            await ensure_stream(self._js)
            self._stream_ready = True
        return self._js

    async def _connect(self) -> Client:
        client = Client()

        async def on_error(error: Exception) -> None:
            _log.debug("nats_error", error=repr(error))

        async def on_disconnected() -> None:
            self._connected.clear()
            _log.warning("nats_disconnected", client=self._name)

        async def on_reconnected() -> None:
            self._connected.set()
            _log.info("nats_reconnected", client=self._name, server=_server(client))

        try:
            # nats-py retries the first connect for ever when reconnects are unlimited.
            async with asyncio.timeout(self._connect_timeout):
                await client.connect(
                    nats_servers(self._url),
                    name=self._name,
                    connect_timeout=max(1, int(self._connect_timeout / 2)),
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=1,
                    error_cb=on_error,
                    disconnected_cb=on_disconnected,
                    reconnected_cb=on_reconnected,
                )
        except (TimeoutError, OSError, nats.errors.Error) as error:
            await client.close()
            raise PublishError(f"cannot connect to NATS: {error!r}") from error
        _log.info("nats_connected", client=self._name, server=_server(client))
        self._connected.set()
        return client

    async def _disconnect(self) -> None:
        if self._client is not None:
            client, self._client, self._js = self._client, None, None
            self._connected.clear()
            await client.close()


def _server(client: Client) -> str | None:
    url = client.connected_url
    return url.netloc if url is not None else None
