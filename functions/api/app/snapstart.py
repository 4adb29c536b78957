"""SnapStart runtime hooks: what goes into the snapshot, and what each restored environment refreshes."""

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
    # Every restore starts from the snapshot's state: unseeded, botocore's retry jitter would be the same in
    # every environment. uuid4 and secrets read the OS's randomness on every call and need nothing.
    random.seed()
    # The session holds resolved credentials; every client and the store built on one go with it.
    for cached in (
        dependencies.get_item_store,
        dependencies.get_idempotency_store,
        dependencies.get_layout_reader,
        dependencies.get_single_attempt_client,
        dependencies.get_dynamodb_client,
        dependencies.get_botocore_session,
    ):
        cached.cache_clear()
