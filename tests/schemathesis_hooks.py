"""schemathesis hooks for `st run` (schemathesis.toml) and tests/test_schemathesis.py.

They keep what no schema can express out of schemathesis' "schema-valid request
rejected" check, and nothing else:
- a `cursor` is an HMAC-signed token: a generated one is rightly a 422, so
  positive cases only carry cursors the API issued (the stateful phase follows
  `next_cursor` through the document's links);
- an `Idempotency-Key` reused with another body is rightly a 422 (IETF draft):
  positive cases send a fresh key per request, as a correct client does.
Negative cases are left as generated. The Examples phase (cases built from the
document's examples, which are positive) gets the same treatment.
"""

import re
import uuid
from typing import Any

import schemathesis
from schemathesis import GenerationMode

# What the API issues (app/store/cursor.py): 25 bytes in unpadded base64url. A
# generated string of this shape is astronomically unlikely.
ISSUED_CURSOR = re.compile(r"[A-Za-z0-9_-]{34}")
# The document's example cursor (GET /items): issued shape, but signed with no stack's key.
DOCUMENT_EXAMPLE_CURSOR = "AQAAAAAAAAAqdgLxYIVLvoJttEr40PMGyA"


def _positive(case: Any) -> bool:
    meta = getattr(case, "meta", None)
    return meta is None or meta.generation.mode == GenerationMode.POSITIVE


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    """Fresh idempotency keys and no forged cursors in positive cases."""
    if not _positive(case):
        return case
    if case.headers:
        for name in list(case.headers):
            if name.lower() == "idempotency-key":
                case.headers[name] = uuid.uuid4().hex
    cursor = str(case.query["cursor"]) if case.query and "cursor" in case.query else None
    if cursor is not None and (cursor == DOCUMENT_EXAMPLE_CURSOR or not ISSUED_CURSOR.fullmatch(cursor)):
        del case.query["cursor"]  # generated or the example, not followed from a `next_cursor`
    return case


@schemathesis.hook
def before_add_examples(context: Any, examples: list[Any]) -> None:
    """The document's examples as a correct client would send them: the same fresh keys, no forged cursor."""
    for case in examples:
        map_case(context, case)
