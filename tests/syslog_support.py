"""A strict parser of the RFC 5424 messages ``ekms audit tail`` writes (one SD-ELEMENT), for
the tests: the header fields, the structured data's params unescaped, and the MSG."""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEADER = re.compile(
    r"<(?P<pri>\d{1,3})>1 (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) (?P<proc>\S+) (?P<msgid>\S+) "
)
_NAME = re.compile(r"[!#-<>-\\^-~]{1,32}")  # printable ASCII but '=', ' ', ']', '"'


@dataclass
class Message:
    pri: int
    timestamp: str
    hostname: str
    app_name: str
    procid: str
    msgid: str
    sd_id: str
    params: dict[str, str]
    msg: str


def parse(text: str) -> Message:
    header = _HEADER.match(text)
    assert header is not None, text
    at = header.end()
    assert text[at] == "[", text
    at += 1
    sd_id = _NAME.match(text, at)
    assert sd_id is not None
    at = sd_id.end()
    params: dict[str, str] = {}
    while text[at] == " ":
        name = _NAME.match(text, at + 1)
        assert name is not None and text[name.end() : name.end() + 2] == '="', text[at:]
        at = name.end() + 2
        value: list[str] = []
        while text[at] != '"':
            if text[at] == "\\":
                assert text[at + 1] in '"\\]', "only three characters are escaped"
                at += 1
            else:
                assert text[at] != "]", "an unescaped ] inside a PARAM-VALUE"
            value.append(text[at])
            at += 1
        params[name.group()] = "".join(value)
        at += 1
    assert text[at] == "]", text[at:]
    rest = text[at + 1 :]
    assert rest.startswith(" \ufeff"), "MSG is UTF-8 with its BOM"
    return Message(
        pri=int(header["pri"]),
        timestamp=header["ts"],
        hostname=header["host"],
        app_name=header["app"],
        procid=header["proc"],
        msgid=header["msgid"],
        sd_id=sd_id.group(),
        params=params,
        msg=rest[2:],
    )
