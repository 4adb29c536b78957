"""Bearer tokens verified the way the HTTP API's JWT authorizer verifies them.

API Gateway WebSocket APIs have no JWT authorizer, so ``$connect`` checks the
token itself: signature against the issuer's JWKS (found through OIDC
discovery, fetched once per container and refreshed by PyJWT when a token names
an unknown key), ``iss``, ``exp``/``nbf``, and ``aud`` or, for Cognito access
tokens that carry none, ``client_id`` against the configured audiences.
"""

import json
import urllib.request
from functools import cached_property
from typing import Any

import jwt

_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"]
_TIMEOUT_SECONDS = 3


class InvalidToken(Exception):
    """The token is missing, malformed, expired, or not from the configured issuer and audience."""


class KeysUnavailable(Exception):
    """The issuer's keys could not be fetched: a server-side problem, not the client's."""


def discover_jwks_url(issuer: str) -> str:
    """The issuer's jwks_uri from its OpenID Connect discovery document."""
    url = f"{issuer}/.well-known/openid-configuration"
    if not url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
        raise KeysUnavailable(f"refusing a non-https issuer: {issuer}")
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_SECONDS) as response:  # noqa: S310 - checked above
            document: dict[str, Any] = json.load(response)
    except (OSError, ValueError) as error:
        raise KeysUnavailable(f"OIDC discovery failed for {issuer}: {error}") from error
    jwks_uri = document.get("jwks_uri")
    if not isinstance(jwks_uri, str):
        raise KeysUnavailable(f"{url} names no jwks_uri")
    return jwks_uri


class TokenVerifier:
    """Verifies tokens of one issuer and set of audiences; one per container."""

    def __init__(
        self, issuer: str, audiences: list[str], owner_claim: str, jwks_url: str | None = None
    ) -> None:
        self._issuer = issuer
        self._audiences = set(audiences)
        self._owner_claim = owner_claim
        self._jwks_url = jwks_url

    @cached_property
    def _keys(self) -> jwt.PyJWKClient:
        url = self._jwks_url or discover_jwks_url(self._issuer)
        return jwt.PyJWKClient(url, cache_keys=True, lifespan=3600, timeout=_TIMEOUT_SECONDS)

    def owner(self, token: str) -> str:
        """The owner the token names; InvalidToken or KeysUnavailable otherwise."""
        try:
            key = self._keys.get_signing_key_from_jwt(token)
        except jwt.PyJWKClientConnectionError as error:
            raise KeysUnavailable(str(error)) from error
        except jwt.PyJWTError as error:
            raise InvalidToken(f"no usable signing key: {error}") from error
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=_ALGORITHMS,
                issuer=self._issuer,
                options={"require": ["exp", "iss"], "verify_aud": False},
            )
        except jwt.PyJWTError as error:
            raise InvalidToken(str(error)) from error
        audience = claims.get("aud")
        audiences = {audience} if isinstance(audience, str) else set(audience or [])
        if "aud" not in claims:
            audiences = {claims.get("client_id")} - {None}
        if not audiences & self._audiences:
            raise InvalidToken("token is not for this API's audience")
        owner = claims.get(self._owner_claim)
        if not isinstance(owner, str) or not owner:
            raise InvalidToken(f"token has no {self._owner_claim!r} claim")
        return owner
