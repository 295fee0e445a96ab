"""The one error model: every DomainError anywhere in the code base has an HTTP status."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

from api.errors import STATUS_BY_CODE, error_middleware
from engine.errors import DomainError

PACKAGES = ("engine", "storage", "service", "connectors", "ws", "api")


def _all_subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | _all_subclasses(sub)
    return found


def _import_everything() -> None:
    for name in PACKAGES:
        package = importlib.import_module(name)
        for module in pkgutil.walk_packages(package.__path__, f"{name}."):
            importlib.import_module(module.name)


def test_every_error_code_has_an_http_status() -> None:
    _import_everything()
    errors = _all_subclasses(DomainError)
    assert len(errors) > 20  # the walk found the code base's errors
    missing = {cls.__qualname__: cls.code for cls in errors if cls.code not in STATUS_BY_CODE
               and cls.code != "AST_000"}
    assert missing == {}


def test_distinct_situations_have_distinct_codes() -> None:
    from storage.users import ExtensionRequired, UnknownGroup

    assert ExtensionRequired.code != UnknownGroup.code
    from connectors.ari.errors import AriBadConfig, AriBadRequest

    assert AriBadConfig.code != AriBadRequest.code


@pytest.mark.parametrize("code", sorted(STATUS_BY_CODE))
async def test_middleware_answers_each_code_with_its_status(code: str) -> None:
    from aiohttp.test_utils import make_mocked_request

    error = type("Some", (DomainError,), {"code": code})("refused", field="x")

    async def handler(request: object) -> None:
        raise error

    response = await error_middleware(make_mocked_request("GET", "/"), handler)
    assert response.status == STATUS_BY_CODE[code]
