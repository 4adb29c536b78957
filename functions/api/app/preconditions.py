"""Entity tags and conditional request headers (RFC 9110 section 13)."""

import re

from app.store.items import AnyVersion
from items_core.models import ItemPublic

_STRONG_ETAG = re.compile(r'^"(\d{1,19})-(\d{1,19})"$')
# DynamoDB's limit on the operands of IN, which the write's condition lists the versions with.
MAX_IF_MATCH_VERSIONS = 100


class TooManyVersions(ValueError):
    """If-Match names more versions of the item than one condition can check."""


def etag(item: ItemPublic) -> str:
    """A strong entity tag that changes with every version of the item (the item's `etag` field)."""
    return item.etag


def _strong_tags(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def parse_if_match(header: str | None, item_id: int) -> list[int] | AnyVersion | None:
    """The versions an If-Match header accepts: None (no header), "*" or a list (maybe empty)."""
    if header is None:
        return None
    if header.strip() == "*":
        return "*"
    versions = []
    # If-Match compares strongly (RFC 9110): a weak tag (W/"…"), or another item's, adds no version.
    for tag in _strong_tags(header):
        match = _STRONG_ETAG.match(tag)
        if match and int(match.group(1)) == item_id and int(match.group(2)) not in versions:
            versions.append(int(match.group(2)))
    if len(versions) > MAX_IF_MATCH_VERSIONS:
        raise TooManyVersions(
            f"If-Match names {len(versions)} versions of this item; at most {MAX_IF_MATCH_VERSIONS}"
        )
    return versions


def if_none_match_hits(header: str | None, item: ItemPublic) -> bool:
    """Whether If-None-Match names the current representation (weak comparison, per RFC 9110)."""
    if header is None:
        return False
    if header.strip() == "*":
        return True
    current = etag(item)
    return any(tag.removeprefix("W/") == current for tag in _strong_tags(header))
