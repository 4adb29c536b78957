"""Blocking calls (botocore's) from the async request path: inline on Lambda, in a worker thread elsewhere."""

from collections.abc import Callable
from contextvars import ContextVar
from typing import ParamSpec, TypeVar

from starlette.concurrency import run_in_threadpool

_P = ParamSpec("_P")
_T = TypeVar("_T")
_INLINE: ContextVar[bool] = ContextVar("blocking_calls_inline", default=False)


def run_blocking_calls_inline(inline: bool) -> None:
    """Set how this request's blocking calls run; its task's context keeps it."""
    _INLINE.set(inline)


async def run_blocking(call: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """`call(*args, **kwargs)`: inline on Lambda, else in a worker thread."""
    # Lambda: one request per container, so inline holds nobody up; and anyio stops a task's worker
    # threads when it ends (Mangum: a task per invocation), so a thread would be a new one per request.
    if _INLINE.get():
        return call(*args, **kwargs)
    return await run_in_threadpool(call, *args, **kwargs)
