"""The local server's console: the app's request lines, warnings and errors, and never a token."""

import copy
import logging
import re
from typing import Any
from urllib.parse import unquote_plus

# Why the app refused the WebSocket handshake being served (set by the app in the connection's
# task, read by ExpectedRefusals in the same task once the app has returned).
from app.observability import REFUSED_HANDSHAKE

# uvicorn's access log prints the request line as sent: `/ws?token=<JWT>` would show a live token.
_QUERY_PARAMETER = re.compile(r"([?&])([^=&\s\"'#]+)=([^&\s\"'#]*)")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[\w.~+/%-]+=*")
# A JWT wherever it stands (after `%3D`, `;`, in a path), its characters bare or percent-encoded:
# base64url header (starting "{", so "ey" or "ew"), payload and signature; and any run of two or
# more long base64url segments joined by dots (a token's payload and signature alone give it away:
# its header is a known constant).
_B64 = r"(?:[\w-]|%[0-9A-Fa-f]{2})"
_DOT = r"(?:\.|%2[Ee])"
_JWT = re.compile(
    rf"(?:e|%65)(?:[wy]|%7[79]){_B64}*{_DOT}{_B64}+{_DOT}{_B64}*"
    rf"|{_B64}{{16,}}(?:{_DOT}{_B64}{{8,}})+"
)


def _decoded(name: str) -> str:
    """A parameter name as a server reads it, decoded until nothing changes (double encodings too)."""
    while (decoded := unquote_plus(name)) != name:
        name = decoded
    return name.strip().lower()


def _parameter(match: re.Match[str]) -> str:
    separator, name, value = match.groups()
    placeholder = value.startswith("<") and value.endswith(">")  # `?token=<JWT>` in a help text
    secret = _decoded(name).endswith("token") and value and not placeholder
    return f"{separator}{name}={'<redacted>' if secret else value}"


def redact(text: str) -> str:
    """`text` with every token replaced: a query parameter named *token, a bearer credential, any JWT."""
    return _JWT.sub("<redacted>", _BEARER.sub(r"\1<redacted>", _QUERY_PARAMETER.sub(_parameter, text)))


class RedactTokens(logging.Filter):
    """Redacts tokens in a record's message and in each of its arguments (uvicorn formats from them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True


# uvicorn logs this ERROR for a handshake the app refused with an HTTP answer, as if never completed.
_UNCOMPLETED_HANDSHAKE = "ASGI callable returned without completing handshake."


class ExpectedRefusals(logging.Filter):
    """A refused handshake is an expected answer, not an error: INFO, with the reason."""

    def filter(self, record: logging.LogRecord) -> bool:
        reason = REFUSED_HANDSHAKE.get()
        if reason is not None and record.getMessage() == _UNCOMPLETED_HANDSHAKE:
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg, record.args = "WebSocket handshake refused: %s", (reason,)
        return True


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's own logging configuration, with RedactTokens and ExpectedRefusals on its handlers."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {
        "redact_tokens": {"()": "devtools.logs.RedactTokens"},
        "expected_refusals": {"()": "devtools.logs.ExpectedRefusals"},
    }
    for handler in config["handlers"].values():
        handler["filters"] = ["expected_refusals", "redact_tokens"]
    return config
