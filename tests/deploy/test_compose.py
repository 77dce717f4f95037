"""deploy/compose.yaml, checked without Docker: the compose-spec schema, then its shape.

The schema is the Compose Specification's JSON schema as bundled by check-jsonschema
(`--builtin-schema vendor.compose-spec`), so no network is needed. The shape: PostgreSQL,
three NATS servers routed to each other with JetStream, the stream created with three
replicas before anything publishes, `customers migrate` once before any gateway or worker,
two gateways behind the nginx proxy, and two replicas of every follower the code has and of
the import worker.
Every CUSTOMERS_* variable it sets is a real setting (a typo would be silently ignored).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from infrastructure.settings import ENV_PREFIX, Settings
from workers.runners import IMPORT_WORKER, follower_names

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose.yaml"
NGINX = ROOT / "deploy" / "nginx.conf"
REQUIRED = {
    "POSTGRES_PASSWORD",
    "CUSTOMERS_JWT_SECRET",
    "CUSTOMERS_SECRET_KEY",
    "CUSTOMERS_NOTIFICATION_KEY",
    "CUSTOMERS_KEY_ENCRYPTION_KEY",
}
SETTINGS = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}


def interpolate(value: Any, environ: dict[str, str]) -> Any:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}, recursively; unset required fails."""
    if isinstance(value, dict):
        return {k: interpolate(v, environ) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, environ) for v in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        name, operator, argument = match.group(1), match.group(2), match.group(3) or ""
        if environ.get(name):
            return environ[name]
        if operator == ":?":
            raise LookupError(f"{name}: {argument}")
        return argument if operator == ":-" else ""

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", replace, value)


def load(environ: dict[str, str]) -> dict[str, Any]:
    document: dict[str, Any] = interpolate(yaml.safe_load(COMPOSE.read_text()), environ)
    return document


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load({name: f"test-{name.lower()}" for name in REQUIRED})


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def check_jsonschema() -> str:
    candidate = Path(sys.executable).parent / "check-jsonschema"
    found = str(candidate) if candidate.exists() else shutil.which("check-jsonschema")
    if found is None:
        pytest.fail("check-jsonschema not installed: pip install -c constraints.txt -e '.[dev]'")
    return found


def test_the_compose_file_matches_the_compose_specification() -> None:
    result = subprocess.run(
        [check_jsonschema(), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_catches_a_mistake(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    broken.write_text(
        COMPOSE.read_text().replace(
            "    restart: unless-stopped\n", "    restart_policy: always\n", 1
        )
    )
    result = subprocess.run(
        [check_jsonschema(), "--builtin-schema", "vendor.compose-spec", str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "restart_policy" in result.stdout


def test_secrets_must_be_given() -> None:
    for missing in REQUIRED:
        with pytest.raises(LookupError, match=missing):
            load({name: "x" for name in REQUIRED - {missing}})


def test_postgres_and_a_three_node_nats_cluster_with_jetstream(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["postgres"]["image"].startswith("postgres:")
    postgres_flags = " ".join(services["postgres"]["command"])
    assert "archive_mode=on" in postgres_flags and "wal_level=replica" in postgres_flags
    nodes = sorted(name for name in services if re.fullmatch(r"nats-\d", name))
    assert nodes == ["nats-1", "nats-2", "nats-3"]
    routes = {f"nats://{node}:6222" for node in nodes}
    names = set()
    for node in nodes:
        flags = dict(
            flag.removeprefix("--").split("=", 1) if "=" in flag else (flag[2:], "")
            for flag in services[node]["command"]
        )
        assert "jetstream" in flags and flags["store_dir"] == "/data"
        assert flags["cluster_name"] == "customers"
        assert set(flags["routes"].split(",")) == routes
        assert any(v.endswith(":/data") for v in services[node]["volumes"]), "JetStream on a volume"
        assert "healthcheck" in services[node]
        names.add(flags["name"])
    assert names == set(nodes)
    # The stream gets a replica on every node, before the relay can create it unreplicated.
    stream = services["nats-stream"]
    assert stream["command"][-2:] == ["--replicas", str(len(nodes))]
    assert {n: {"condition": "service_healthy"} for n in nodes} == stream["depends_on"]
    assert environment(stream)["CUSTOMERS_NATS_URL"] == ",".join(f"nats://{n}:4222" for n in nodes)


def test_migrate_runs_once_before_every_gateway_and_worker(compose: dict[str, Any]) -> None:
    services = compose["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["customers", "migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert migrate["depends_on"]["nats-stream"] == {"condition": "service_completed_successfully"}
    ours = [name for name, s in services.items() if s.get("image") == migrate["image"]]
    for name in ours:
        if name in ("migrate", "nats-stream"):
            continue
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"}
        }, name


def test_two_gateways_behind_the_proxy(compose: dict[str, Any]) -> None:
    services = compose["services"]
    gateway = services["gateway"]
    assert gateway["command"] == ["python", "-m", "gateway"]
    assert gateway["deploy"]["replicas"] == 2
    assert "ports" not in gateway, "gateways are reached through the proxy only"
    assert gateway["healthcheck"]["test"] == ["CMD", "python", "/opt/customers/healthcheck.py"]
    assert environment(gateway)["CUSTOMERS_HTTP_HOST"] == "0.0.0.0"
    port = environment(gateway)["CUSTOMERS_HTTP_PORT"]
    proxy = services["proxy"]
    assert proxy["image"].startswith("nginx:")
    assert proxy["depends_on"] == {"gateway": {"condition": "service_healthy"}}
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in proxy["volumes"]
    nginx = NGINX.read_text()
    assert re.search(rf"^\s*server gateway:{port} resolve\b", nginx, re.MULTILINE)
    assert "proxy_pass http://gateways;" in nginx


def test_every_follower_and_the_import_worker_run_twice(compose: dict[str, Any]) -> None:
    """Each follower the code has, and the import worker: its own service, two replicas."""
    services = compose["services"]
    workers = {
        name: s
        for name, s in services.items()
        if s.get("command", [])[:2] == ["customers", "worker"]
    }
    assert {s["command"][2] for s in workers.values()} == {*follower_names(), IMPORT_WORKER}
    for name, service in workers.items():
        assert service["command"] == ["customers", "worker", name]
        assert service["deploy"]["replicas"] == 2, name
        assert service["healthcheck"] == {"disable": True}, "workers serve no HTTP"


def test_every_setting_is_a_real_one_and_secrets_come_from_the_environment(
    compose: dict[str, Any],
) -> None:
    raw = yaml.safe_load(COMPOSE.read_text())
    for name, service in compose["services"].items():
        env = environment(service)
        unknown = {k for k in env if k.startswith(ENV_PREFIX)} - SETTINGS
        assert not unknown, f"{name}: not settings: {unknown}"
        if (
            service.get("image") == compose["services"]["migrate"]["image"]
            and name != "nats-stream"
        ):
            for needed in (
                "DATABASE_URL",
                "NATS_URL",
                "JWT_SECRET",
                "SECRET_KEY",
                "KEY_ENCRYPTION_KEY",
            ):
                assert f"{ENV_PREFIX}{needed}" in env, (name, needed)
        raw_env = environment(raw["services"][name])
        for secret in (
            "CUSTOMERS_JWT_SECRET",
            "CUSTOMERS_SECRET_KEY",
            "CUSTOMERS_NOTIFICATION_KEY",
            "CUSTOMERS_KEY_ENCRYPTION_KEY",
        ):
            if secret in raw_env:
                assert raw_env[secret].startswith("${" + secret + ":?"), "never a literal secret"
    assert all(
        s.get("read_only") for n, s in compose["services"].items() if n in ("gateway", "relay")
    )
    holders = {
        n for n, s in compose["services"].items() if "CUSTOMERS_NOTIFICATION_KEY" in environment(s)
    }
    assert holders == {"relay"}, "the notification key is the relay's alone"


def test_the_nginx_configuration_parses_where_nginx_is_installed(tmp_path: Path) -> None:
    """`nginx -t` on the proxy's configuration (CI has no nginx: then this is skipped)."""
    nginx = shutil.which("nginx")
    if nginx is None:
        pytest.skip("nginx is not installed here; the structure is checked above")
    version = subprocess.run([nginx, "-v"], capture_output=True, text=True).stderr
    text = NGINX.read_text()
    found = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", version)
    if found and tuple(map(int, found.groups())) < (1, 27, 3):
        text = text.replace(" resolve ", " ")  # open-source nginx resolves upstreams since 1.27.3
    # The name `gateway` only resolves inside compose's network.
    text = text.replace("server gateway:", "server 127.0.0.1:")
    config = tmp_path / "nginx.conf"
    config.write_text(text.replace("pid /tmp/nginx.pid;", f"pid {tmp_path}/nginx.pid;"))
    result = subprocess.run(
        [nginx, "-t", "-q", "-c", str(config), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
