"""The local server's console: the app's request lines, warnings and errors, and never a token.

uvicorn's access log prints each request line as the client sent it, so
``/ws?token=<JWT>`` would show a live token: it is redacted here.
"""

import copy
import logging
import re
from typing import Any

_SECRETS = [
    (re.compile(r"(?i)\b((?:access_|id_)?token=)[^&\s\"']+"), r"\1<redacted>"),
    (re.compile(r"(?i)\b(bearer\s+)[\w.~+/-]+=*"), r"\1<redacted>"),
]


def redact(text: str) -> str:
    """`text` with every token value (query parameter or bearer credential) replaced."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


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


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's own logging configuration, with RedactTokens on each of its handlers."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact_tokens": {"()": "devtools.logs.RedactTokens"}}
    for handler in config["handlers"].values():
        handler["filters"] = ["redact_tokens"]
    return config
