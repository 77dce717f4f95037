"""Workers: the `customers` command and the long-running processes it supervises.

`python -m workers` (console script `customers`) runs the service locally, migrates the
database, issues tokens and starts the embedded servers; see `workers.__main__`. The
projection runners and the NATS relay will live here beside it.
"""

from __future__ import annotations

__all__: list[str] = []
