"""API-key access control and request guards (size, JSON only), as one ASGI middleware.

    QANCHOR_API_KEY=... bentoml serve services.service:QAnchor       # or QANCHOR_API_KEY_FILE=path
    curl -H "Authorization: Bearer $QANCHOR_API_KEY" ...

Every path needs ``Authorization: Bearer <key>`` except the probes and metrics that
orchestrators and Prometheus call without credentials (``OPEN_PATHS``). The key is compared in
constant time (``hmac.compare_digest``) and never logged or echoed; a missing or wrong key is a
401 with a ``WWW-Authenticate`` header. Then, before the API reads anything, a body larger
than the limit is a 413 and a POST whose ``Content-Type`` is not JSON a 415: the APIs speak JSON
only, and BentoML's form parsers would answer a malformed multipart body with a 500.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from qanchor.errors import QAnchorError

KEY_ENV, KEY_FILE_ENV = "QANCHOR_API_KEY", "QANCHOR_API_KEY_FILE"
OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics"})
JSON_TYPES = frozenset({"", "application/json"})  # no type: BentoML reads JSON
MIN_KEY_CHARS = 16

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class KeySettings(BaseSettings):
    """Where the API key comes from: ``QANCHOR_API_KEY`` itself, or a secret file it names."""

    # An empty variable is unset (a manifest's `QANCHOR_API_KEY: ""`), as it always was.
    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore")

    # SecretStr: a repr, a log line or a validation error shows '**********', never the key.
    key: SecretStr | None = Field(None, validation_alias=KEY_ENV, description="the key itself")
    key_file: Path | None = Field(
        None, validation_alias=KEY_FILE_ENV, description="a file holding the key (a secret mount)"
    )

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> KeySettings:
        """From the process environment, or from ``environ`` alone (a test's environment)."""
        if environ is None:
            return cls()
        # Every field given, unset ones as None: init values win over the process environment,
        # which must not leak into a mapping that stands for the whole environment.
        return cls(**{name: environ.get(name) or None for name in (KEY_ENV, KEY_FILE_ENV)})


def load_api_key(environ: Mapping[str, str] | None = None) -> str:
    """The key from ``QANCHOR_API_KEY`` or the file named by ``QANCHOR_API_KEY_FILE``.

    Args:
        environ: the variables to read (default: the process environment).

    Raises:
        QAnchorError: neither is set, the file is unreadable, or the key is too short to guess
            only with difficulty. Messages name the variables, never the value.
    """
    env = KeySettings.from_environ(environ)
    key = env.key.get_secret_value() if env.key else ""
    if not key and env.key_file:
        try:
            key = env.key_file.read_text().strip()
        except OSError as exc:
            raise QAnchorError(
                f"${KEY_FILE_ENV}: cannot read the key file ({exc.strerror})"
            ) from exc
    if not key:
        raise QAnchorError(f"no API key: set ${KEY_ENV} or ${KEY_FILE_ENV} (a secret file)")
    if len(key) < MIN_KEY_CHARS:
        raise QAnchorError(f"the API key must have at least {MIN_KEY_CHARS} characters")
    return key


def authorized(header: str | None, key: str) -> bool:
    """Whether an ``Authorization`` header value carries ``key`` as a bearer token."""
    scheme, _, token = (header or "").partition(" ")
    # compare_digest on bytes: the time taken does not depend on where the strings differ.
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode())


class RequestGuard:
    """ASGI middleware: bearer key on every non-open path, then body size and content type."""

    def __init__(
        self, app: Callable, max_body_bytes: int = 1 << 20, key: str | None = None
    ) -> None:
        self.app, self.max_body_bytes = app, max_body_bytes
        self._key = key or load_api_key()  # fail at start-up, not at the first request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if not authorized(headers.get("authorization"), self._key):
            return await _reply(
                send,
                401,
                "missing or wrong API key (Authorization: Bearer <key>)",
                [(b"www-authenticate", b'Bearer realm="qanchor"')],
            )
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if scope["method"] == "POST" and kind not in JSON_TYPES:
            return await _reply(send, 415, "send JSON (Content-Type: application/json)")
        body = await _read_body(receive, self.max_body_bytes)
        if body is None:
            return await _reply(send, 413, f"request body over {self.max_body_bytes} bytes")
        await self.app(scope, _replay(body, receive), send)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None as soon as it exceeds ``limit`` bytes."""
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away; the app sees an empty body
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > limit:
            return None
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the app the body read already, then the real channel (disconnects)."""
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _reply(send: Send, status: int, message: str, extra: list | None = None) -> None:
    payload = json.dumps({"error": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    await send(
        {"type": "http.response.start", "status": status, "headers": headers + (extra or [])}
    )
    await send({"type": "http.response.body", "body": payload})
