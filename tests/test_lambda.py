"""The contract through the Lambda handler, with events from `sam local generate-event`."""

import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI

from tests.conftest import (
    LambdaContext,
    alb_event,
    http_api_event,
    lambda_handler,
    response_headers,
    response_json,
    rest_api_event,
)

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
WIDGET = {"name": "Widget", "price": 9.99, "tags": ["tools"]}


@pytest.fixture
def handler(app: FastAPI) -> Handler:
    """The handler named in template.yaml, in API Gateway auth mode, on a moto table."""
    handle = lambda_handler()

    def invoke(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        return handle(event, context or LambdaContext())

    return invoke


def test_handler_is_the_one_template_names() -> None:
    from app.main import handler as mangum_handler

    assert lambda_handler() is mangum_handler


# --- HTTP API (payload v2) ---------------------------------------------------------


def test_v2_crud_flow(handler: Handler) -> None:
    created = handler(http_api_event("POST", "/items", owner="alice", body=WIDGET))
    assert created["statusCode"] == 201
    item = response_json(created)
    assert response_headers(created)["location"] == f"/items/{item['id']}"
    assert item["price"] == 9.99

    path = f"/items/{item['id']}"
    fetched = handler(http_api_event("GET", path, owner="alice"))
    assert (fetched["statusCode"], response_json(fetched)) == (200, item)

    replaced = handler(http_api_event("PUT", path, owner="alice", body={"name": "New", "price": 2}))
    assert response_json(replaced)["version"] == 2

    patched = handler(http_api_event("PATCH", path, owner="alice", body={"quantity": 3}))
    assert response_json(patched)["quantity"] == 3
    assert response_json(patched)["version"] == 3

    listing = handler(http_api_event("GET", "/items", owner="alice", query="limit=5&q=NEW"))
    assert [i["id"] for i in response_json(listing)["items"]] == [item["id"]]

    deleted = handler(http_api_event("DELETE", path, owner="alice"))
    assert deleted["statusCode"] == 204
    assert not deleted.get("body")
    assert handler(http_api_event("GET", path, owner="alice"))["statusCode"] == 404


def test_v2_validation_and_errors(handler: Handler) -> None:
    bad = handler(http_api_event("POST", "/items", owner="alice", body={"name": "n", "price": "9.99"}))
    assert bad["statusCode"] == 422
    assert response_json(bad)["detail"][0]["loc"] == ["body", "price"]
    nan = handler(http_api_event("POST", "/items", owner="alice", body=b'{"name": "n", "price": NaN}'))
    assert nan["statusCode"] == 422
    bad_id = handler(http_api_event("GET", "/items/zero", owner="alice"))
    assert bad_id["statusCode"] == 422
    assert response_json(bad_id)["detail"][0]["loc"] == ["path", "item_id"]
    assert handler(http_api_event("GET", "/items/1", owner="alice"))["statusCode"] == 404
    assert handler(http_api_event("GET", "/nowhere"))["statusCode"] == 404
    not_allowed = handler(http_api_event("DELETE", "/health"))
    assert (not_allowed["statusCode"], response_json(not_allowed)) == (405, {"detail": "Method Not Allowed"})
    limit = handler(http_api_event("GET", "/items", owner="alice", query="limit=101"))
    assert limit["statusCode"] == 422


def test_v2_without_claims_is_401(handler: Handler) -> None:
    response = handler(http_api_event("GET", "/items"))
    assert response["statusCode"] == 401
    assert response_json(response) == {"detail": "Not authenticated"}
    assert response_headers(response)["www-authenticate"] == "Bearer"


def test_v2_owner_isolation(handler: Handler) -> None:
    item = response_json(handler(http_api_event("POST", "/items", owner="alice", body=WIDGET)))
    path = f"/items/{item['id']}"
    for method, body in (("GET", None), ("PUT", WIDGET), ("PATCH", {"quantity": 1}), ("DELETE", None)):
        assert handler(http_api_event(method, path, owner="bob", body=body))["statusCode"] == 404
    assert response_json(handler(http_api_event("GET", "/items", owner="bob")))["items"] == []
    assert response_json(handler(http_api_event("GET", path, owner="alice"))) == item


def test_v2_named_stage_routes_and_prefixes(handler: Handler) -> None:
    created = handler(http_api_event("POST", "/items", owner="alice", body=WIDGET, stage="dev"))
    assert created["statusCode"] == 201
    item = response_json(created)
    assert response_headers(created)["location"] == f"/dev/items/{item['id']}"
    fetched = handler(http_api_event("GET", f"/items/{item['id']}", owner="alice", stage="dev"))
    assert response_json(fetched) == item
    assert handler(http_api_event("GET", "/health", stage="dev"))["statusCode"] == 200


def test_v2_docs_under_stage_load_prefixed_openapi(handler: Handler) -> None:
    docs = handler(http_api_event("GET", "/docs", stage="dev"))
    assert docs["statusCode"] == 200
    assert "'/dev/openapi.json'" in docs["body"] or '"/dev/openapi.json"' in docs["body"]
    redoc = handler(http_api_event("GET", "/redoc", stage="dev"))
    assert "/dev/openapi.json" in redoc["body"]
    schema = response_json(handler(http_api_event("GET", "/openapi.json", stage="dev")))
    assert schema["servers"] == [{"url": "/dev"}]


def test_v2_default_stage_has_no_prefix(handler: Handler) -> None:
    docs = handler(http_api_event("GET", "/docs"))
    assert re.search(r"""url: ['"]/openapi.json['"]""", docs["body"])
    schema = response_json(handler(http_api_event("GET", "/openapi.json")))
    assert "servers" not in schema


# --- REST API (payload v1) -----------------------------------------------------------


def test_v1_crud_flow_with_stage_prefix(handler: Handler) -> None:
    created = handler(rest_api_event("POST", "/items", owner="alice", body=WIDGET))
    assert created["statusCode"] == 201
    item = response_json(created)
    assert response_headers(created)["location"] == f"/Prod/items/{item['id']}"
    path = f"/items/{item['id']}"
    assert response_json(handler(rest_api_event("GET", path, owner="alice"))) == item
    patched = handler(rest_api_event("PATCH", path, owner="alice", body={"description": "d"}))
    assert response_json(patched)["description"] == "d"
    listing = handler(
        rest_api_event("GET", "/items", owner="alice", query={"limit": ["1"], "tag": ["tools"]})
    )
    assert [i["id"] for i in response_json(listing)["items"]] == [item["id"]]
    assert handler(rest_api_event("DELETE", path, owner="alice"))["statusCode"] == 204
    assert handler(rest_api_event("GET", path, owner="alice"))["statusCode"] == 404


def test_v1_reads_multi_value_query_parameters(handler: Handler) -> None:
    for i in range(3):
        handler(rest_api_event("POST", "/items", owner="alice", body={**WIDGET, "name": f"w{i}"}))
    response = handler(rest_api_event("GET", "/items", owner="alice", query={"limit": ["5", "1"]}))
    assert len(response_json(response)["items"]) == 1  # the last value wins, as in FastAPI


def test_v1_without_claims_is_401(handler: Handler) -> None:
    assert handler(rest_api_event("GET", "/items"))["statusCode"] == 401


def test_v1_docs_under_stage_load_prefixed_openapi(handler: Handler) -> None:
    docs = handler(rest_api_event("GET", "/docs"))
    assert docs["statusCode"] == 200
    assert "/Prod/openapi.json" in docs["body"]
    schema = response_json(handler(rest_api_event("GET", "/openapi.json")))
    assert schema["servers"] == [{"url": "/Prod"}]
    assert handler(rest_api_event("GET", "/health"))["statusCode"] == 200


def test_custom_domain_base_path(monkeypatch: pytest.MonkeyPatch, handler: Handler) -> None:
    from app.settings import get_settings

    monkeypatch.setenv("API_BASE_PATH", "/shop/")
    get_settings.cache_clear()
    # On a REST API custom domain, the mapping's base path arrives inside `path`
    # and requestContext.path is the same, with no stage.
    event = rest_api_event("POST", "/shop/items", owner="alice", body=WIDGET)
    event["requestContext"]["path"] = "/shop/items"
    created = handler(event)
    assert created["statusCode"] == 201
    item_id = response_json(created)["id"]
    assert response_headers(created)["location"] == f"/shop/items/{item_id}"
    docs_event = rest_api_event("GET", "/shop/docs")
    docs_event["requestContext"]["path"] = "/shop/docs"
    assert "/shop/openapi.json" in handler(docs_event)["body"]


# --- Function URL and ALB: no claims --------------------------------------------------


def test_function_url_serves_public_routes_and_401s_items(handler: Handler) -> None:
    health = handler(http_api_event("GET", "/health", template="function-url"))
    assert (health["statusCode"], response_json(health)) == (200, {"status": "ok"})
    assert handler(http_api_event("GET", "/docs", template="function-url"))["statusCode"] == 200
    items = handler(http_api_event("GET", "/items", template="function-url"))
    assert items["statusCode"] == 401
    post = handler(http_api_event("POST", "/items", body=WIDGET, template="function-url"))
    assert post["statusCode"] == 401


def test_alb_serves_public_routes_and_401s_items(handler: Handler) -> None:
    health = handler(alb_event("GET", "/health"))
    assert (health["statusCode"], response_json(health)) == (200, {"status": "ok"})
    assert handler(alb_event("GET", "/openapi.json"))["statusCode"] == 200
    assert handler(alb_event("GET", "/items"))["statusCode"] == 401
    assert handler(alb_event("DELETE", "/items/1"))["statusCode"] == 401


def test_unexpected_failure_through_lambda_is_generic_500(
    handler: Handler, caplog: pytest.LogCaptureFixture
) -> None:
    from app.dependencies import get_dynamodb_client

    def explode(**_: Any) -> None:
        raise RuntimeError("ValidationException: table items-test secret detail")

    get_dynamodb_client().meta.events.register("before-call.dynamodb.Query", explode)
    response = handler(http_api_event("GET", "/items", owner="alice"))
    assert response["statusCode"] == 500
    assert response_json(response) == {"detail": "Internal Server Error", "request_id": "apigw-request-id"}
    assert response_headers(response)["x-request-id"] == "apigw-request-id"
    records = [r for r in caplog.records if r.name == "items-api" and r.levelname == "ERROR"]
    assert [getattr(r, "request_id", None) for r in records] == ["apigw-request-id"]
