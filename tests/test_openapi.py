"""/openapi.json is valid OpenAPI 3.1 generated from ROUTES; /docs is served without a CDN."""

from __future__ import annotations

import re

from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate

from api.openapi import build, openapi_path
from api.routes import ROUTES


async def test_served_document_is_valid_openapi_31(client: TestClient) -> None:
    resp = await client.get("/openapi.json")
    assert resp.status == 200 and resp.content_type == "application/json"
    doc = await resp.json()
    assert doc["openapi"].startswith("3.1")
    validate(doc)  # raises with the offending pointer if not valid 3.1
    assert doc == build(ROUTES)


def test_every_route_is_documented_with_its_roles() -> None:
    doc = build(ROUTES)
    for route in ROUTES:
        op = doc["paths"][openapi_path(route.path)][route.method.lower()]
        assert op["x-roles"] == list(route.roles or [])
        assert op["x-rate-bucket"] == route.rate_bucket
        assert str(route.status) in op["responses"]
        if route.roles is None:
            assert op["security"] == [] and "401" not in op["responses"]
        else:
            assert {"bearerAuth": []} in op["security"]
            assert {"401", "403"} <= set(op["responses"])
            for role in route.roles:
                assert role in op["description"]
        if route.body is not None:
            assert "requestBody" in op
        if route.query is not None:
            names = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
            assert names == set(route.query.model_fields)
        for name in re.findall(r"\{([^}:]+)", route.path):
            assert {"name": name, "in": "path"}.items() <= next(
                p for p in op["parameters"] if p["name"] == name).items()
    count = sum(len(methods) for methods in doc["paths"].values())
    assert count == len({(r.method, r.path) for r in ROUTES})


def test_every_ref_resolves_in_components() -> None:
    doc = build(ROUTES)
    text = str(doc)
    refs = set(re.findall(r"'#/components/schemas/([^']+)'", text))
    assert refs and refs <= set(doc["components"]["schemas"])
    assert "$defs" not in text  # all hoisted


async def test_docs_page_uses_only_local_assets(client: TestClient) -> None:
    resp = await client.get("/docs")
    assert resp.status == 200 and resp.content_type == "text/html"
    html = await resp.text()
    assert "/openapi.json" in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets and all(a.startswith("/docs/static/") for a in assets), assets
    assert not re.search(r"https?://", html)
    for asset in assets:
        r = await client.get(asset)
        assert r.status == 200, asset
        assert len(await r.read()) > 100
    bundle = await (await client.get("/docs/static/swagger-ui-bundle.js")).text()
    assert "SwaggerUIBundle" in bundle
    assert (await client.get("/docs/static/../../api/app.py")).status == 404
    assert (await client.get("/docs/static/swagger-editor.js")).status == 404
