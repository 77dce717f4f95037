"""Log lines: ours (structlog) and the libraries' (stdlib logging), one JSON line each."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import orjson
import pytest
import structlog

from infrastructure.logs import configure_logging


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers, root.level = handlers, level
    structlog.reset_defaults()


@pytest.mark.usefixtures("restored_logging")
def test_our_lines_and_the_libraries_are_json_lines_with_the_bound_context(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", "json")
    with structlog.contextvars.bound_contextvars(request_id="r-1"):
        structlog.get_logger("gateway.access").info("request", status=201)
        structlog.get_logger("gateway.access").debug("not at INFO")
        logging.getLogger("some.library").warning("careful: %s", "this")
        logging.getLogger("some.library").debug("not at INFO either")
        try:
            raise ValueError("no")
        except ValueError:
            structlog.get_logger("gateway").exception("failed")
    lines = [orjson.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(e["event"], e["level"], e["logger"]) for e in lines] == [
        ("request", "info", "gateway.access"),
        ("careful: this", "warning", "some.library"),
        ("failed", "error", "gateway"),
    ]
    assert all(e["request_id"] == "r-1" and e["timestamp"].endswith("Z") for e in lines)
    assert lines[0]["status"] == 201
    assert lines[2]["exception"][0]["exc_type"] == "ValueError"


@pytest.mark.usefixtures("restored_logging")
def test_console_lines_name_the_logger(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("WARNING", "console")
    structlog.get_logger("gateway").info("not at WARNING")
    structlog.get_logger("gateway").warning("look", n=1)
    err = capsys.readouterr().err
    assert "look" in err and "[gateway]" in err and "n=1" in err
    assert "not at WARNING" not in err


@pytest.mark.usefixtures("restored_logging")
def test_our_lines_follow_stderr_when_it_is_swapped_and_the_old_one_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A logger must not keep the stderr of configure_logging: once that stream is closed
    (pytest's capture between tests, a redirected daemon) writing to it would raise in the
    caller, failing whatever was logging."""
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure_logging("INFO", "json")
    logger = structlog.get_logger("gateway")
    first.close()
    monkeypatch.setattr(sys, "stderr", second)
    logger.warning("still written")
    assert orjson.loads(second.getvalue())["event"] == "still written"
