"""Key access justifications: why a caller uses a key, sent with the call and kept in the audit.

On the wire (gRPC metadata or HTTP header ``x-ekms-justification``) a justification is
``<CODE>[:<free text>]``: one reason code of ``JustificationCode``, then optionally a colon and
1-256 printable ASCII characters saying more (a ticket number, a job name). It is parsed once per
call, by the adapter, into a ``Justification`` carried on the ``Caller``; anything else is
``InvalidInput`` (``JUSTIFICATION_INVALID``) and the call does nothing.

A module access policy may require one (``JustificationRule``): any code, or one of a set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from app.domain.errors import InvalidInput, Reason

JUSTIFICATION_HEADER = "x-ekms-justification"
MAX_TEXT = 256


class JustificationCode(StrEnum):
    """Why a key is used (after Google Cloud's Key Access Justifications, adapted to ekms)."""

    CUSTOMER_INITIATED_ACCESS = "CUSTOMER_INITIATED_ACCESS"
    """The data owner's own application or user, in its normal work."""
    CUSTOMER_INITIATED_SUPPORT = "CUSTOMER_INITIATED_SUPPORT"
    """Support staff acting on a support request the data owner opened."""
    CUSTOMER_AUTHORIZED_WORKFLOW = "CUSTOMER_AUTHORIZED_WORKFLOW"
    """A workflow the data owner approved in advance (an export, a reconciliation run)."""
    OPERATOR_INITIATED_SERVICE = "OPERATOR_INITIATED_SERVICE"
    """The platform's operators, for maintenance: a migration, a repair, a recovery."""
    OPERATOR_INITIATED_REVIEW = "OPERATOR_INITIATED_REVIEW"
    """The platform's operators, for a security, fraud or abuse review."""
    SYSTEM_OPERATION = "SYSTEM_OPERATION"
    """An automated job with no person behind it: rewrap, reindex, backup checks."""
    LEGAL_REQUEST = "LEGAL_REQUEST"
    """A legal obligation: a court order, a regulator's request, a legal hold."""
    BREAK_GLASS = "BREAK_GLASS"
    """Emergency access outside the usual workflows, reviewed afterwards."""


_CODES = {code.value: code for code in JustificationCode}


@dataclass(frozen=True, slots=True)
class Justification:
    """A reason code and optional free text (already checked: see ``parse_justification``)."""

    code: JustificationCode
    text: str = ""
    # The (name, value) pairs the audit records it as: built once, read for every event.
    audit_extra: tuple[tuple[str, str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pairs = [("justification_code", self.code.value)]
        if self.text:
            pairs.append(("justification_text", self.text))
        object.__setattr__(self, "audit_extra", tuple(pairs))

    def __str__(self) -> str:
        return f"{self.code.value}:{self.text}" if self.text else self.code.value


def _printable_ascii(text: str) -> bool:
    return text.isascii() and text.isprintable()


def parse_justification(raw: str) -> Justification:
    """``<CODE>[:<free text>]`` as a ``Justification``; else ``InvalidInput``."""
    code_part, colon, text = raw.partition(":")
    code = _CODES.get(code_part)
    if code is None:
        known = ", ".join(_CODES)
        raise InvalidInput(
            f"{JUSTIFICATION_HEADER} must be <CODE>[:<text>] with CODE one of {known}",
            field=JUSTIFICATION_HEADER,
            reason=Reason.JUSTIFICATION_INVALID,
        )
    if colon and not (0 < len(text) <= MAX_TEXT and _printable_ascii(text)):
        raise InvalidInput(
            f"the text of {JUSTIFICATION_HEADER} after the colon must be 1-{MAX_TEXT} "
            "printable ASCII characters",
            field=JUSTIFICATION_HEADER,
            reason=Reason.JUSTIFICATION_INVALID,
        )
    return Justification(code, text)


def justification_from(values: list[str]) -> Justification | None:
    """The one justification a call sent (``values``: each header or metadata value of that
    name), ``None`` if none; more than one is ``InvalidInput``."""
    if not values:
        return None
    if len(values) > 1:
        raise InvalidInput(
            f"send {JUSTIFICATION_HEADER} at most once",
            field=JUSTIFICATION_HEADER,
            reason=Reason.JUSTIFICATION_INVALID,
        )
    return parse_justification(values[0])


@dataclass(frozen=True, slots=True)
class JustificationRule:
    """What a policy asks of a call's justification: nothing, any code, or one of ``codes``.

    ``codes`` are code names (strings): a stored name this release does not know (a newer
    replica wrote it) stays in the set and matches no call, so it can only refuse, never grant.
    """

    required: bool = False
    codes: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.codes and not self.required:
            raise InvalidInput(
                "justification_codes need require_justification true",
                field="justification_codes",
            )

    @classmethod
    def of(cls, required: bool, codes: frozenset[str]) -> JustificationRule:
        """A rule from a caller's input: every code must be one of ``JustificationCode``."""
        unknown = sorted(code for code in codes if code not in _CODES)
        if unknown:
            raise InvalidInput(
                f"unknown justification codes {unknown}; known: {', '.join(_CODES)}",
                field="justification_codes",
            )
        return cls(required, codes)

    def met_by(self, justification: Justification | None) -> bool:
        if not self.required:
            return True
        if justification is None:
            return False
        return not self.codes or justification.code.value in self.codes


NO_RULE = JustificationRule()
