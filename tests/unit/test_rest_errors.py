"""The REST boundary's pure parts: the error table, problem bodies, cursors, request ids,
base64 input, status alerts, and the rule that every /api/v1 route declares its access."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from app.api.app import api_routes
from app.api.errors import STATUS_BY_ERROR, headers_for, http_status
from app.api.middleware import request_id_from, route_label
from app.api.problems import problem_body, problem_type
from app.api.schemas.audit import decode_cursor, encode_cursor
from app.api.schemas.config import ConfigIn, StatusOut
from app.api.schemas.crypto import EncryptIn
from app.api.security import DATA_PLANE, SecuredRoute, access_of
from app.application.configuration import EkmsStatus
from app.domain import errors as e
from app.domain.alerts import KEY_UNUSABLE, Alert
from app.domain.values import ExternalKeyStatus, KmsProvider


def _all_error_classes() -> set[type[e.EkmsError]]:
    found: set[type[e.EkmsError]] = set()
    pending: list[type[e.EkmsError]] = [e.EkmsError]
    while pending:
        cls = pending.pop()
        for sub in cls.__subclasses__():
            if sub.__module__ == e.__name__:
                found.add(sub)
                pending.append(sub)
    return found


def test_every_domain_error_class_has_a_status() -> None:
    assert _all_error_classes() <= set(STATUS_BY_ERROR) | {e.AlreadyExists}
    for cls in _all_error_classes():
        error = cls() if cls is e.DecryptionFailed else cls("x")  # type: ignore[call-arg]
        assert 400 <= http_status(error) < 600


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (e.Unauthenticated("x"), 401),
        (e.Forbidden("x"), 403),
        (e.AccessDenied("x"), 403),
        (e.InvalidInput("x", field="name"), 422),
        (e.DecryptionFailed(), 400),
        (e.NotFound("x"), 404),
        (e.Conflict("x"), 409),
        (e.AlreadyExists("x"), 409),
        (e.KeyUnavailable("x"), 409),
        (e.ServiceUnavailable("x"), 503),
    ],
)
def test_status_table(error: e.EkmsError, status: int) -> None:
    assert http_status(error) == status


def test_unknown_subclass_falls_back_to_its_parent() -> None:
    class Special(e.KeyUnavailable):
        pass

    assert http_status(Special("x")) == 409


def test_challenge_and_retry_headers() -> None:
    assert headers_for(e.Unauthenticated("x"), 401, token_given=False) == {
        "WWW-Authenticate": 'Bearer realm="ekms"'
    }
    assert (
        'error="invalid_token"'
        in headers_for(e.Unauthenticated("x"), 401, token_given=True)["WWW-Authenticate"]
    )
    assert headers_for(e.ServiceUnavailable("x"), 503, token_given=True) == {"Retry-After": "5"}
    assert headers_for(e.NotFound("x"), 404, token_given=True) == {}


def test_problem_body_shape() -> None:
    body = problem_body(404, "MODULE_NOT_FOUND", "module 'a.b' does not exist", request_id="r1")
    assert body == {
        "type": "https://ekms.dev/problems/module_not_found",
        "title": "Not Found",
        "status": 404,
        "detail": "module 'a.b' does not exist",
        "reason": "MODULE_NOT_FOUND",
        "request_id": "r1",
    }
    assert problem_type("EXTERNAL_KEY_DISABLED").endswith("/external_key_disabled")


def test_cursor_round_trip_and_refusal() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    event_id = uuid.uuid4()
    assert decode_cursor(encode_cursor(at, event_id)) == (at, event_id)
    for garbage in ("", "!!!", "YTF8", encode_cursor(at, event_id)[:-6]):
        with pytest.raises(e.InvalidInput) as info:
            decode_cursor(garbage)
        assert info.value.field == "cursor"


def test_request_id_is_taken_only_when_sane() -> None:
    assert request_id_from([(b"x-request-id", b"abc-123")]) == "abc-123"
    for bad in (b"", b"has space", b"x" * 129, b"\xff\xfe", b"a\nb"):
        generated = request_id_from([(b"x-request-id", bad)])
        assert generated != bad.decode("latin-1") and len(generated) == 32
    assert route_label({"path": "/api/v1/modules/secret-name"}) == "<unmatched>"


def test_base64_input_is_strict() -> None:
    assert EncryptIn(module="a.b", plaintext="aGk=").plaintext == "aGk="
    for bad in ("aGk", "a$k=", "aGk=\n", "é"):
        with pytest.raises(ValueError, match="base64"):
            EncryptIn(module="a.b", plaintext=bad)


def test_config_update_sends_only_what_the_caller_gave() -> None:
    body = ConfigIn.model_validate({"provider": "aws", "key_id": "k", "sync_interval_minutes": 5})
    assert body.changes() == {
        "provider": KmsProvider.AWS,
        "key_id": "k",
        "sync_interval": timedelta(minutes=5),
    }


def _status(**overrides: object) -> EkmsStatus:
    values: dict[str, object] = {
        "configured": True,
        "active": True,
        "provider": KmsProvider.AWS,
        "key_id": "k",
        "external_key_status": ExternalKeyStatus.ENABLED,
        "status_reason": None,
        "deletion_date": None,
        "last_sync_at": None,
        "unavailable_since": None,
        "serving": True,
        "serving_reason": None,
        "ekek_key_name": None,
        "ekek_rotation_marker": None,
        "ekek_rewrapped_at": None,
        "kek_fingerprint": None,
        "kek_created_at": None,
    }
    values.update(overrides)
    return EkmsStatus(**values)  # type: ignore[arg-type]


def test_status_shows_the_open_alerts() -> None:
    assert StatusOut.of(_status()).alerts == []
    alert = Alert(uuid.uuid4(), KEY_UNUSABLE, "the external key is disabled", datetime.now(UTC))
    out = StatusOut.of(_status(open_alerts=(alert,), serving=False)).alerts
    assert [(a.id, a.kind, a.message) for a in out] == [(alert.id, alert.kind, alert.message)]


def test_every_api_route_declares_exactly_one_access_rule() -> None:
    routes = [r for r in api_routes() if r.path.startswith("/api/v1")]
    # 26 + 3 /ekms/external-keys + 8 /crypto + DELETE /ekms/config + /audit/verify + explain
    assert len(routes) == 52  # with GET /audit/checkpoints, the 10 XKS admin routes, local-kek
    for route in routes:
        assert isinstance(route, SecuredRoute), route.path
        assert len(access_of(route)) == 1, route.path
    data_plane = [r.path for r in routes if access_of(r) == [DATA_PLANE]]
    assert sorted(data_plane) == [
        f"/api/v1/crypto/{name}"
        for name in (
            "data-key",
            "data-key/decrypt",
            "decrypt",
            "decrypt-batch",
            "encrypt",
            "encrypt-batch",
            "mac",
            "mac/verify",
            "rewrap",
            "rewrap-batch",
        )
    ]
    for route in api_routes():
        if not route.path.startswith("/api/v1"):
            assert access_of(route) == [], route.path


def test_a_request_id_is_taken_only_when_it_is_whole() -> None:
    from app.api.middleware import request_id_from

    assert request_id_from([(b"x-request-id", b"trace-123")]) == "trace-123"
    assert request_id_from([(b"x-request-id", b" trace-123\n")]) == "trace-123"  # trimmed
    for bad in (b"trace\n123", b"trace-123\nX-Injected: 1", b"a" * 129, b""):
        got = request_id_from([(b"x-request-id", bad)])
        assert got != bad.decode("latin-1") and len(got) == 32 and "\n" not in got
