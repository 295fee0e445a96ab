"""Small request/response helpers shared by the views."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

import orjson
from aiohttp import web
from pydantic import BaseModel

from api.errors import ApiError
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
