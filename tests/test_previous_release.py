"""The previous-release driver (tests/previous_release.py) runs e21d48b's handler on the suite's tables."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools import dynamodb_local
from tests import previous_release
from tests.conftest import TABLE_NAME
from tests.previous_release import PREVIOUS_RELEASES, PreviousRelease, PreviousReleaseError, materialise

COMMIT = "e21d48b"
WIDGET = {"name": "Widget", "price": 9.99, "tags": ["red", "sale"]}


@pytest.fixture(scope="module")
def previous(dynamodb_server: dynamodb_local.DynamoDBLocal) -> Iterator[PreviousRelease]:
    """One child for the module: the table is dropped and created per test under the same name."""
    with PreviousRelease(COMMIT, endpoint_url=dynamodb_server.endpoint, table_name=TABLE_NAME) as release:
        yield release


def test_the_commit_is_a_listed_previous_release() -> None:
    assert COMMIT in PREVIOUS_RELEASES


def test_the_old_code_creates_reads_and_lists_in_the_shared_table(
    previous: PreviousRelease, dynamodb: Any
) -> None:
    created = previous.request("POST", "/items", owner="alice", json=WIDGET)
    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/items/1"
    body = created.json()
    assert body["tags"] == ["red", "sale"]

    fetched = previous.request("GET", "/items/1", owner="alice")
    assert fetched.status_code == 200
    assert fetched.json() == body
    assert fetched.headers["etag"] == created.headers["etag"]

    listed = previous.request("GET", "/items", owner="alice", params={"tag": "sale"})
    assert listed.status_code == 200
    assert listed.json() == {"items": [body], "next_cursor": None}
    assert previous.request("GET", "/items?tag=blue", owner="alice").json()["items"] == []
    assert previous.request("GET", "/items/1", owner="bob").status_code == 404
    assert previous.request("GET", "/items/1", owner=None).status_code == 401

    row = dynamodb.get_item(TableName=TABLE_NAME, Key={"pk": {"S": "OWNER#alice"}, "sk": {"N": "1"}})
    assert {name: row["Item"][name] for name in ("pk", "sk")} == {
        "pk": {"S": "OWNER#alice"},
        "sk": {"N": "1"},
    }


def test_the_old_code_keeps_idempotency_records_in_the_items_table(
    previous: PreviousRelease, dynamodb: Any
) -> None:
    headers = {"Idempotency-Key": "compat-1"}
    created = previous.request("POST", "/items", owner="alice", headers=headers, json=WIDGET)
    assert created.status_code == 201, created.text
    replayed = previous.request("POST", "/items", owner="alice", headers=headers, json=WIDGET)
    assert replayed.status_code == 201
    assert replayed.headers["idempotent-replayed"] == "true"
    assert replayed.json() == created.json()

    rows = dynamodb.scan(TableName=TABLE_NAME)["Items"]  # test-side inspection only
    assert [row for row in rows if row["pk"]["S"].startswith("IDEMPOTENCY#")]


def test_a_commit_missing_from_the_clone_says_how_to_get_the_history() -> None:
    with pytest.raises(PreviousReleaseError, match="git fetch --unshallow"):
        materialise("0" * 40)


@pytest.mark.parametrize(
    ("driver", "expected"),
    [
        ("raise ImportError('no app here')\n", "ImportError: no app here"),
        ("import sys\nsys.stdin.read()\n", "no answer within 1 s"),
    ],
    ids=["crash", "silence"],
)
def test_a_child_that_fails_or_hangs_is_an_error_with_its_output(
    driver: str,
    expected: str,
    dynamodb_server: dynamodb_local.DynamoDBLocal,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    script = tmp_path / "driver.py"
    script.write_text(driver, encoding="utf-8")
    monkeypatch.setattr(previous_release, "DRIVER", script)
    with pytest.raises(PreviousReleaseError, match=expected):
        PreviousRelease(COMMIT, endpoint_url=dynamodb_server.endpoint, table_name=TABLE_NAME, timeout=1)
