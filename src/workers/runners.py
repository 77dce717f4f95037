"""Run followers (the read models, the NATS relay) in one process until told to stop.

Each follower runs in a thread of its own and is restarted after a failure (the database
went away, the sink raised) from its saved position, after a pause: a crash costs a
retry, never an event. The process stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

import structlog
from prometheus_client import start_http_server

from domain.service import CustomerService
from infrastructure.eventstore import build_service_once_reachable
from infrastructure.settings import Settings
from projections.base import PoisonEventError, PoisonPolicy
from projections.catalog import READ_MODELS, open_read_model
from projections.duplicate_queries import attach_duplicate_lookup
from workers.follower import Follower, Sink
from workers.imports import ImportWorker
from workers.log_tail import LogTail
from workers.relay import check_relay_settings, open_relay
from workers.wakeups import LogWakeups

__all__ = ["IMPORT_WORKER", "SINKS", "follower_names", "run_followers"]

_log = structlog.get_logger("workers")
RESTART_PAUSE_SECONDS = 2.0

SinkFactory = Callable[[Settings, CustomerService], Sink]


def _read_model(name: str) -> SinkFactory:
    def open_sink(settings: Settings, _: CustomerService) -> Sink:
        model = open_read_model(settings, name, poison=PoisonPolicy(stop=settings.stop_on_poison))
        model.migrate()
        return model

    return open_sink


def _sinks() -> dict[str, SinkFactory]:
    sinks: dict[str, SinkFactory] = {name: _read_model(name) for name in READ_MODELS}
    sinks.update(SINKS)
    return sinks


SINKS: dict[str, SinkFactory] = {"relay": open_relay}
"""Followers that are not read models (the NATS relay), one line each."""


IMPORT_WORKER = "import"
"""Not a follower of the log: the worker that registers uploaded customer files."""


def follower_names() -> list[str]:
    return sorted(_sinks())


def run_followers(
    settings: Settings, names: list[str], stop: threading.Event | None = None
) -> None:
    """Run the named followers until `stop` is set (or SIGTERM/SIGINT in the main thread)."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():

        def on_signal(signum: int, _: FrameType | None) -> None:
            _log.info("stopping", signal=signal.Signals(signum).name)
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    assert settings.database_url is not None
    if "relay" in names:
        check_relay_settings(settings)
    if settings.worker_metrics_port is not None:
        # The relay's per-event ack latency and the followers' gauges live in this process.
        start_http_server(settings.worker_metrics_port, addr=settings.http_host)
    service = build_service_once_reachable(settings, stop, pause=RESTART_PAUSE_SECONDS)
    if service is None:
        return  # told to stop before the database answered
    sinks = _sinks()
    # One listening connection for the whole process, however many followers it runs.
    wakeups = LogWakeups(settings.database_url, service.recorder.channel_name)  # type: ignore[attr-defined]
    # And one read of the new records per wake-up, however many followers want them.
    tail = LogTail(service, wakeups)
    threads = [
        threading.Thread(
            target=_keep_running,
            args=(name, sinks[name], settings, service, tail, stop),
            name=name,
        )
        for name in names
        if name != IMPORT_WORKER
    ]
    if IMPORT_WORKER in names:
        # Its created rows report their likely duplicates, as registrations over HTTP do.
        attach_duplicate_lookup(service, settings.db_schema)
        threads.append(
            threading.Thread(
                target=_keep_importing, args=(settings, service, stop), name=IMPORT_WORKER
            )
        )
    for thread in threads:
        thread.start()
    try:
        # Until told to stop: a follower halted on a poison event leaves the others running.
        stop.wait()
    finally:
        stop.set()
        wakeups.wake()
        for thread in threads:
            thread.join()
        wakeups.stop()
        service.close()


def _keep_running(
    name: str,
    open_sink: SinkFactory,
    settings: Settings,
    service: CustomerService,
    tail: LogTail,
    stop: threading.Event,
) -> None:
    assert settings.database_url is not None
    while not stop.is_set():
        try:
            sink = open_sink(settings, service)
            Follower(
                name,
                service,
                sink,
                settings.database_url,
                wakeups=tail.wakeups,
                tail=tail,
                stop_event=stop,
            ).run()
        except PoisonEventError as error:
            _log.error("follower_stopped_on_poison", follower=name, error=str(error))
            return
        except Exception:
            _log.exception("follower_failed", follower=name, restart_in=RESTART_PAUSE_SECONDS)
            stop.wait(RESTART_PAUSE_SECONDS)


def _keep_importing(settings: Settings, service: CustomerService, stop: threading.Event) -> None:
    assert settings.database_url is not None
    while not stop.is_set():
        try:
            ImportWorker(
                service, settings.database_url, schema=settings.db_schema, stop_event=stop
            ).run()
        except Exception:
            _log.exception("import_worker_failed", restart_in=RESTART_PAUSE_SECONDS)
            stop.wait(RESTART_PAUSE_SECONDS)
