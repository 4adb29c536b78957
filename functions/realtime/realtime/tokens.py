"""Bearer tokens verified as the HTTP API's JWT authorizer verifies them, with the routes' scope."""

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from time import monotonic
from typing import Any
from urllib.parse import urlsplit

import jwt

from items_core.bearer import granted_scopes

# API Gateway's WebSocket APIs have no JWT authorizer: $connect verifies tokens as the HTTP API's
# authorizer does, with the only algorithms it accepts.
ALGORITHMS = ["RS256", "RS384", "RS512"]
# An unknown key id refetches the keys at most this often: forged ids cannot make every $connect a fetch.
REFRESH_COOLDOWN_SECONDS = 60
JWKS_LIFESPAN_SECONDS = 3600
MAX_DOCUMENT_BYTES = 64 * 1024
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}  # the tests' local issuer; nothing else may be plain http


class InvalidToken(Exception):
    """The token is missing, malformed, expired, or not from the configured issuer, audience and scope."""


class KeysUnavailable(Exception):
    """The issuer's keys could not be fetched: a server-side problem, not the client's."""


@dataclass(frozen=True)
class VerifiedToken:
    """Who a valid token names, and until when it is valid (its `exp`, epoch seconds)."""

    owner: str
    expires_at: int


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_: Any) -> None:
        return None  # the 3xx becomes an HTTPError


_OPENER = urllib.request.build_opener(_NoRedirect)


def _check_url(url: str, issuer: str) -> None:
    """https on the issuer's host (http only for a loopback issuer); KeysUnavailable otherwise."""
    parts, issuer_parts = urlsplit(url), urlsplit(issuer)
    secure = parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK)
    if not secure or parts.netloc != issuer_parts.netloc:
        raise KeysUnavailable(f"refusing {url}: keys come over https from the issuer's host ({issuer})")


def fetch_json(url: str, timeout: float) -> dict[str, Any]:
    """A JSON object from `url`: no redirect, at most MAX_DOCUMENT_BYTES; KeysUnavailable otherwise."""
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            body = response.read(MAX_DOCUMENT_BYTES + 1)
    except (OSError, ValueError) as error:  # URLError, HTTPError (a redirect too), timeouts
        raise KeysUnavailable(f"fetching {url} failed: {error}") from error
    if len(body) > MAX_DOCUMENT_BYTES:
        raise KeysUnavailable(f"{url} is larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        document = json.loads(body)
    except ValueError as error:
        raise KeysUnavailable(f"{url} is not JSON: {error}") from error
    if not isinstance(document, dict):
        raise KeysUnavailable(f"{url} is not a JSON object")
    return document


def discover_jwks_url(issuer: str, timeout: float) -> str:
    """The issuer's jwks_uri, from a discovery document that names this issuer."""
    _check_url(issuer, issuer)
    document = fetch_json(f"{issuer.rstrip('/')}/.well-known/openid-configuration", timeout)
    if str(document.get("issuer", "")).rstrip("/") != issuer.rstrip("/"):
        raise KeysUnavailable(f"the discovery document names issuer {document.get('issuer')!r}, not {issuer}")
    jwks_uri = document.get("jwks_uri")
    if not isinstance(jwks_uri, str):
        raise KeysUnavailable(f"{issuer}'s discovery document names no jwks_uri")
    _check_url(jwks_uri, issuer)
    return jwks_uri


class TokenVerifier:
    """Verifies tokens of one issuer, set of audiences and scope; one per container."""

    def __init__(
        self,
        issuer: str,
        audiences: list[str],
        owner_claim: str,
        scope: str,
        jwks_url: str | None = None,
        *,
        timeout: float = 1.5,
    ) -> None:
        self._issuer = issuer
        self._audiences = set(audiences)
        self._owner_claim = owner_claim
        self._scope = scope
        self._jwks_url = jwks_url
        self._timeout = timeout
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None

    def _fetch_keys(self) -> None:
        url = self._jwks_url or discover_jwks_url(self._issuer, self._timeout)
        self._jwks_url = url
        try:
            key_set = jwt.PyJWKSet.from_dict(fetch_json(url, self._timeout))
        except jwt.PyJWTError as error:
            raise KeysUnavailable(f"{url} holds no usable key: {error}") from error
        self._keys = {
            key.key_id: key for key in key_set.keys if key.key_id and key.public_key_use in {None, "sig"}
        }
        self._fetched_at = monotonic()

    def signing_key(self, kid: str) -> jwt.PyJWK:
        """The issuer's key `kid`: from the cache, refetched when stale or (once a cooldown) unknown."""
        age = None if self._fetched_at is None else monotonic() - self._fetched_at
        if (
            age is None
            or age > JWKS_LIFESPAN_SECONDS
            or (kid not in self._keys and age > REFRESH_COOLDOWN_SECONDS)
        ):
            self._fetch_keys()
        try:
            return self._keys[kid]
        except KeyError:
            raise InvalidToken(f"no signing key {kid!r} in the issuer's JWKS") from None

    def verify(self, token: str) -> VerifiedToken:
        """The owner the token names and its expiry; InvalidToken or KeysUnavailable otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise InvalidToken(f"not a JWT: {error}") from error
        if header.get("alg") not in ALGORITHMS:
            raise InvalidToken(f"algorithm {header.get('alg')!r} is not one of {ALGORITHMS}")
        key = self.signing_key(str(header.get("kid")))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=ALGORITHMS,
                issuer=self._issuer,
                options={"require": ["exp", "iss"], "verify_aud": False},
            )
        except jwt.PyJWTError as error:
            raise InvalidToken(str(error)) from error
        audience = claims.get("aud")
        audiences = {audience} if isinstance(audience, str) else set(audience or [])
        if "aud" not in claims:  # Cognito's access tokens name their client in client_id instead
            audiences = {claims.get("client_id")} - {None}
        if not audiences & self._audiences:
            raise InvalidToken("token is not for this API's audience")
        if claims.get("token_use", "access") != "access":
            raise InvalidToken(f"a {claims.get('token_use')!r} token is not an access token")
        if self._scope not in granted_scopes(claims):
            raise InvalidToken(f"token lacks the scope {self._scope!r}")
        owner = claims.get(self._owner_claim)
        if not isinstance(owner, str) or not owner:
            raise InvalidToken(f"token has no {self._owner_claim!r} claim")
        return VerifiedToken(owner, int(claims["exp"]))
