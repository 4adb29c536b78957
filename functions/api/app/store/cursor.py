"""Pagination cursors: opaque, HMAC-signed, bound to the owner and the query."""

import base64
import binascii
import hashlib
import hmac
import json
import struct

MAX_CURSOR_LENGTH = 64
_VERSION = 1
# A version byte and the id to continue after; never a DynamoDB key: the listing builds that from the owner.
_HEADER = struct.Struct(">BQ")
_MAC_BYTES = 16


class InvalidCursor(Exception):
    """The cursor was not issued for this listing."""


class CursorSigner:
    """Signs and verifies cursors with one key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the cursor signing key needs at least 32 bytes")
        self._key = key

    @staticmethod
    def _mac(key: bytes, header: bytes, owner: str, q: str, tag: str) -> bytes:
        binding = json.dumps([owner, q, tag]).encode()
        return hmac.new(key, header + binding, hashlib.sha256).digest()[:_MAC_BYTES]

    def encode(self, after: int, *, owner: str, q: str, tag: str) -> str:
        """A cursor that continues after item id `after`, only for this owner and these filters."""
        header = _HEADER.pack(_VERSION, after)
        token = header + self._mac(self._key, header, owner, q, tag)
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
        if not hmac.compare_digest(mac, self._mac(self._key, header, owner, q, tag)):
            raise InvalidCursor
        version, after = _HEADER.unpack(header)
        if version != _VERSION or after < 1:
            raise InvalidCursor
        return int(after)
