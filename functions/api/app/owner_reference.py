"""Owners in log lines: a keyed reference (HMAC with a key derived from the stack's), never the owner."""

import hashlib
import hmac
import time
from functools import lru_cache

from app.dependencies import get_stack_key
from app.observability import get_logger


@lru_cache
def get_owner_reference_key() -> bytes:
    """The key of owner references in log lines: derived from the stack's key, never the key itself."""
    return hmac.new(get_stack_key(), b"items-api owner reference", hashlib.sha256).digest()


_OWNER_KEY_RETRY_SECONDS = 60.0
_owner_key_retry_at = [0.0]  # while the key cannot be read, lines go without owner_ref until then


def owner_reference(owner: str) -> str | None:
    """The owner's reference in log lines, or None while the stack's key cannot be read."""
    if get_owner_reference_key.cache_info().currsize == 0:
        if time.monotonic() < _owner_key_retry_at[0]:
            return None
        try:
            get_owner_reference_key()
        except Exception:  # a log line never fails its request
            _owner_key_retry_at[0] = time.monotonic() + _OWNER_KEY_RETRY_SECONDS
            get_logger().warning("owner_ref left out: the stack's key could not be read", exc_info=True)
            return None
    # An HMAC: a list of candidate ids cannot be matched against the logs without the stack's key.
    return _owner_reference(get_owner_reference_key(), owner)


@lru_cache(maxsize=4096)
def _owner_reference(key: bytes, owner: str) -> str:
    return hmac.new(key, owner.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:16]
