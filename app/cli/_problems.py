"""A problem answer (RFC 9457 ``application/problem+json``) as the CLI prints it on stderr.

``error: <status> <reason>: <detail>``, then one sentence per field error, naming the field::

    error: 422 INVALID_INPUT: invalid request: name
      - name must be 2 to 4 dot-separated parts (...), e.g. global.payroll.

Everything the server sent is printed as text, never read as rich markup, so a pattern's square
brackets survive. A raw regular expression is replaced by what it asks for, for the fields whose
patterns the CLI knows.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from rich.markup import escape

from app.cli._render import errors

_IDENTIFIER = (
    "must be an SQL identifier: a letter or '_' first, then letters, digits, '_' or '$', "
    "63 characters at most"
)
# What the server's patterns (app/api/schemas) ask for, by field.
_PATTERNS = {
    "name": "must be 2 to 4 dot-separated parts in lower case (letters, digits, '_' or '-', "
    "each part starting with a letter or digit, 63 characters at most), e.g. global.payroll",
    "module": "must be a module name such as global.payroll",
    "table": _IDENTIFIER,
    "column": _IDENTIFIER,
}
_PHRASES = {
    "missing": "is required",
    "extra_forbidden": "is not a field this request takes",
    "uuid_parsing": "must be a full id (a UUID such as 3f2b9c1e-8d4a-4f6b-9c2e-1a2b3c4d5e6f)",
    "uuid_type": "must be a full id (a UUID such as 3f2b9c1e-8d4a-4f6b-9c2e-1a2b3c4d5e6f)",
}
_SHOULD = re.compile(r"^(?:Input|String|List|Value|Dictionary)\s+should\s+")
_HINT_401 = (
    "  (set EKMS_TOKEN or pass --token; mint one with `ekms token`, run with the server's "
    "settings: the same EKMS_DATA_DIR, or the same EKMS_JWT_HS256_SECRET)"
)


def sentence(error: dict[str, Any]) -> str:
    """One field error as a sentence that names the field."""
    field = str(error.get("field") or error.get("location") or "the request")
    location = error.get("location")
    label = f"{field} (in the {location})" if location in ("path", "query") else field
    kind = str(error.get("type", ""))
    message = str(error.get("message", "is invalid")).removeprefix("Value error, ")
    if kind == "string_pattern_mismatch":
        last = field.rsplit(".", 1)[-1]
        phrase = _PATTERNS.get(last, "does not have the expected form")
    elif kind in _PHRASES:
        phrase = _PHRASES[kind]
    elif _SHOULD.match(message):
        phrase = _SHOULD.sub("must ", message)
    else:
        return f"{label}: {message.rstrip('.')}."
    return f"{label} {phrase}."


def print_problem(response: httpx.Response) -> None:
    """Print the problem ``response`` carries (or its status alone) on stderr."""
    try:
        problem = response.json()
    except ValueError:
        problem = {}
    if not isinstance(problem, dict):
        problem = {}
    reason = problem.get("reason", "")
    detail = problem.get("detail", response.reason_phrase)
    errors.print(
        f"[red]error:[/red] {escape(f'{response.status_code} {reason}: {detail}')}", soft_wrap=True
    )
    for item in problem.get("errors") or []:
        if isinstance(item, dict):
            errors.print(f"  - {escape(sentence(item))}", soft_wrap=True)
    if response.status_code == 401:
        errors.print(escape(_HINT_401), soft_wrap=True)
