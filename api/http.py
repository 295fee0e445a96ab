"""Small request/response helpers shared by the views."""

from __future__ import annotations

import re
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


# C0 controls but tab, LF, CR; and DEL. PostgreSQL cannot store NUL in text at all (the query
# would fail: a 500), and no field of this API has a use for the others.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def control_characters(data: Any, location: str) -> list[dict[str, Any]]:
    """One seed 422 item per string (key or value, at any depth) holding a control character."""
    found: list[dict[str, Any]] = []

    def walk(value: Any, loc: list[Any]) -> None:
        if isinstance(value, str):
            if _CONTROL.search(value):
                found.append({"loc": [location, *loc], "type": "string_control_character",
                              "msg": "Control characters (such as NUL) are not allowed"})
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(key, [*loc, key])
                walk(item, [*loc, key])
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, [*loc, index])

    walk(data, [])
    return found


async def parse_body(request: web.Request, model: type[M]) -> M:
    """The JSON body validated by ``model``: 400 if not JSON, 422 (seed detail list) if invalid
    or if any string in it holds a control character."""
    raw = await request.read()
    try:
        data = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        raise MalformedRequest() from None
    if bad := control_characters(data, "body"):
        raise InvalidInput(bad)
    return model.model_validate(data)


def parse_query(request: web.Request, model: type[M], *,
                context: dict[str, Any] | None = None) -> M:
    """Query parameters validated by ``model`` (with pydantic's validation ``context``): 422
    with ``loc: ["query", field]`` (also for a control character in any parameter)."""
    params = dict(request.query)
    if bad := control_characters(params, "query"):
        raise InvalidInput(bad)
    try:
        return model.model_validate(params, context=context)
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
