"""The local console never shows a token (devtools.logs), whatever logs it."""

import logging

import pytest

from devtools.logs import RedactTokens, redact, uvicorn_log_config

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    "line",
    [
        f"/ws?token={TOKEN}",
        f"/ws?other=1&token={TOKEN}&x=2",
        f"/callback?access_token={TOKEN}",
        # The server decodes the parameter's name, so must the log: each is `token` to Starlette.
        f"/ws?%74oken={TOKEN}",
        f"/ws?%54OKEN={TOKEN}",
        f"/ws?x=1&to%6Ben={TOKEN}",
        f"/ws?%2574oken={TOKEN}",
        f"/ws?token+={TOKEN}",
        # A JWT under a name the server does not read is still a credential.
        f"/ws?jwt={TOKEN}",
        f"/ws?token%00={TOKEN}",
        f"/ws?%EF%BD%94oken={TOKEN}",
        # A client that percent-encodes its whole path, or uses `;`: the server sees no query.
        f"/ws%3Ftoken={TOKEN}",
        f"/items%3Ftoken%3D{TOKEN}",
        f"/ws;token={TOKEN}",
        f"/ws/{TOKEN}",
        "/items?q=%65yJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl",
        f"/items?q={TOKEN.replace('.', '%2E')}",
        f"Authorization: Bearer {TOKEN}",
        # A header spelled with a space ({ "alg": ...}: "eyAi..."), and a payload and signature
        # alone (the header of every dev token is the same constant).
        "/items?jwt=eyAiYWxnIjogIkhTMjU2IiB9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl",
        "/items?q=eyJzdWIiOiJhbGljZSIsImV4cCI6MTB9.c2lnbmF0dXJlc2lnbmF0dXJl",
        f"authorization: bearer {TOKEN}==",
    ],
)
def test_tokens_are_redacted(line: str) -> None:
    assert TOKEN not in redact(line)
    assert "c2lnbmF0dXJl" not in redact(line)  # no part of it, in any encoding
    assert "<redacted>" in redact(line)


def test_every_spelling_of_the_key_reaches_the_server_as_token() -> None:
    # What the redaction must cover: Starlette (the local /ws) reads these names as `token`.
    from starlette.datastructures import QueryParams

    for query in ("%74oken=v", "to%6Ben=v"):
        assert QueryParams(query).get("token") == "v", query


def test_a_placeholder_in_a_help_text_is_kept() -> None:
    line = "401 missing token: pass ?token=<JWT> or Authorization: Bearer <JWT>"
    assert redact(line) == line


def test_other_parameters_are_kept() -> None:
    assert redact("/items?q=lamp&limit=5&tag=token") == "/items?q=lamp&limit=5&tag=token"


def test_uvicorn_access_lines_are_redacted_argument_by_argument() -> None:
    # uvicorn's AccessFormatter formats from record.args, so each argument is redacted in place.
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/ws?token={TOKEN}", "1.1", 101),
        None,
    )
    assert RedactTokens().filter(record)
    assert record.args == ("127.0.0.1:5000", "GET", "/ws?token=<redacted>", "1.1", 101)
    assert TOKEN not in record.getMessage()


def test_every_uvicorn_handler_redacts() -> None:
    config = uvicorn_log_config()
    assert config["handlers"]
    assert all("redact_tokens" in handler["filters"] for handler in config["handlers"].values())


def test_a_traceback_keeps_its_file_names() -> None:
    line = 'File "/work/app/.venv/lib/python3.11/site-packages/starlette/_exception_handler.py", line 42'
    assert redact(line) == line
