"""Bearer tokens verified the way the HTTP API's JWT authorizer verifies them.

API Gateway WebSocket APIs have no JWT authorizer, so ``$connect`` checks the
token itself: signature against the issuer's JWKS (found through OIDC
discovery, fetched once per container; a token naming an unknown key makes
PyJWT fetch it again at most once per REFRESH_COOLDOWN_SECONDS, so a stream of
forged key ids cannot turn every $connect into a fetch), ``iss``, ``exp``/``nbf``,
and ``aud`` or, for Cognito access tokens that carry none, ``client_id`` against
the configured audiences.
"""

import json
import urllib.request
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import jwt

_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"]
REFRESH_COOLDOWN_SECONDS = 60
JWKS_LIFESPAN_SECONDS = 3600


class InvalidToken(Exception):
    """The token is missing, malformed, expired, or not from the configured issuer and audience."""


class KeysUnavailable(Exception):
    """The issuer's keys could not be fetched: a server-side problem, not the client's."""


@dataclass(frozen=True)
class VerifiedToken:
    """Who a valid token names, and until when it is valid (its `exp`, epoch seconds)."""

    owner: str
    expires_at: int


def discover_jwks_url(issuer: str, timeout: float) -> str:
    """The issuer's jwks_uri from its OpenID Connect discovery document."""
    url = f"{issuer}/.well-known/openid-configuration"
    if not url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
        raise KeysUnavailable(f"refusing a non-https issuer: {issuer}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - checked above
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
        self,
        issuer: str,
        audiences: list[str],
        owner_claim: str,
        jwks_url: str | None = None,
        *,
        timeout: float = 1.5,
    ) -> None:
        self._issuer = issuer
        self._audiences = set(audiences)
        self._owner_claim = owner_claim
        self._jwks_url = jwks_url
        self._timeout = timeout

    @cached_property
    def keys(self) -> jwt.PyJWKClient:
        """The issuer's keys: fetched on first use, cached, refreshed at most once a cooldown."""
        url = self._jwks_url or discover_jwks_url(self._issuer, self._timeout)
        return jwt.PyJWKClient(
            url,
            lifespan=JWKS_LIFESPAN_SECONDS,
            timeout=self._timeout,
            cooldown_duration=REFRESH_COOLDOWN_SECONDS,
        )

    def verify(self, token: str) -> VerifiedToken:
        """The owner the token names and its expiry; InvalidToken or KeysUnavailable otherwise."""
        try:
            key = self.keys.get_signing_key_from_jwt(token)
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
        return VerifiedToken(owner, int(claims["exp"]))
