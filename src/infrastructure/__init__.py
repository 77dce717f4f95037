"""Infrastructure: settings, servers, the database and logging: the service's outside world.

- `settings`: the `CUSTOMERS_*` settings and their validation.
- `local_secrets`: JWT and encryption keys generated once into the local data folder.
- `servers`: embedded PostgreSQL and NATS servers from PyPI wheels (local mode, tests).
- `database`: from a libpq URL to the event store's settings; schema creation; readiness.
- `eventstore`: the event store on PostgreSQL: its migration, and the service built on it.
- `logs`: structlog set-up (JSON or console) shared by every process.

Submodules are imported where used, so importing one does not start or import the others.
"""

from __future__ import annotations

__all__ = ["database", "eventstore", "local_secrets", "logs", "servers", "settings"]
