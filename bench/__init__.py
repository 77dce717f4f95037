"""`python -m bench`: the service's performance, measured in one run on one PostgreSQL.

The run starts the servers and the service's processes as `make run` does, then measures
in turn: raw INSERTs into a table shaped like the event table (what the disk and
PostgreSQL allow), registration over HTTP at several concurrencies, latency at half the
peak rate under an open-loop schedule, updates spread and on hot customers, and the
processes' peak memory. Measurements of parts not built yet are written as `null` with
the reason under `not_measured`, never as a guess. See docs/PERFORMANCE.md.
"""

from __future__ import annotations

__all__: list[str] = []
