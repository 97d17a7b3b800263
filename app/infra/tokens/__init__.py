"""Bearer-token verification, written once for the gRPC interceptor and the REST dependency.

    from app.infra.tokens import JwtVerifier, TokenSettings

    verifier = JwtVerifier(TokenSettings(hs256_secret=...), clock)
    caller = await verifier.verify(request.headers.get("authorization"))

Modules: ``_settings`` (configuration), ``_parse`` (Authorization value, JOSE header),
``_keys`` (keys bound to one algorithm each), ``_jwks`` (JWKS fetching and refresh),
``_claims`` (exp/nbf/iat/iss/aud/sub/roles), ``_cache`` (verified-token LRU),
``_verifier`` (``JwtVerifier``), ``_mint`` (``mint_dev_token``). The clock is
``app.application.ports.Clock``; ``VerifiedToken`` is the ``TokenVerifier`` port's value.
"""

from app.application.ports import VerifiedToken
from app.infra.tokens._mint import mint_dev_token
from app.infra.tokens._settings import TokenSettings
from app.infra.tokens._verifier import JwtVerifier, VerifierStats

__all__ = [
    "JwtVerifier",
    "TokenSettings",
    "VerifiedToken",
    "VerifierStats",
    "mint_dev_token",
]
