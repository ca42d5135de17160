"""API keys, rate limits, the body-size cap and error bodies, as one ASGI middleware.

Keys are never stored: settings hold SHA-256 digests (``reelscope hash-key`` makes one),
and a presented key is hashed and compared in constant time. When any digest is
configured, every route but ``/healthz``, ``/readyz`` and ``/metrics`` needs a key, sent as
``Authorization: Bearer KEY`` or ``X-API-Key: KEY`` (``?api_key=KEY`` works for the
docs pages only, so a browser can open them).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reelscope.settings import Settings

log = structlog.get_logger("reelscope.api")

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
DOCS_PATHS = frozenset({"/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"})


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def load_key_digests(settings: Settings) -> list[str]:
    digests = [d.strip().lower() for d in settings.api_keys if d.strip()]
    if settings.api_keys_file is not None:
        for line in Path(settings.api_keys_file).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                digests.append(line.lower())
    if settings.require_api_keys and not digests:
        raise ValueError(
            "this deployment requires API keys (REELSCOPE_REQUIRE_API_KEYS): make one with "
            '`reelscope hash-key` and set REELSCOPE_API_KEYS=["<digest>"] or '
            "REELSCOPE_API_KEYS_FILE"
        )
    for digest in digests:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(
                "REELSCOPE_API_KEYS / REELSCOPE_API_KEYS_FILE must hold SHA-256 hex digests "
                "of keys, not keys; make one with `reelscope hash-key`"
            )
    return digests


class TokenBuckets:
    """``rate`` requests a minute per caller, with bursts up to ``rate``."""

    def __init__(self, rate_per_minute: int) -> None:
        self.capacity = float(max(1, rate_per_minute))
        self.refill_per_s = self.capacity / 60.0
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, caller: str) -> float:
        """0 when allowed; otherwise seconds until the next request would be."""
        now = time.monotonic()
        with self._lock:
            tokens, stamp = self._buckets.get(caller, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - stamp) * self.refill_per_s)
            if tokens >= 1:
                self._buckets[caller] = (tokens - 1, now)
                return 0.0
            self._buckets[caller] = (tokens, now)
            return (1 - tokens) / self.refill_per_s


def _error(kind: str, message: str) -> bytes:
    return json.dumps({"detail": {"type": kind, "message": message}}).encode()


class _BodyTooLarge(Exception):
    pass


class GatewayMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.digests = load_key_digests(settings)
        self.buckets = TokenBuckets(settings.rate_limit_per_minute)
        self.max_body = settings.max_request_bytes

    @property
    def auth_enabled(self) -> bool:
        return bool(self.digests)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
        }
        if path in OPEN_PATHS:
            await self._guarded_app(scope, receive, send)
            return
        if self.auth_enabled:
            key_id = self._authenticate(headers, scope, path)
            if key_id is None:
                await _respond(
                    send,
                    401,
                    _error(
                        "Unauthorized",
                        "send a valid API key as 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                    ),
                    {"www-authenticate": "Bearer"},
                )
                return
            wait = self.buckets.take(key_id)
            if wait > 0:
                retry_after = str(max(1, math.ceil(wait)))
                await _respond(
                    send,
                    429,
                    _error(
                        "RateLimited", f"too many requests for this key; retry in {retry_after} s"
                    ),
                    {"retry-after": retry_after},
                )
                return
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await _respond(
                send,
                413,
                _error("RequestTooLarge", f"request bodies are limited to {self.max_body} bytes"),
            )
            return
        await self._guarded_app(scope, self._capped(receive), send)

    def _authenticate(self, headers: dict[str, str], scope: Scope, path: str) -> str | None:
        key = headers.get("x-api-key")
        auth = headers.get("authorization", "")
        if key is None and auth.lower().startswith("bearer "):
            key = auth[7:].strip()
        if key is None and path in DOCS_PATHS:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            key = (query.get("api_key") or [None])[0]
        if not key:
            return None
        digest = hash_key(key)
        for known in self.digests:
            if hmac.compare_digest(digest, known):
                return known[:12]
        return None

    def _capped(self, receive: Receive) -> Receive:
        seen = 0

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise _BodyTooLarge()
            return message

        return wrapped

    async def _guarded_app(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Errors become JSON without stack traces or paths; the log keeps the detail."""
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _respond(
                    send,
                    413,
                    _error(
                        "RequestTooLarge", f"request bodies are limited to {self.max_body} bytes"
                    ),
                )
        except Exception as exc:
            incident = hashlib.sha256(f"{time.time_ns()}".encode()).hexdigest()[:12]
            log.exception("api.unhandled", incident=incident, path=scope.get("path"))
            if started:
                return
            kind, status, message = "Internal", 500, "internal error"
            if exc.__class__.__name__ in ("RPCError", "ServiceUnavailableError", "ConnectError"):
                kind, status, message = "TemporalUnavailable", 503, "Temporal is not reachable"
            await _respond(
                send,
                status,
                _error(kind, f"{message}; the API log has the details under incident {incident}"),
            )


async def _respond(
    send: Send, status: int, body: bytes, headers: dict[str, str] | None = None
) -> None:
    raw: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def key_header_dependency() -> Any:
    """Declares the key in the OpenAPI schema, so /docs shows an Authorize button."""
    from fastapi.security import APIKeyHeader

    return APIKeyHeader(
        name="X-API-Key",
        auto_error=False,
        description="Needed when the server has API keys configured.",
    )
