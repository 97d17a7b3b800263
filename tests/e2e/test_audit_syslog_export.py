"""``ekms audit tail --syslog udp://...`` and ``--format rfc5424``: events written by a live
server reach a real UDP listener on 127.0.0.1 (and a file) as RFC 5424 messages, their fields
in the structured data, escaped."""

from __future__ import annotations

import socket
from pathlib import Path

from app.domain.audit import AuditResult
from tests.e2e.rest_support import AUDITOR, Cli, LiveServer, live_server  # noqa: F401
from tests.syslog_support import parse

TEXT = 'ticket "42" \\ [done]'


async def test_tail_sends_rfc5424_to_a_udp_listener_and_a_file(
    live_server: LiveServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    ekms = Cli(live_server.url)
    await ekms("modules", "create", "global.payroll")
    audit = live_server.container.ctx.audit
    audit.record(
        actor="svc-a",
        action="decrypt",
        result=AuditResult.DENIED,
        module="global.payroll",
        reason="JUSTIFICATION_REQUIRED",
        extra=(("justification_code", "CUSTOMER_INITIATED_SUPPORT"), ("justification_text", TEXT)),
    )
    await audit.flush()
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(10)  # only against a hang: the tail has sent before recv
    try:
        url = f"udp://127.0.0.1:{listener.getsockname()[1]}"
        out = tmp_path / "audit.log"
        tail = ("audit", "tail", "-n", "2", "--syslog", url, "--format", "rfc5424", "--out")
        await ekms(*tail, str(out), roles=(AUDITOR,))
        received = [parse(listener.recv(65535).decode("utf-8")) for _ in range(2)]
    finally:
        listener.close()
    created, denied = received
    assert (created.msgid, created.params["action"]) == ("module.create", "module.create")
    assert created.pri == 13 * 8 + 6 and created.params["result"] == "success"
    assert denied.pri == 13 * 8 + 5 and denied.msgid == "decrypt"
    assert denied.params["details.justification_text"] == TEXT
    assert denied.params["details.justification_code"] == "CUSTOMER_INITIATED_SUPPORT"
    assert (denied.params["actor"], denied.params["count"]) == ("svc-a", "1")
    assert denied.timestamp == denied.params["at"]
    lines = [parse(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [m.params for m in lines] == [m.params for m in received]

    bad = await ekms("audit", "tail", "--syslog", "tcp://127.0.0.1:1", roles=(AUDITOR,), code=2)
    assert "udp://" in bad.output
