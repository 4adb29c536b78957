"""Pagination cursors: opaque, HMAC-signed, bound to the owner and the query.

A cursor is base64url(version byte, the id to continue after, 16-byte MAC).
The MAC covers the id together with the owner, ``q`` and ``tag``, so a cursor
edited, truncated, issued to another owner or for other filters fails to
verify. It carries no DynamoDB key: the listing rebuilds the key condition from
the authenticated owner and the id.

Keys: deployed, a Secrets Manager secret ``{"current": …, "previous": …}``
(template.yaml creates it), read through a cache with a time to live
(RotatingCursorSigner); cursors signed with the previous key still verify, so
rotating (moving current to previous and setting a new current) breaks no walk
in progress. A container whose cached keys predate a rotation meets cursors
signed by the new key: it fetches the secret again (at most once a minute) and
verifies them instead of refusing them.
"""

import base64
import binascii
import hashlib
import hmac
import json
import struct
import time
from collections.abc import Callable
from typing import Any, Protocol

MAX_CURSOR_LENGTH = 64
_VERSION = 1
_HEADER = struct.Struct(">BQ")
_MAC_BYTES = 16


class InvalidCursor(Exception):
    """The cursor was not issued for this listing."""


class CursorSigner:
    """Signs cursors with the current key; verifies with the current or the previous one."""

    def __init__(self, current: bytes, previous: bytes | None = None) -> None:
        if len(current) < 32:
            raise ValueError("the cursor signing key needs at least 32 bytes")
        self._keys = [current] + ([previous] if previous else [])

    @staticmethod
    def _mac(key: bytes, header: bytes, owner: str, q: str, tag: str) -> bytes:
        binding = json.dumps([owner, q, tag]).encode()
        return hmac.new(key, header + binding, hashlib.sha256).digest()[:_MAC_BYTES]

    def encode(self, after: int, *, owner: str, q: str, tag: str) -> str:
        """A cursor that continues after item id `after`, only for this owner and these filters."""
        header = _HEADER.pack(_VERSION, after)
        token = header + self._mac(self._keys[0], header, owner, q, tag)
        return base64.urlsafe_b64encode(token).decode().rstrip("=")

    def decode(self, cursor: str, *, owner: str, q: str, tag: str) -> int:
        """The id to continue after, or InvalidCursor for anything this API did not issue so."""
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise InvalidCursor
        try:
            raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError) as error:
            raise InvalidCursor from error
        # Only the canonical spelling: base64 leaves spare bits in the last character.
        if (
            len(raw) != _HEADER.size + _MAC_BYTES
            or base64.urlsafe_b64encode(raw).decode().rstrip("=") != cursor
        ):
            raise InvalidCursor
        header, mac = raw[: _HEADER.size], raw[_HEADER.size :]
        if not any(hmac.compare_digest(mac, self._mac(key, header, owner, q, tag)) for key in self._keys):
            raise InvalidCursor
        version, after = _HEADER.unpack(header)
        if version != _VERSION or after < 1:
            raise InvalidCursor
        return int(after)


class CursorCodec(Protocol):
    """What the listing needs of cursor signing."""

    def encode(self, after: int, *, owner: str, q: str, tag: str) -> str: ...

    def decode(self, cursor: str, *, owner: str, q: str, tag: str) -> int: ...


class SecretProvider(Protocol):
    """A cached secret reader (Powertools' parameters SecretsProvider)."""

    def get(
        self, name: str, max_age: int | None = None, transform: Any = None, force_fetch: bool = False
    ) -> Any: ...


class RotatingCursorSigner:
    """Cursor keys from a secret, cached for `max_age` seconds and fetched again on an unknown signature.

    The forced fetch happens at most once per `refresh_interval` seconds, so
    forged cursors cannot turn every request into a Secrets Manager call.
    """

    def __init__(
        self,
        provider: SecretProvider,
        secret_id: str,
        *,
        max_age: int = 300,
        refresh_interval: float = 60,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._provider = provider
        self._secret_id = secret_id
        self._max_age = max_age
        self._refresh_interval = refresh_interval
        self._clock = clock
        self._last_forced: float | None = None

    def _signer(self, *, force: bool = False) -> CursorSigner:
        secret = self._provider.get(
            self._secret_id, max_age=self._max_age, transform="json", force_fetch=force
        )
        return CursorSigner(secret["current"].encode(), (secret.get("previous") or "").encode() or None)

    def encode(self, after: int, *, owner: str, q: str, tag: str) -> str:
        """A cursor signed with the current key."""
        return self._signer().encode(after, owner=owner, q=q, tag=tag)

    def decode(self, cursor: str, *, owner: str, q: str, tag: str) -> int:
        """As CursorSigner.decode, with one fresh look at the secret when no cached key verifies."""
        try:
            return self._signer().decode(cursor, owner=owner, q=q, tag=tag)
        except InvalidCursor:
            now = self._clock()
            if self._last_forced is not None and now - self._last_forced < self._refresh_interval:
                raise
            self._last_forced = now
            return self._signer(force=True).decode(cursor, owner=owner, q=q, tag=tag)
