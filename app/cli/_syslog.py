"""Audit events as syslog messages (RFC 5424), for ``ekms audit tail --format rfc5424`` and
``--syslog udp://HOST:PORT``.

One event is one message::

    <PRI>1 TIMESTAMP HOSTNAME ekms - MSGID [ekms@32473 id="..." actor="..." ...] BOM summary

- PRI: facility 13 (log audit) times 8 plus the severity: 6 (informational) for ``success``,
  5 (notice) for ``denied``, 4 (warning) for ``failure``;
- TIMESTAMP: the event's ``at``; HOSTNAME: this host; PROCID ``-``; MSGID: the action (``-``
  when it is not 1-32 printable ASCII characters);
- one SD-ELEMENT, ``ekms@32473`` (32473 is the documentation enterprise number, RFC 5612),
  carrying every event field that is set (``id``, ``at``, ``actor``, ``action``, ``result``,
  ``module``, ``target``, ``reason``, ``count``) and each ``details`` member as
  ``details.NAME`` (a value that is not a string as compact JSON). PARAM-VALUEs escape ``"``,
  ``\\`` and ``]`` with a backslash (RFC 5424 section 6.3.3); a name that cannot be a
  PARAM-NAME is dropped from the structured data (it stays in nothing else: names are ours);
- MSG: a UTF-8 summary after the BOM, ``actor action result [module|target]``.
"""

from __future__ import annotations

import json
import socket
from typing import Any
from urllib.parse import urlsplit

SD_ID = "ekms@32473"
FACILITY_LOG_AUDIT = 13
SEVERITY = {"success": 6, "denied": 5, "failure": 4}
_FIELDS = ("id", "at", "actor", "action", "result", "module", "target", "reason", "count")
BOM = "\ufeff"


def _printable(text: str, limit: int) -> bool:
    return 0 < len(text) <= limit and all(33 <= ord(c) <= 126 for c in text)


def _param_name(name: str) -> bool:
    return _printable(name, 32) and not any(c in name for c in '= ]"')


def escape_param(value: str) -> str:
    """A PARAM-VALUE: ``"``, ``\\`` and ``]`` backslash-escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def rfc5424(event: dict[str, Any], hostname: str) -> str:
    """The syslog message of one audit event as ``/audit`` returns it (no trailing newline)."""
    severity = SEVERITY.get(str(event.get("result")), 5)
    params = [(name, event[name]) for name in _FIELDS if event.get(name) is not None]
    details = event.get("details") or {}
    params += [(f"details.{name}", value) for name, value in sorted(details.items())]
    sd = " ".join(
        f'{name}="{escape_param(_text(value))}"' for name, value in params if _param_name(name)
    )
    action = str(event.get("action") or "")
    host = hostname if _printable(hostname, 255) else "-"
    where = event.get("module") or event.get("target")
    summary = " ".join(
        str(x) for x in (event.get("actor"), action, event.get("result"), where) if x
    )
    return (
        f"<{FACILITY_LOG_AUDIT * 8 + severity}>1 {event.get('at') or '-'} {host} ekms - "
        f"{action if _printable(action, 32) else '-'} [{SD_ID} {sd}] {BOM}{summary}"
    )


class UdpSyslog:
    """Sends each message as one datagram to ``udp://HOST:PORT`` (RFC 5426)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "udp" or not parts.hostname:
            raise ValueError("the syslog destination must be udp://HOST[:PORT]")
        self.address = (parts.hostname, parts.port or 514)
        family = socket.AF_INET6 if ":" in parts.hostname else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self.hostname = socket.gethostname()

    def send(self, event: dict[str, Any]) -> None:
        self._sock.sendto(rfc5424(event, self.hostname).encode("utf-8"), self.address)

    def close(self) -> None:
        self._sock.close()
