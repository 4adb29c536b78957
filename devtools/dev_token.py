"""`make token OWNER=alice`: print a local dev token for that owner."""

import argparse
import os
import sys

from devtools.local_auth import issue_token
from devtools.local_env import local_jwt_secret

# Tokens the API must refuse (403), to try that locally: `make token KIND=id` or KIND=no-scope.
KINDS: dict[str, dict[str, str | None]] = {
    "access": {},
    "id": {"token_use": "id", "scope": None},  # an ID token: no scope, token_use "id"
    "no-scope": {"scope": None},  # an access token without the API's scope
}


def issue_local_token(owner: str, hours: float = 12, kind: str = "access") -> str:
    """A local-mode token for `owner`, signed with this checkout's dev key (`kind`: see KINDS)."""
    owner_claim = os.environ.get("OWNER_CLAIM", "sub")
    return issue_token(
        local_jwt_secret(), owner, owner_claim=owner_claim, ttl_seconds=int(hours * 3600), **KINDS[kind]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "owner", nargs="?", default=os.environ.get("TOKEN_OWNER"), help="the owner (default: $TOKEN_OWNER)"
    )
    parser.add_argument("--hours", type=float, default=12, help="validity in hours (default 12)")
    parser.add_argument(
        "--kind",
        choices=sorted(KINDS),
        default=os.environ.get("TOKEN_KIND") or "access",
        help="access (default), or a token the API refuses with 403: id, no-scope ($TOKEN_KIND)",
    )
    args = parser.parse_args(argv)
    if not args.owner or not args.owner.strip():
        parser.error("owner must not be blank")
    print(issue_local_token(args.owner, args.hours, args.kind))
    return 0


if __name__ == "__main__":
    sys.exit(main())
