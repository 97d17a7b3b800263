"""``ekms audit tail``'s syslog export (app/cli/_syslog.py): RFC 5424 messages sent over a real
UDP socket to a listener on 127.0.0.1, parsed field by field."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from app.cli._syslog import UdpSyslog, escape_param, rfc5424
from tests.syslog_support import parse

TRICKY = 'say "hi" \\ ] [x]'
EVENT = {
    "id": "00000000-0000-0000-0000-000000000001",
    "at": "2026-01-01T00:00:00.123456Z",
    "actor": 'svc"a]\\b',
    "action": "decrypt",
    "result": "denied",
    "module": "global.payroll",
    "target": None,
    "reason": "JUSTIFICATION_REQUIRED",
    "details": {"justification_text": TRICKY, "decided_by": "p1", "n": {"a": [1, 2]}},
    "count": 3,
}


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)  # only against a hang: the datagram is sent before recv
    try:
        yield sock
    finally:
        sock.close()


def test_an_event_arrives_as_one_rfc5424_datagram(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    sender = UdpSyslog(f"udp://127.0.0.1:{port}")
    try:
        sender.send(EVENT)
        sender.send({**EVENT, "result": "success", "action": "x" * 40, "details": {}})
    finally:
        sender.close()
    first = parse(listener.recv(65535).decode("utf-8"))
    assert first.pri == 13 * 8 + 5  # log audit, notice (denied)
    assert (first.timestamp, first.app_name, first.procid) == (EVENT["at"], "ekms", "-")
    assert first.hostname == socket.gethostname()
    assert (first.msgid, first.sd_id) == ("decrypt", "ekms@32473")
    assert first.params == {
        "id": EVENT["id"],
        "at": EVENT["at"],
        "actor": EVENT["actor"],
        "action": "decrypt",
        "result": "denied",
        "module": "global.payroll",
        "reason": "JUSTIFICATION_REQUIRED",
        "count": "3",
        "details.decided_by": "p1",
        "details.justification_text": TRICKY,
        "details.n": json.dumps({"a": [1, 2]}, separators=(",", ":")),
    }
    assert first.msg == 'svc"a]\\b decrypt denied global.payroll'
    second = parse(listener.recv(65535).decode("utf-8"))
    assert second.pri == 13 * 8 + 6  # informational (success)
    assert second.msgid == "-"  # an action longer than 32 characters is no MSGID
    assert second.params["action"] == "x" * 40


def test_param_values_escape_exactly_quote_backslash_and_bracket() -> None:
    assert escape_param('a"b\\c]d[e=f') == 'a\\"b\\\\c\\]d[e=f'
    line = rfc5424({**EVENT, "details": {"bad name": "v", "ok": "w"}}, "host")
    assert parse(line).params["details.ok"] == "w"
    assert "bad name" not in line  # not a PARAM-NAME: left out rather than breaking the SD


@pytest.mark.parametrize("url", ["tcp://127.0.0.1:514", "udp://", "127.0.0.1:514"])
def test_only_udp_destinations_are_taken(url: str) -> None:
    with pytest.raises(ValueError, match="udp://"):
        UdpSyslog(url)
