"""The README's walk-through works as written, against `customers run` as a user starts it."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def walkthrough_script(base: str, token: str) -> str:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Walk-through.*?```sh\n(.*?)```", readme, re.S)
    assert block, "the README has no walk-through block"
    script = block.group(1)
    script = script.replace("export BASE=http://127.0.0.1:8080", f"export BASE={base}")
    script = script.replace("export TOKEN=...   # from the output of make run", token)
    return "set -eu\n" + script


@pytest.mark.skipif(shutil.which("curl") is None, reason="the walk-through is written for curl")
def test_readme_walkthrough_runs_against_customers_run(server_data_dir: Path) -> None:
    """`customers run` prints a token, and every command of the README walk-through succeeds."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CUSTOMERS_")},
        "CUSTOMERS_DATA_DIR": str(server_data_dir / "data"),
        "CUSTOMERS_HTTP_PORT": str(port),
    }
    customers = Path(sys.executable).with_name("customers")
    service = subprocess.Popen(
        [str(customers), "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        token = ""
        assert service.stdout is not None
        for line in service.stdout:
            if line.startswith("export TOKEN="):
                token = line.strip()
                break
        assert token, "customers run printed no token"
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while subprocess.run(["curl", "-sf", f"{base}/healthz"], capture_output=True).returncode:
            assert time.monotonic() < deadline, "the gateway did not come up"
            time.sleep(0.2)
        ran = subprocess.run(
            ["bash", "-c", walkthrough_script(base, token)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ran.returncode == 0, ran.stderr
        out = ran.stdout
        assert "HTTP/1.1 201 Created" in out
        assert '"field":"email"' in out  # the duplicate email was refused
        assert '"mobile_phone":"+14155552671"' in out
        assert '"type":"customer.system_installed"' in out
        assert '"content_type":"text/plain"' in out  # the file, sniffed
        assert "hunter2" not in out
    finally:
        service.send_signal(signal.SIGINT)
        status = service.wait(timeout=60)
        service.stdout.close()  # type: ignore[union-attr]
    assert status == 0, "customers run did not stop cleanly on Ctrl-C"
