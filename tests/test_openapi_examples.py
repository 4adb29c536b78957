"""Every example in the OpenAPI document is realistic enough to be valid: it validates against its schema."""

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from app.main import create_app

BASE = "urn:openapi"


def _pointer(*parts: str | int) -> str:
    """A JSON Pointer (RFC 6901) into the document, as a URI fragment."""
    escaped = (str(part).replace("~", "~0").replace("/", "~1") for part in parts)
    return "#/" + "/".join(quote(part, safe="~") for part in escaped)


def _examples(document: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(pointer to a schema, example) for every schema, property and parameter example in the document."""
    for name, schema in document["components"]["schemas"].items():
        for example in schema.get("examples", []):
            yield _pointer("components", "schemas", name), example
        for field, subschema in schema.get("properties", {}).items():
            for example in subschema.get("examples", []):
                yield _pointer("components", "schemas", name, "properties", field), example
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for index, parameter in enumerate(operation.get("parameters", [])):
                for example in parameter["schema"].get("examples", []):
                    yield _pointer("paths", path, method, "parameters", index, "schema"), example


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app().openapi()


def test_the_models_and_parameters_carry_examples(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for name in (
        "Health",
        "ItemCreate",
        "ItemPatch",
        "ItemPublic",
        "ItemPage",
        "Error",
    ):
        assert schemas[name].get("examples"), name
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                assert parameter["schema"].get("examples"), f"{method} {path} {parameter['name']}"


def test_every_example_validates_against_its_schema(document: dict[str, Any]) -> None:
    registry: Registry[Any] = Registry().with_resource(BASE, Resource(document, DRAFT202012))
    found = list(_examples(document))
    assert len(found) > 20
    for pointer, example in found:
        validator = Draft202012Validator({"$ref": BASE + pointer}, registry=registry)
        problems = [error.message for error in validator.iter_errors(example)]
        assert not problems, (pointer, example, problems)


def test_an_invalid_example_would_be_found(document: dict[str, Any]) -> None:
    registry: Registry[Any] = Registry().with_resource(BASE, Resource(document, DRAFT202012))
    validator = Draft202012Validator(
        {"$ref": BASE + _pointer("components", "schemas", "ItemCreate")}, registry=registry
    )
    assert list(validator.iter_errors({"name": "", "price": 1_000_000_001}))


def test_every_error_answer_declares_the_one_error_shape(document: dict[str, Any]) -> None:
    declared = {
        (method, path, status): response["content"]["application/json"]["schema"]
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        for status, response in operation["responses"].items()
        if status[0] in "45"
    }
    assert len(declared) > 40
    assert {str(schema) for schema in declared.values()} == {str({"$ref": "#/components/schemas/Error"})}
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_every_response_shows_an_example_of_its_own(document: dict[str, Any]) -> None:
    registry: Registry[Any] = Registry().with_resource(BASE, Resource(document, DRAFT202012))
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            details = []
            for status, response in operation["responses"].items():
                for header, spec in response.get("headers", {}).items():
                    assert spec["schema"].get("examples"), (method, path, status, header)
                if status[0] not in "45":
                    continue  # 2xx bodies are the models, whose examples the tests above check
                media = response["content"]["application/json"]
                example = media["example"]
                validator = Draft202012Validator(
                    {"$ref": BASE + "#/components/schemas/Error"}, registry=registry
                )
                assert not list(validator.iter_errors(example)), (method, path, status)
                details.append(str(example["detail"]))
            assert len(details) == len(set(details)), (method, path, details)  # each status its own example
