"""`make token OWNER=alice`: print a local dev token for that owner."""

import argparse
import os
import sys

from devtools.local_auth import issue_token
from devtools.local_env import local_jwt_secret


def issue_local_token(owner: str, hours: float = 12) -> str:
    """A local-mode token for `owner`, signed with this checkout's dev key."""
    owner_claim = os.environ.get("OWNER_CLAIM", "sub")
    return issue_token(local_jwt_secret(), owner, owner_claim=owner_claim, ttl_seconds=int(hours * 3600))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "owner", nargs="?", default=os.environ.get("TOKEN_OWNER"), help="the owner (default: $TOKEN_OWNER)"
    )
    parser.add_argument("--hours", type=float, default=12, help="validity in hours (default 12)")
    args = parser.parse_args(argv)
    if not args.owner or not args.owner.strip():
        parser.error("owner must not be blank")
    print(issue_local_token(args.owner, args.hours))
    return 0


if __name__ == "__main__":
    sys.exit(main())
