"""Input that is not valid is a 422 that names the field, in the API's words, never a 500.

Each class is tested with its examples, and fuzzed with Hypothesis where the class is large:
lone UTF-16 surrogates and control characters in every text field, in tags and as unknown keys.
"""

import json
import os
import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

Auth = Callable[[str], dict[str, str]]
VALID = {"name": "Widget", "price": 9.99, "tags": ["tools"]}
SURROGATE = "\ud800"
# Python's own wording must never reach a client.
PYTHON_WORDS = ("sys.", "set_int_max_str_digits", "recursion", "codec", "Traceback", "Decimal", "ValueError")


def send(client: TestClient, method: str, path: str, raw: bytes, auth: Auth) -> Any:
    headers = {**auth("alice"), "content-type": "application/json"}
    return client.request(method, path, content=raw, headers=headers)


def raw_json(value: Any) -> bytes:
    """JSON text as a client may send it: json.dumps writes a lone surrogate as the escape \\ud800."""
    return json.dumps(value).encode()


@pytest.fixture
def item_path(client: TestClient, auth: Auth) -> str:
    created = client.post("/items", json=VALID, headers=auth("alice"))
    assert created.status_code == 201
    return str(created.headers["location"])


def assert_refused(response: Any, loc: list[Any]) -> None:
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert any(error["loc"] == loc for error in detail), detail
    assert not any(word in response.text for word in PYTHON_WORDS), response.text


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({**VALID, "name": SURROGATE}, ["body", "name"]),
        ({**VALID, "name": "a" + SURROGATE + "b"}, ["body", "name"]),
        ({**VALID, "description": "\udfff"}, ["body", "description"]),
        ({**VALID, "tags": ["ok", SURROGATE]}, ["body", "tags", 1]),
        ({**VALID, SURROGATE: 1}, ["body"]),
        ({**VALID, "x" + SURROGATE: "y" + SURROGATE}, ["body"]),
    ],
    ids=["name", "inside-name", "description", "tag", "unknown-key", "unknown-key-and-value"],
)
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_lone_surrogates_are_422_and_nothing_is_written(
    client: TestClient, auth: Auth, item_path: str, body: dict[str, Any], loc: list[Any], method: str
) -> None:
    path = "/items" if method == "POST" else item_path
    before = client.get("/items", headers=auth("alice")).json()
    response = send(client, method, path, raw_json(body), auth)
    assert_refused(response, loc)
    # The echoed input is readable text: the surrogate as its escape, never a broken encoding.
    assert "\\ud800" in response.text or "\\udfff" in response.text
    assert client.get("/items", headers=auth("alice")).json() == before


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"name": "a", "price": ' + b"9" * 5000 + b"}", "a number has more than 100 digits"),
        (b'{"name": "a", "price": 1.' + b"5" * 5000 + b"}", "a number has more than 100 digits"),
        (b"[" * 8000 + b"]" * 8000, "JSON is nested too deeply"),
        (b'{"name": "a", "price": NaN}', "NaN is not valid JSON"),
        (b'{"name": "a", "price": -Infinity}', "-Infinity is not valid JSON"),
        (b'{"name": "\xff\xfe", "price": 1}', "body is not valid UTF-8"),
    ],
    ids=["long-integer", "long-fraction", "deep-nesting", "nan", "infinity", "invalid-utf8"],
)
def test_malformed_json_is_explained_in_the_apis_words(
    client: TestClient, auth: Auth, raw: bytes, message: str
) -> None:
    response = send(client, "POST", "/items", raw, auth)
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert not any(word in response.text for word in PYTHON_WORDS)
    if message == "JSON is nested too deeply" and error["type"] != "json_invalid":
        # Python 3.13's parser takes this depth (the 16 KB body limit bounds it): the body is
        # then valid JSON of the wrong shape, and the 422 says so.
        assert (error["type"], error["loc"]) == ("model_attributes_type", ["body"])
        return
    assert error["type"] == "json_invalid"
    assert error["ctx"]["error"] == message


@pytest.mark.parametrize(
    "raw", [b"2.3884529582317566e-306", b"0.5", b"1e400", b"-1.0E-7", b"7", b"null", b"true", b'"x"', b"[]"]
)
@pytest.mark.parametrize(("method", "path"), [("POST", "/items"), ("PUT", "/items/1"), ("PATCH", "/items/1")])
def test_a_body_that_is_not_an_object_is_422_and_changes_nothing(
    client: TestClient, auth: Auth, raw: bytes, method: str, path: str
) -> None:
    # A fractional number is parsed as a Decimal, which FastAPI's from_attributes validation
    # would read as an object with no fields (a PATCH of nothing): it must be refused like the rest.
    created = client.post("/items", json={"name": "kept", "price": 1}, headers=auth("alice"))
    assert created.json()["id"] == 1
    response = send(client, method, path, raw, auth)
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body"]
    assert error["type"] == "model_attributes_type"
    assert client.get("/items/1", headers=auth("alice")).json()["version"] == 1
    assert [item["id"] for item in client.get("/items", headers=auth("alice")).json()["items"]] == [1]


BLANK = [
    " ",
    "\u3000 \u2003",  # ideographic and em spaces
    "\u00a0",  # no-break space
    "\u200b",  # zero-width space
    "\u200d\u200c",  # zero-width joiner, non-joiner
    "\u2060",  # word joiner
    "\ufeff",  # BOM
    "\u00ad",  # soft hyphen
    "\u3164",  # Hangul filler
    "\ufe0f",  # variation selector
    "\u202e",  # right-to-left override
    "\U000e0041",  # tag character (beyond the BMP)
    " \u200b\u2060\ufeff ",
]
CONTROL = ["\x00", "a\x00b", "\x07", "a\x1bb", "\x7f", "\x85", "\x9f", "line\nbreak", "tab\there"]


@pytest.mark.parametrize(
    ("value", "problem"),
    [*((value, "blank") for value in BLANK), *((value, "control characters") for value in CONTROL)],
)
@pytest.mark.parametrize(("field", "loc"), [("name", ["body", "name"]), ("tags", ["body", "tags", 0])])
def test_blank_invisible_or_control_text_is_refused_in_names_and_tags(
    client: TestClient, auth: Auth, value: str, problem: str, field: str, loc: list[Any]
) -> None:
    body = {**VALID, field: [value] if field == "tags" else value}
    response = client.post("/items", json=body, headers=auth("alice"))
    assert_refused(response, loc)
    assert problem in response.text


def test_descriptions_allow_tab_and_line_breaks_and_no_other_control(client: TestClient, auth: Auth) -> None:
    text = "line one\r\nline two\n\tindented"
    created = client.post("/items", json={**VALID, "description": text}, headers=auth("alice"))
    assert created.status_code == 201
    assert created.json()["description"] == text
    for value in ("\x00", "bell\x07", "\x1b[31m", "\x7f", "\x85"):
        response = client.post("/items", json={**VALID, "description": value}, headers=auth("alice"))
        assert_refused(response, ["body", "description"])


def test_visible_text_with_invisible_characters_inside_is_kept(client: TestClient, auth: Auth) -> None:
    for name in ("a\u200bb", "\u200b x", "👩\u200d💻", "é", "日本"):
        created = client.post("/items", json={**VALID, "name": name}, headers=auth("alice"))
        assert created.status_code == 201, (name, created.text)
        assert created.json()["name"] == name


def test_the_schema_publishes_the_text_rules(client: TestClient) -> None:
    from items_core.models import DESCRIPTION_PATTERN, VISIBLE_TEXT_PATTERN

    properties = client.get("/openapi.json").json()["components"]["schemas"]["ItemCreate"]["properties"]
    assert properties["name"]["pattern"] == VISIBLE_TEXT_PATTERN
    assert properties["tags"]["items"]["pattern"] == VISIBLE_TEXT_PATTERN
    assert properties["description"]["anyOf"][0]["pattern"] == DESCRIPTION_PATTERN


@pytest.mark.parametrize(
    ("raw", "quantity"), [(b"7.0", 7), (b"7e2", 700), (b"7.000", 7), (b"0.0", 0), (b"1E+3", 1000)]
)
def test_whole_number_json_numbers_are_integers(
    client: TestClient, auth: Auth, raw: bytes, quantity: int
) -> None:
    body = b'{"name": "a", "price": 1, "quantity": ' + raw + b"}"
    response = send(client, "POST", "/items", body, auth)
    assert response.status_code == 201, response.text
    assert response.json()["quantity"] == quantity
    assert f'"quantity":{quantity},' in response.text  # an integer in the JSON, never 7.0


@pytest.mark.parametrize("raw", [b"7.5", b'"7"', b"true", b"1e400000", b"-0.5", b"null"])
def test_other_quantities_stay_422(client: TestClient, auth: Auth, raw: bytes) -> None:
    body = b'{"name": "a", "price": 1, "quantity": ' + raw + b"}"
    assert_refused(send(client, "POST", "/items", body, auth), ["body", "quantity"])


# --- fuzzing ---------------------------------------------------------------------

# Surrogates (Cs) and C0/C1 controls (Cc) mixed with ordinary text.
HOSTILE_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(categories=["Cs"]),
        st.characters(categories=["Cc"]),
        st.characters(categories=["Cf", "Zs"]),
        st.characters(codec="utf-8"),
    ),
    max_size=30,
)
FIELDS = ["name", "description", "tags", "key"]
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _is_acceptable_text(value: str, field: str) -> bool:
    if any(0xD800 <= ord(char) <= 0xDFFF for char in value):
        return False
    controls = {char for char in value if ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F}
    if field == "description":
        return controls <= {"\t", "\n", "\r"} and len(value) <= 2000
    from items_core.models import _visible_text

    try:
        _visible_text(value)
    except ValueError:
        return False
    return 1 <= len(value) <= (50 if field == "tags" else 200)


@pytest.mark.slow
@FUZZ
@given(value=HOSTILE_TEXT, field=st.sampled_from(FIELDS), method=st.sampled_from(["POST", "PUT", "PATCH"]))
def test_fuzzed_text_is_stored_exactly_or_refused_by_name(
    client: TestClient, auth: Auth, item_path: str, value: str, field: str, method: str
) -> None:
    body: dict[str, Any] = dict(VALID)
    if field == "key":
        body[value or "k"] = 1
    elif field == "tags":
        body["tags"] = [value]
    else:
        body[field] = value
    path = "/items" if method == "POST" else item_path
    response = send(client, method, path, raw_json(body), auth)
    assert response.status_code in {200, 201, 422}, response.text
    if response.status_code == 422:
        detail = response.json()["detail"]
        assert all(error["loc"][0] == "body" for error in detail)
        if field in {"name", "description"}:
            assert any(error["loc"][:2] == ["body", field] for error in detail), detail
        return
    assert field != "key"
    assert _is_acceptable_text(value, field)
    stored = response.json()
    assert stored["tags" if field == "tags" else field] == ([value] if field == "tags" else value)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (b'{"name": "a", "name": "b", "price": 1}', "name"),
        (b'{"name": "a", "price": 1, "price": 2}', "price"),
        (b'{"name": "a", "price": 1, "description": {"x": 1, "x": 2}}', "x"),  # nested: still refused
    ],
)
def test_a_key_twice_in_one_object_is_422_naming_it(
    client: TestClient, auth: Auth, raw: bytes, key: str
) -> None:
    response = send(client, "POST", "/items", raw, auth)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["ctx"]["error"] == f'the key "{key}" appears twice in one object'
    assert client.get("/items", headers=auth("alice")).json()["items"] == []  # nothing written


@pytest.mark.parametrize(
    ("price", "bound", "limit"),
    [("1e400", "le", 1_000_000_000), ("2000000000", "le", 1_000_000_000), ("-1", "ge", 0)],
)
def test_bounds_in_422s_are_json_numbers(
    client: TestClient, auth: Auth, price: str, bound: str, limit: int
) -> None:
    response = send(client, "POST", "/items", b'{"name": "a", "price": ' + price.encode() + b"}", auth)
    [error] = response.json()["detail"]
    assert error["ctx"] == {bound: limit}
    assert error["msg"].endswith(f" {limit}")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-8-sig"])
def test_json_is_utf8_only(client: TestClient, auth: Auth, encoding: str) -> None:
    raw = '{"name": "Widget", "price": 1}'.encode(encoding)
    response = send(client, "POST", "/items", raw, auth)
    assert response.status_code == 422, response.text
    assert client.get("/items", headers=auth("alice")).json()["items"] == []


@pytest.mark.parametrize(
    ("raw", "line"),
    [(b"{", 1), (b'{"name": "a",}', 1), (b'{"a": 1}\n{"b": 2}', 2), (b"{'name': 'a'}", 1), (b'"\\x"', 1)],
)
def test_malformed_json_says_where_in_the_apis_words(
    client: TestClient, auth: Auth, raw: bytes, line: int
) -> None:
    response = send(client, "POST", "/items", raw, auth)
    [error] = response.json()["detail"]
    # The column is the parser's (Python 3.13 places a trailing comma's error one column earlier).
    assert re.fullmatch(rf"body is not valid JSON at line {line}, column \d+", error["ctx"]["error"]), error
