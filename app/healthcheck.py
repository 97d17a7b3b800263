"""The container's ``HEALTHCHECK``: ``GET /livez`` on this host's REST port (standard library
only, so it starts fast).

Over https when ``EKMS_HTTP_TLS_CERT_FILE`` is set, without verifying the certificate: it asks
the local process whether its loop answers, and sends nothing secret. With mutual TLS
(``EKMS_HTTP_TLS_CLIENT_CA_FILE``) it has no client certificate to show, so the server refuses
it: give the container a health command of your own, or rely on the orchestrator's probes.
"""

from __future__ import annotations

import http.client
import os
import ssl
import sys
import urllib.request

TIMEOUT_SECONDS = 2.0


def livez_url() -> tuple[str, ssl.SSLContext | None]:
    port = os.environ.get("EKMS_HTTP_PORT") or "8080"
    if not os.environ.get("EKMS_HTTP_TLS_CERT_FILE"):
        return f"http://127.0.0.1:{port}/livez", None
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the local process; no secret is sent
    return f"https://127.0.0.1:{port}/livez", context


def main() -> int:
    url, context = livez_url()
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS, context=context) as response:  # noqa: S310 - a fixed local URL
            return 0 if response.status == 200 else 1
    except (OSError, http.client.HTTPException):  # refused, reset, not HTTP, timed out
        return 1


if __name__ == "__main__":
    sys.exit(main())
