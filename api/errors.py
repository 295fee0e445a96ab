"""One place that turns errors into the seed's error shape.

``{"detail": str, "type": str, "code": str | null, "field": str | null}`` for every error, and
``{"detail": [{"loc", "msg", "type", "ctx"}]}`` for 422 validation errors. Never a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from pydantic import ValidationError

log = logging.getLogger("switchboard.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Domain errors carry a seed code but no HTTP status; the status is decided here.
STATUS_BY_CODE = {
    "AUTH_001": 401, "AUTH_002": 401, "AUTH_003": 403, "AUTH_004": 403,
    "USER_001": 409, "USER_002": 409, "USER_003": 409, "USER_004": 404, "USER_005": 409,
    "AST_001": 504, "AST_002": 502, "AST_003": 400, "AST_004": 503, "AST_005": 404,
    "AST_006": 409,
    "DB_001": 503, "DB_002": 404, "DB_003": 422, "DB_004": 409,
}
TYPE_BY_STATUS = {
    400: "bad_request", 401: "authentication_error", 403: "permission_error",
    404: "not_found", 405: "method_not_allowed", 409: "conflict", 422: "validation_error",
    429: "rate_limit_error", 502: "upstream_error", 503: "service_unavailable",
    504: "upstream_timeout",
}


class ApiError(Exception):
    """An error that already knows its HTTP answer (auth, malformed requests)."""

    status: int = 400
    code: str | None = None
    detail: str = "Bad request"
    field: str | None = None

    def __init__(self, detail: str | None = None, *, field: str | None = None,
                 code: str | None = None, status: int | None = None) -> None:
        super().__init__(detail or self.detail)
        self.detail = detail or self.detail
        self.field = field or self.field
        self.code = code or self.code
        self.status = status or self.status


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


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        if hasattr(exc, "items"):  # a query/path validation error: the seed's detail list
            return json_response({"detail": exc.items}, status=422)
        return json_response(error_body(exc.status, exc.detail, exc.code, exc.field),
                             status=exc.status, headers=getattr(exc, "headers", None))
    except ValidationError as exc:
        return json_response({"detail": validation_detail(exc)}, status=422)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_response(error_body(exc.status, exc.reason), status=exc.status,
                             headers={k: v for k, v in exc.headers.items()
                                      if k.lower() == "allow"})
    except Exception as exc:
        code = getattr(exc, "code", None)
        if isinstance(code, str) and code in STATUS_BY_CODE:
            status = STATUS_BY_CODE[code]
            return json_response(
                error_body(status, str(exc), code, getattr(exc, "field", None)), status=status
            )
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_response(error_body(500, "Internal server error"), status=500)
