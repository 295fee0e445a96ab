"""Small request/response helpers shared by the views."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from api.errors import ApiError, validation_detail
from ws.messages import iso

M = TypeVar("M", bound=BaseModel)


class MalformedJson(ApiError):
    status, code, detail = 400, None, "Request body is not valid JSON"


async def parse_body(request: web.Request, model: type[M]) -> M:
    """The JSON body validated by ``model``: 400 if not JSON, 422 (seed detail list) if invalid."""
    raw = await request.read()
    try:
        data = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        raise MalformedJson() from None
    return model.model_validate(data)


def parse_query(request: web.Request, model: type[M]) -> M:
    """Query parameters validated by ``model``: 422 with ``loc: ["query", field]``."""
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        raise QueryInvalid(validation_detail(exc, "query")) from None


class QueryInvalid(ApiError):
    status, code = 422, None

    def __init__(self, detail: list[dict[str, Any]]) -> None:
        super().__init__("invalid query")
        self.items = detail


class NotFound(ApiError):
    status, code, detail = 404, "DB_002", "Not found"


def uuid_param(request: web.Request, name: str, *, code: str = "DB_002") -> str:
    """A path parameter that must be a UUID; anything else is an unknown id (404)."""
    raw = request.match_info[name]
    try:
        return str(UUID(raw))
    except ValueError:
        raise NotFound(f"{name} not found", code=code) from None


def to_json(value: Any) -> Any:
    """asyncpg values -> JSON-friendly values (UUID -> str, datetimes -> ISO-8601 Z)."""
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return iso(value if value.tzinfo else value.replace(tzinfo=UTC))
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


def row_json(row: Any, *, drop: tuple[str, ...] = ("password_hash",)) -> dict[str, Any]:
    return {k: to_json(v) for k, v in dict(row).items() if k not in drop}
