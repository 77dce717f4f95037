"""The container's health check: GET /healthz on the gateway in this container.

Exit 0 when it answers 200 within the timeout, 1 otherwise (Docker's HEALTHCHECK
contract). The port is the gateway's own setting, `CUSTOMERS_HTTP_PORT` (default 8080);
`CUSTOMERS_HEALTHCHECK_URL` overrides the whole URL. Only the standard library: it runs
in the image's venv but must not depend on the service importing cleanly.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    port = os.environ.get("CUSTOMERS_HTTP_PORT", "8080")
    url = os.environ.get("CUSTOMERS_HEALTHCHECK_URL", f"http://127.0.0.1:{port}/healthz")
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            if answer.status == 200:
                return 0
            print(f"{url}: HTTP {answer.status}", file=sys.stderr)
    except (urllib.error.URLError, OSError) as error:
        print(f"{url}: {error}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
