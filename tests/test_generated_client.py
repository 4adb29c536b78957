"""A client we did not write: openapi-python-client generates an SDK from the app's document,
and the SDK drives create, get, patch, list (every page) and delete against the app."""

import asyncio
import importlib
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.main import app as lambda_app

pytestmark = pytest.mark.slow

Auth = Callable[[str], dict[str, str]]
PACKAGE = "items_api_client"
OPERATIONS = {
    "items": {"create_item", "get_item", "list_items", "replace_item", "patch_item", "delete_item"},
    "health": {"get_health"},
}


@pytest.fixture
def sdk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], ModuleType]]:
    """The generated package; `sdk("api.items.get_item")` imports one of its modules."""
    document = tmp_path / "openapi.json"
    document.write_text(json.dumps(lambda_app.openapi()), encoding="utf-8")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"post_hooks": []}), encoding="utf-8")  # no formatter on PATH needed
    generated = subprocess.run(  # noqa: S603 - this interpreter, the pinned generator
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            str(document),
            "--meta",
            "none",
            "--config",
            str(config),
            "--output-path",
            str(tmp_path / PACKAGE),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    assert "Warning" not in generated.stdout, generated.stdout  # every operation and model generated
    monkeypatch.syspath_prepend(str(tmp_path))  # the generated package only, in a temporary folder
    yield lambda name: importlib.import_module(f"{PACKAGE}.{name}")
    for name in [module for module in sys.modules if module.split(".")[0] == PACKAGE]:
        del sys.modules[name]


def test_operations_have_names_an_sdk_can_use(sdk: Callable[[str], ModuleType], tmp_path: Path) -> None:
    for tag, operations in OPERATIONS.items():
        modules = {path.stem for path in (tmp_path / PACKAGE / "api" / tag).glob("*.py")} - {"__init__"}
        assert modules == operations


def test_the_generated_client_drives_the_api(
    sdk: Callable[[str], ModuleType], local_app: FastAPI, auth: Auth
) -> None:
    client_module, models = sdk("client"), sdk("models")
    create, get, patch, listing, delete = (
        sdk(f"api.items.{name}")
        for name in ("create_item", "get_item", "patch_item", "list_items", "delete_item")
    )
    token = auth("alice")["Authorization"].split()[1]

    async def scenario() -> None:
        client = client_module.AuthenticatedClient(base_url="http://testserver", token=token)
        client.set_async_httpx_client(
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=local_app),
                base_url="http://testserver",
                headers={"Authorization": f"Bearer {token}"},
            )
        )
        created = [
            await create.asyncio(
                client=client,
                body=models.ItemCreate(name=f"Lamp {i}", price=9.5, tags=["home"]),
                idempotency_key=f"lamp-{i}",
            )
            for i in range(5)
        ]
        assert [item.id for item in created] == [1, 2, 3, 4, 5]
        assert isinstance(created[0], models.ItemPublic)

        fetched = await get.asyncio(client=client, item_id=3)
        assert (fetched.name, fetched.price, fetched.tags, fetched.version) == ("Lamp 2", 9.5, ["home"], 1)

        # The ETag for If-Match comes from the typed result, not from raw headers.
        patched = await patch.asyncio(
            client=client, item_id=3, body=models.ItemPatch(quantity=4), if_match=fetched.etag
        )
        assert (patched.quantity, patched.version, patched.etag) == (4, 2, '"3-2"')
        stale = await patch.asyncio_detailed(
            client=client, item_id=3, body=models.ItemPatch(quantity=5), if_match=fetched.etag
        )
        assert stale.status_code == 412
        again = await patch.asyncio(
            client=client, item_id=3, body=models.ItemPatch(quantity=5), if_match=patched.etag
        )
        assert (again.quantity, again.version) == (5, 3)

        seen: list[int] = []
        cursor: Any = None
        pages = 0
        while True:
            kwargs = {"limit": 2} if cursor is None else {"limit": 2, "cursor": cursor}
            page = await listing.asyncio(client=client, **kwargs)
            assert isinstance(page, models.ItemPage)
            seen += [item.id for item in page.items]
            pages += 1
            cursor = page.next_cursor
            if not cursor:
                break
        assert (seen, pages) == ([1, 2, 3, 4, 5], 3)

        filtered: list[int] = []
        cursor = None
        while True:
            kwargs = {"limit": 1, "tag": "home", "q": "lamp"}
            page = await listing.asyncio(client=client, **kwargs, **({"cursor": cursor} if cursor else {}))
            filtered += [item.id for item in page.items]
            cursor = page.next_cursor
            if not cursor:
                break
        assert filtered == [1, 2, 3, 4, 5]

        deleted = await delete.asyncio_detailed(client=client, item_id=3)
        assert deleted.status_code == 204
        gone = await get.asyncio_detailed(client=client, item_id=3)
        assert gone.status_code == 404
        assert isinstance(gone.parsed, models.Error)
        await client.get_async_httpx_client().aclose()

    # Its own loop, leaving the thread's current loop alone (asyncio.run would unset it, and the
    # Lambda handler of later tests runs on it, as Mangum does).
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(scenario())
    finally:
        loop.close()
