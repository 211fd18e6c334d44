"""Request errors as HTTP answers, for the thin API methods of ``services/service.py``.

    @bentoml.api
    @http_errors
    def embed(self, user_id: UserId, ...) -> EmbedResult: ...

A :class:`~qanchor.serving.schemas.ServingError` becomes a JSON response with its status and a
body ``{"error": ..., **detail}`` (e.g. the valid scenario names with a 400). BentoML's own
error path would answer the same status, but it wraps the body in a list and cannot carry
details. Anything else propagates, and BentoML answers 500: a bug, not a bad request.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from qanchor.serving.schemas import ServingError

F = TypeVar("F", bound=Callable[..., Any])


def http_errors(fn: F) -> F:
    """Wrap an API method so request errors return their status instead of raising."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from starlette.responses import JSONResponse

        try:
            return fn(*args, **kwargs)
        except ServingError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)

    return wrapper  # type: ignore[return-value]
