"""`make smoke BASE_URL=… TOKEN=…`: a black-box check of a running deployment; exits non-zero on any failure.

It creates one item, reads, updates, lists and deletes it, and checks the public pages, the 401
without a token and a 422 on bad input. It touches nothing but the item it created.
"""

import argparse
import sys
import uuid
from collections.abc import Callable
from typing import Any

import httpx2 as httpx


def run_checks(base_url: str, token: str) -> list[str]:
    """Each failed check, described; an empty list means the deployment answers as documented."""
    failures: list[str] = []
    auth = {"Authorization": f"Bearer {token}"}
    base = base_url.rstrip("/")

    def check(name: str, condition: Callable[[], bool]) -> None:
        try:
            ok = condition()
        except Exception as error:  # a smoke test reports every failure, whatever it was
            failures.append(f"{name}: {type(error).__name__}: {error}")
            return
        if not ok:
            failures.append(name)

    with httpx.Client(base_url=base, timeout=15) as client:
        check("GET /health is 200 ok", lambda: client.get("/health").json() == {"status": "ok"})
        check("GET /docs serves Swagger UI", lambda: "swagger-ui" in client.get("/docs").text)
        check(
            "GET /openapi.json lists /items", lambda: "/items" in client.get("/openapi.json").json()["paths"]
        )
        check("GET /items without a token is 401", lambda: client.get("/items").status_code == 401)
        check(
            "POST /items with a string price is 422",
            lambda: (
                client.post("/items", json={"name": "smoke", "price": "1"}, headers=auth).status_code == 422
            ),
        )
        name = f"smoke-{uuid.uuid4().hex[:8]}"
        created = client.post("/items", json={"name": name, "price": 1.5, "tags": ["smoke"]}, headers=auth)
        check(
            "POST /items is 201 with Location",
            lambda: created.status_code == 201 and "location" in created.headers,
        )
        if created.status_code != 201:
            return failures
        item: dict[str, Any] = created.json()
        path = f"/items/{item['id']}"
        check("GET the new item", lambda: client.get(path, headers=auth).json() == item)
        check(
            "PATCH changes it (version 2)",
            lambda: client.patch(path, json={"quantity": 2}, headers=auth).json()["version"] == 2,
        )
        check(
            "PUT replaces it (version 3)",
            lambda: client.put(path, json={"name": name, "price": 2}, headers=auth).json()["version"] == 3,
        )
        check(
            "GET /items finds it",
            lambda: any(
                i["id"] == item["id"]
                for i in client.get("/items", params={"q": name}, headers=auth).json()["items"]
            ),
        )
        check("DELETE is 204", lambda: client.delete(path, headers=auth).status_code == 204)
        check("GET after DELETE is 404", lambda: client.get(path, headers=auth).status_code == 404)
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", required=True, help="the API's URL, e.g. the stack's ApiUrl output")
    parser.add_argument("--token", required=True, help="a bearer token accepted by the API")
    args = parser.parse_args(argv)
    failures = run_checks(args.base_url, args.token)
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr)
    print(f"smoke: {'ok' if not failures else f'{len(failures)} failed'} against {args.base_url}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
