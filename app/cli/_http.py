"""The admin commands' HTTP client of the REST API (``/api/v1``).

The server decides everything; the client only calls and decodes. A problem answer is printed as
``error: <status> <reason>: <detail>`` and exits 1; so does a server that cannot be reached. Each
field error of a 422 follows as a sentence naming the field (``_problems``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import typer

from app.cli._problems import print_problem
from app.cli._render import Output, fail

DEFAULT_URL = "http://127.0.0.1:8080"
API = "/api/v1"


@dataclass(frozen=True)
class Client:
    """Where ekms is (``url``), who calls it (``token``, a bearer token, or none) and how its
    answers are shown (``output``)."""

    url: str
    token: str | None
    output: Output = Output.TABLE

    def call(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        allow: tuple[int, ...] = (),
    ) -> Any:
        """The decoded answer; a problem is printed and exits 1 (unless its status is in allow)."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            with httpx.Client(base_url=self.url.rstrip("/"), timeout=60.0) as http:
                response = http.request(
                    method, API + path, json=body, params=query, headers=headers
                )
        except httpx.HTTPError as exc:
            raise fail(f"cannot reach ekms at {self.url} ({type(exc).__name__})") from None
        if response.status_code in allow:
            return None
        if response.status_code >= 400:
            print_problem(response)
            raise typer.Exit(1)
        return response.json() if response.content else None
