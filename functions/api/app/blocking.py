"""Blocking calls (botocore's) from the async request path: inline on Lambda, in a worker thread elsewhere.

A Lambda container serves one request at a time, so a blocking call holds nobody
else up, and a thread would cost more than the call: Mangum runs each invocation
as its own task and anyio stops a task's worker threads when it ends, so every
request would start a new thread (docs/performance.md). Under `make run` and the
tests' servers many requests share one event loop: there the call runs in a
worker thread. The edge middleware decides per request (`aws.event` in the ASGI
scope means Mangum).
"""

from collections.abc import Callable
from contextvars import ContextVar
from typing import ParamSpec, TypeVar

from starlette.concurrency import run_in_threadpool

_P = ParamSpec("_P")
_T = TypeVar("_T")
_INLINE: ContextVar[bool] = ContextVar("blocking_calls_inline", default=False)


def call_inline(inline: bool) -> None:
    """Set how this request's blocking calls run; its task's context keeps it."""
    _INLINE.set(inline)


async def blocking(call: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """`call(*args, **kwargs)`: inline on Lambda, else in a worker thread."""
    if _INLINE.get():
        return call(*args, **kwargs)
    return await run_in_threadpool(call, *args, **kwargs)
