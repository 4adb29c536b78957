"""SnapStart runtime hooks: what goes into the snapshot, and what each restored environment refreshes.

One snapshot is restored into many execution environments, so nothing in it may
be specific to one of them:

- before the snapshot, the DynamoDB client is created once, so botocore's
  modules are imported and initialised inside the snapshot rather than on
  every restore's first request;
- after each restore, ``random`` is reseeded (botocore's retry jitter would
  otherwise be identical in every environment) and the AWS clients are dropped:
  their open connections and the credentials they captured belong to the
  environment that took the snapshot. They are recreated on first use.

``uuid4`` and ``secrets`` (write tokens, idempotency claims) read the OS's
randomness on every call and need nothing. Lambda imports this module only
when it initialises for SnapStart (see main.py).
"""

import random

from snapshot_restore_py import register_after_restore, register_before_snapshot

from app import dependencies


@register_before_snapshot
def prepare_snapshot() -> None:
    """Load what every request needs into the snapshot."""
    dependencies.get_dynamodb_client()


@register_after_restore
def refresh_after_restore() -> None:
    """Give this environment its own randomness and its own AWS connections and credentials."""
    random.seed()
    # The session holds resolved credentials; every client and the store built on one go with it.
    for cached in (
        dependencies.get_item_store,
        dependencies.get_layout_reader,
        dependencies.get_layout_client,
        dependencies.get_dynamodb_client,
        dependencies.get_botocore_session,
    ):
        cached.cache_clear()
