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
        f"Authorization: Bearer {TOKEN}",
        f"authorization: bearer {TOKEN}==",
    ],
)
def test_tokens_are_redacted(line: str) -> None:
    assert TOKEN not in redact(line)
    assert "<redacted>" in redact(line)


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
    assert all(handler["filters"] == ["redact_tokens"] for handler in config["handlers"].values())
