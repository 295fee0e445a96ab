"""OpenAPI 3.1, generated from the route table (``api.routes.ROUTES``) — never written by hand.

Per route: method, path, summary, tags, the roles (``x-roles`` and the description), security
(bearer header or ``access_token`` cookie), path parameters (``*id`` ones are UUIDs), query
parameters from ``Route.query``, the request body from ``Route.body``, the success response from
``Route.response`` (any pydantic model or type, via ``TypeAdapter``) and the error responses every
route can give (400/401/403/404/422/429, seed error shape). All pydantic ``$defs`` land in
``components/schemas``.

Served at ``/openapi.json``; Swagger UI at ``/docs``, its assets served by us from the
``swagger-ui-py`` package (no CDN: the machines may be offline).
"""

from __future__ import annotations

import importlib.util
import re
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from api.routing import Route

REF = "#/components/schemas/{model}"
ERROR = "SeedError"
ERROR_ITEM = "SeedValidationErrorItem"
_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")

DESCRIPTION = """\
Switchboard REST API (seed: Smart Call Center API). Every path also answers under `/api/v1/`.

**Authentication**: `POST /api/auth/login` returns a JWT access token (send it as
`Authorization: Bearer <token>`) and a single-use refresh token for `POST /api/auth/refresh`
(rotation; a reused refresh token revokes the whole session). With `?cookie=true` both are set
as httpOnly `SameSite=Strict` cookies instead; cookie-authenticated requests that change state
must send an `X-Requested-With` header (CSRF defence), else 403 `AUTH_005`.

**Roles**: each operation lists the roles allowed (`x-roles`); others get 403 `AUTH_003`;
no or a bad token gets 401.

**Rate limits** (per user, per client IP before login; per minute): auth 5, dashboard 60,
other API 100. Over the limit: 429 `RATE_001` with `Retry-After` (seconds).
"""


def _error_schemas() -> dict[str, Any]:
    return {
        ERROR_ITEM: {
            "type": "object", "required": ["loc", "msg", "type"],
            "properties": {
                "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                "msg": {"type": "string"}, "type": {"type": "string"},
                "ctx": {"type": "object"},
            },
        },
        ERROR: {
            "type": "object", "required": ["detail"],
            "description": "The seed's error shape; 422 validation errors carry a list in "
                           "`detail` (one item per field).",
            "properties": {
                "detail": {"anyOf": [{"type": "string"},
                                     {"type": "array", "items": {"$ref": REF.format(
                                         model=ERROR_ITEM)}}]},
                "type": {"type": "string"},
                "code": {"type": ["string", "null"]},
                "field": {"type": ["string", "null"]},
            },
        },
    }


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF.format(model=ERROR)}}},
    }
    if headers:
        response["headers"] = headers
    return response


def openapi_path(path: str) -> str:
    """aiohttp's ``{name:regex}`` -> OpenAPI's ``{name}``."""
    return _PARAM.sub(lambda m: "{" + m.group(1) + "}", path)


def path_params(path: str) -> list[str]:
    return _PARAM.findall(path)


def operation_id(route: Route) -> str:
    slug = re.sub(r"[^a-zA-Z0-9]+", "_", openapi_path(route.path).removeprefix("/api/"))
    return f"{route.method.lower()}_{slug.strip('_')}"


def _all_optional(model: Any) -> bool:
    return (isinstance(model, type) and issubclass(model, BaseModel)
            and not any(f.is_required() for f in model.model_fields.values()))


def _allows_null(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    if any(_allows_null(s) for key in ("anyOf", "oneOf") for s in schema.get(key, ())):
        return True
    return not ({"type", "anyOf", "oneOf", "$ref", "const", "enum", "allOf"} & set(schema))


def _drop_null_defaults(node: Any) -> None:
    """``x: int = None`` (pydantic: "may be omitted; null is refused") gives ``default: null``
    on a non-nullable schema, which OpenAPI rejects: such a field is just optional."""
    if isinstance(node, dict):
        if "default" in node and node["default"] is None and not _allows_null(node):
            del node["default"]
        for value in node.values():
            _drop_null_defaults(value)
    elif isinstance(node, list):
        for value in node:
            _drop_null_defaults(value)


def _version() -> str:
    try:
        return metadata.version("switchboard")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def build(routes: list[Route]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes``."""
    inputs: list[tuple[tuple[int, str], JsonSchemaMode, TypeAdapter[Any]]] = []
    parts: tuple[tuple[str, JsonSchemaMode], ...] = (
        ("body", "validation"), ("query", "validation"), ("response", "serialization"))
    for i, route in enumerate(routes):
        for part, mode in parts:
            model = getattr(route, part)
            if model is not None:
                inputs.append(((i, part), mode, TypeAdapter(model)))
    by_key, defs = TypeAdapter.json_schemas(inputs, ref_template=REF) if inputs else ({}, {})
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    _drop_null_defaults(schemas)
    _drop_null_defaults(by_key)
    schemas.update(_error_schemas())

    def schema_of(i: int, part: str, mode: JsonSchemaMode) -> dict[str, Any]:
        return dict(by_key[((i, part), mode)])

    def resolve(schema: dict[str, Any]) -> dict[str, Any]:
        ref = schema.get("$ref", "")
        return schemas[ref.rsplit("/", 1)[1]] if ref.startswith("#/components/schemas/") \
            else schema

    paths: dict[str, dict[str, Any]] = {}
    for i, route in enumerate(routes):
        params: list[dict[str, Any]] = []
        for name in path_params(route.path):
            schema = {"type": "string", "format": "uuid"} if name.endswith("id") \
                else {"type": "string"}
            params.append({"name": name, "in": "path", "required": True, "schema": schema})
        if route.query is not None:
            query = resolve(schema_of(i, "query", "validation"))
            required = set(query.get("required", ()))
            for name, prop in query.get("properties", {}).items():
                param: dict[str, Any] = {"name": name, "in": "query",
                                         "required": name in required, "schema": prop}
                if prop.get("description"):
                    param["description"] = prop["description"]
                params.append(param)

        success: dict[str, Any] = {"description": "Success"}
        if route.status != 204 and route.response is not None:
            success["content"] = {"application/json": {
                "schema": schema_of(i, "response", "serialization")}}
        elif route.status != 204:  # undeclared: JSON or not (e.g. a CSV export)
            success["content"] = {"*/*": {"schema": {}}}
        responses: dict[str, Any] = {str(route.status): success}
        if route.body is not None:
            responses["400"] = _error("Malformed JSON body")
        if route.roles is not None:
            responses["401"] = _error("No token, or an invalid, expired or revoked one "
                                      "(AUTH_001, AUTH_002)")
            responses["403"] = _error("Role not allowed (AUTH_003), user inactive (AUTH_004), "
                                      "or cookie auth without X-Requested-With (AUTH_005)")
        if path_params(route.path):
            responses["404"] = _error("Not found")
        if route.body is not None or route.query is not None:
            responses["422"] = _error("Validation error: one item per invalid field")
        responses["429"] = _error("Rate limit exceeded (RATE_001)", headers={
            "Retry-After": {"description": "Seconds until the limit resets",
                            "schema": {"type": "integer"}}})
        responses["default"] = _error("Error (the seed's error shape)")

        roles = list(route.roles) if route.roles is not None else []
        who = ", ".join(roles) if route.roles is not None else "public (no token)"
        op: dict[str, Any] = {
            "operationId": operation_id(route),
            "summary": route.summary or f"{route.method} {route.path}",
            "description": f"Roles: {who}. Rate limit bucket: {route.rate_bucket}.",
            "tags": list(route.tags),
            "x-roles": roles,
            "x-rate-bucket": route.rate_bucket,
            "security": ([{"bearerAuth": []}, {"cookieAuth": []}]
                         if route.roles is not None else []),
            "responses": responses,
        }
        if params:
            op["parameters"] = params
        if route.body is not None:
            op["requestBody"] = {
                "required": not _all_optional(route.body),
                "content": {"application/json": {
                    "schema": schema_of(i, "body", "validation")}},
            }
        paths.setdefault(openapi_path(route.path), {})[route.method.lower()] = op

    return {
        "openapi": "3.1.0",
        "info": {"title": "Switchboard API", "version": _version(), "description": DESCRIPTION},
        "servers": [{"url": "/"}],
        "tags": [{"name": t} for t in sorted({t for r in routes for t in r.tags})],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "access_token"},
            },
        },
    }


# --------------------------------------------------------------------------- /docs


def swagger_ui_dir() -> Path:
    """Swagger UI 5 (OpenAPI 3.1) assets shipped by the ``swagger-ui-py`` package."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed (pip install -e .)")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


ASSETS = {"swagger-ui.css": "text/css", "swagger-ui-bundle.js": "application/javascript",
          "favicon-32x32.png": "image/png"}

DOCS_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Switchboard API</title>
  <link rel="stylesheet" href="/docs/static/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/static/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/static/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
      persistAuthorization: true,
      // cookie sessions need it (CSRF defence); harmless with a bearer token
      requestInterceptor: (req) => { req.headers["X-Requested-With"] = "SwaggerUI"; return req; },
    });
  </script>
</body>
</html>
"""


def setup(app: web.Application, routes: list[Route]) -> None:
    """Serve ``/openapi.json`` (built now, from ``routes``), ``/docs`` and its assets."""
    document = orjson.dumps(build(routes))

    async def openapi_json(request: web.Request) -> web.Response:
        return web.Response(body=document, content_type="application/json")

    async def docs(request: web.Request) -> web.Response:
        return web.Response(text=DOCS_HTML, content_type="text/html",
                            headers={"Cache-Control": "no-cache"})

    async def asset(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in ASSETS:
            raise web.HTTPNotFound()
        return web.FileResponse(swagger_ui_dir() / name, headers={
            "Content-Type": ASSETS[name], "Cache-Control": "public, max-age=86400"})

    app.router.add_get("/openapi.json", openapi_json)
    app.router.add_get("/docs", docs)
    app.router.add_get("/docs/static/{name}", asset)
