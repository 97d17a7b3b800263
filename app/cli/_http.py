"""The admin commands' HTTP client of the REST API (``/api/v1``).

The server decides everything; the client only calls and decodes. A problem answer is printed as
``error: <status> <reason>: <detail>`` (with its field errors) and exits 1; so does a server that
cannot be reached.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import typer

from app.cli._render import errors, fail

DEFAULT_URL = "http://127.0.0.1:8080"
API = "/api/v1"


@dataclass(frozen=True)
class Client:
    """Where ekms is (``url``) and who calls it (``token``, a bearer token, or none)."""

    url: str
    token: str | None

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
            _print_problem(response)
            raise typer.Exit(1)
        return response.json() if response.content else None


def _print_problem(response: httpx.Response) -> None:
    try:
        problem = response.json()
    except ValueError:
        problem = {}
    if not isinstance(problem, dict):
        problem = {}
    reason = problem.get("reason", "")
    detail = problem.get("detail", response.reason_phrase)
    errors.print(f"[red]error:[/red] {response.status_code} {reason}: {detail}")
    for item in problem.get("errors") or []:
        errors.print(f"  - {item.get('field')}: {item.get('message')}")
    if response.status_code == 401:
        errors.print("  (set EKMS_TOKEN or pass --token; mint one with `ekms token`)")
