"""Pagination cursors: an opaque token that resumes a listing where a page stopped."""

import base64
import binascii
import hashlib
import json

MAX_CURSOR_LENGTH = 512


class InvalidCursor(Exception):
    """The cursor was not issued for this listing."""


def _query_fingerprint(q: str, tag: str) -> str:
    return hashlib.sha256(json.dumps([q, tag]).encode()).hexdigest()[:16]


def encode_cursor(after: int, *, q: str, tag: str) -> str:
    """A cursor that continues after item id `after`, valid only for the same filters."""
    payload = json.dumps({"a": after, "f": _query_fingerprint(q, tag)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *, q: str, tag: str) -> int:
    """The id to continue after, or InvalidCursor for anything this API did not issue."""
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise InvalidCursor
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError) as error:
        raise InvalidCursor from error
    if not isinstance(payload, dict) or set(payload) != {"a", "f"}:
        raise InvalidCursor
    after = payload["a"]
    if not isinstance(after, int) or isinstance(after, bool) or after < 1:
        raise InvalidCursor
    if payload["f"] != _query_fingerprint(q, tag):
        raise InvalidCursor
    return after
