"""What the front door tells its operators: HTTP metrics, one access line per request, and
/metrics on a port apart from the public API.

- `stafet_http_requests_total{route, method, status}` and
  `stafet_http_request_duration_seconds{route, method}`: `route` is the route's template
  (`/v1/events`), or `unmatched` for any path no route answers, so a caller cannot grow
  the metrics' label sets by inventing paths.
- One `http_request` log line per request with the method, the route template, the status
  and the duration; never the path as sent nor its query string, which may carry what must
  not be logged (a CPR number in a mistyped URL). uvicorn's own access log, which writes
  both, stays off (`stafet serve` passes --no-access-log): exactly one line per request,
  in the same JSON as every other.
- The operations port (HTTP_PORT): /livez, /readyz and /metrics, served like every other
  service's (shared/platform/health.py), so the public port that the ingress exposes
  never answers /metrics.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from shared.platform import metrics

log = structlog.get_logger("frontdoor.http")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

UNMATCHED = "unmatched"


class RequestMetrics:
    """ASGI middleware: counts, times and logs every HTTP request once it is answered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client sees when the app raises before answering

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            seconds = time.perf_counter() - started
            route = route_of(scope)
            method = str(scope.get("method", ""))
            metrics.HTTP_REQUESTS.labels(route, method, str(status)).inc()
            metrics.HTTP_SECONDS.labels(route, method).observe(seconds)
            log.info("http_request", method=method, route=route, status=status,
                     duration_ms=round(seconds * 1000, 1))


def route_of(scope: Scope) -> str:
    """The template of the route that answered (FastAPI puts it in the scope), else `unmatched`."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED
