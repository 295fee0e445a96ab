"""Small request/response helpers shared by the views."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from api.errors import validation_detail
from engine.errors import DomainError, InvalidInput, MalformedRequest, RecordNotFound
from ws.messages import iso

M = TypeVar("M", bound=BaseModel)

# The default of a field in a partial update (PUT): pydantic does not validate defaults, so a
# field left out stays unset while an explicit ``null`` is still refused by the field's type.
UNSENT: Any = None


async def parse_body(request: web.Request, model: type[M]) -> M:
    """The JSON body validated by ``model``: 400 if not JSON, 422 (seed detail list) if invalid."""
    raw = await request.read()
    try:
        data = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        raise MalformedRequest() from None
    return model.model_validate(data)


def parse_query(request: web.Request, model: type[M]) -> M:
    """Query parameters validated by ``model``: 422 with ``loc: ["query", field]``."""
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        raise InvalidInput(validation_detail(exc, "query")) from None


def uuid_param(request: web.Request, name: str, *,
               not_found: type[DomainError] = RecordNotFound) -> str:
    """A path parameter that must be a UUID; anything else is an unknown id (404)."""
    raw = request.match_info[name]
    try:
        return str(UUID(raw))
    except ValueError:
        raise not_found(f"{name} not found") from None


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


def invalid_field(model: str, field: str, kind: str, message: str, value: Any) -> ValidationError:
    """A pydantic ValidationError for one body field (the middleware answers the seed's 422)."""
    error = PydanticCustomError(kind, message)
    details: list[InitErrorDetails] = [{"type": error, "loc": (field,), "input": value}]
    return ValidationError.from_exception_data(model, details)
