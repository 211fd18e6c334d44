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
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from qanchor.serving.schemas import ServingError

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)
# The logger BentoML reports every failed request on (``log_exception``).
BENTOML_REQUEST_LOGGER = "bentoml._internal.server.http_app"


def http_errors(fn: F) -> F:
    """Wrap an API method so request errors return their status instead of raising."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from starlette.responses import JSONResponse

        try:
            return fn(*args, **kwargs)
        except ServingError as exc:
            if exc.status < 500:
                log.info("%s: %d %s", fn.__name__, exc.status, exc.message)
            return JSONResponse(exc.body(), status_code=exc.status)

    return wrapper  # type: ignore[return-value]


def client_status(exc: BaseException | None) -> int | None:
    """The 4xx status a request error answers with (None: not a client error)."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        return 400
    status = getattr(getattr(exc, "error_code", None), "value", None)
    return status if isinstance(status, int) and 400 <= status < 500 else None


class ClientErrorLog(logging.Filter):
    """Turn BentoML's ERROR-with-traceback for a bad request into one INFO line.

    A malformed body (a whitespace query, ``max_tokens: true``) is the caller's mistake:
    logged at ERROR with a stack trace it buried real faults and woke on-call alerts on log
    level. Server errors (5xx, unexpected exceptions) pass unchanged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        status = client_status(exc)
        if status is None:
            return True
        summary = " ".join(str(exc).split())[:300]
        record.msg = (
            f"{record.getMessage().replace('Exception on', 'client error on')}: {status} {summary}"
        )
        record.args, record.exc_info, record.exc_text = (), None, None
        record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def quiet_client_errors() -> None:
    """Install :class:`ClientErrorLog` on BentoML's request logger (once per process)."""
    logger = logging.getLogger(BENTOML_REQUEST_LOGGER)
    if not any(isinstance(f, ClientErrorLog) for f in logger.filters):
        logger.addFilter(ClientErrorLog())
