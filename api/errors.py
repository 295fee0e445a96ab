"""One place that turns errors into the seed's error shape.

``{"detail": str, "type": str, "code": str | null, "field": str | null}`` for every error, and
``{"detail": [{"loc", "msg", "type", "ctx"}]}`` for 422 validation errors. Never a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

import orjson
from aiohttp import web
from pydantic import ValidationError

from engine.errors import DomainError, InvalidInput, StorageUnavailable
from storage.availability import CONNECTION_ERRORS

log = logging.getLogger("switchboard.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@runtime_checkable
class HasHeaders(Protocol):
    """An error that adds response headers (a 429's Retry-After)."""

    def headers(self) -> dict[str, str]: ...


# The one table from error code to HTTP status (tests/test_errors.py fails on a code without one).
STATUS_BY_CODE = {
    "AUTH_001": 401, "AUTH_002": 401, "AUTH_003": 403, "AUTH_004": 403, "AUTH_005": 403,
    "USER_001": 409, "USER_002": 409, "USER_003": 409, "USER_004": 404, "USER_005": 409,
    "USER_006": 422,
    "AST_000": 502, "AST_001": 504, "AST_002": 502, "AST_003": 400, "AST_004": 503,
    "AST_005": 404, "AST_006": 409, "AST_007": 400, "AST_008": 502,
    "DB_001": 503, "DB_002": 404, "DB_003": 422, "DB_004": 409, "GROUP_001": 409,
    "REQ_001": 400, "VAL_001": 422, "RATE_001": 429, "RATE_002": 429,
}
TYPE_BY_STATUS = {
    400: "bad_request", 401: "authentication_error", 403: "permission_error",
    404: "not_found", 405: "method_not_allowed", 409: "conflict", 422: "validation_error",
    429: "rate_limit_error", 502: "upstream_error", 503: "service_unavailable",
    504: "upstream_timeout",
}


def error_body(status: int, detail: Any, code: str | None = None,
               field: str | None = None) -> dict[str, Any]:
    return {"detail": detail, "type": TYPE_BY_STATUS.get(status, "error"), "code": code,
            "field": field}


def json_response(data: Any, status: int = 200, **kwargs: Any) -> web.Response:
    return web.Response(
        body=orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS),
        status=status, content_type="application/json", **kwargs,
    )


def validation_detail(exc: ValidationError, location: str = "body") -> list[dict[str, Any]]:
    """Pydantic errors in the seed's per-field shape."""
    detail = []
    for err in exc.errors(include_url=False):
        item: dict[str, Any] = {
            "loc": [location, *err["loc"]],
            "msg": err["msg"],
            "type": err["type"],
        }
        if err.get("ctx"):
            item["ctx"] = {k: v if isinstance(v, int | float | str | bool) else str(v)
                           for k, v in err["ctx"].items()}
        detail.append(item)
    return detail


def status_of(exc: DomainError) -> int:
    return STATUS_BY_CODE.get(exc.code, 500)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except InvalidInput as exc:
        return json_response({"detail": exc.items}, status=422)
    except DomainError as exc:
        status = status_of(exc)
        if status == 500:
            log.error("error code %s has no HTTP status", exc.code)
        headers = exc.headers() if isinstance(exc, HasHeaders) else None
        return json_response(error_body(status, exc.message, exc.code, exc.field),
                             status=status, headers=headers)
    except ValidationError as exc:
        return json_response({"detail": validation_detail(exc)}, status=422)
    except CONNECTION_ERRORS as exc:
        # PostgreSQL or Redis unreachable: the client may retry later; no stack trace per request.
        log.warning("storage unavailable on %s %s: %r", request.method, request.path, exc)
        err = StorageUnavailable()
        return json_response(error_body(503, err.message, err.code), status=503)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_response(error_body(exc.status, exc.reason), status=exc.status,
                             headers={k: v for k, v in exc.headers.items()
                                      if k.lower() == "allow"})
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_response(error_body(500, "Internal server error"), status=500)
