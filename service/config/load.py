"""Load ``Settings``: defaults < ``config.yaml`` (or ``SWITCHBOARD_CONFIG``) < environment.

Every key ``foo_bar`` can be set as ``SWITCHBOARD_FOO_BAR``. Anything wrong — a bad value, an
unknown yaml key, a ``SWITCHBOARD_*`` variable that is a near miss of a key — raises
``ConfigError`` naming the key; the CLI turns it into one line on stderr and exit code 2.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr, ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, EnvSettingsSource
from pydantic_settings.sources.utils import parse_env_vars

from service.config.environment import classify, is_service_link, resembles
from service.config.model import Settings, env_name

log = logging.getLogger("switchboard.config")
_EXPECTED = {  # pydantic error type -> how we say it
    "int_parsing": "expected an integer", "int_type": "expected an integer",
    "int_from_float": "expected an integer", "float_parsing": "expected a number",
    "float_type": "expected a number", "bool_parsing": "expected true or false",
    "bool_type": "expected true or false", "string_type": "expected a string",
}


class ConfigError(ValueError):
    """A configuration value is missing or malformed."""


class _EnvironmentSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping (``os.environ`` or a test's)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._environ, bool(self.case_sensitive), bool(self.env_ignore_empty),
                              self.env_parse_none_str)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values")
    unknown = sorted(set(loaded) - set(Settings.model_fields), key=str)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(map(_with_hint, unknown))}")
    return loaded


def _with_hint(key: object) -> str:
    near = resembles(str(key), Settings.model_fields)
    return f"{key} (did you mean {near}?)" if near else str(key)


def _describe(error: ErrorDetails, from_env: set[str], file_keys: set[str], path: Path) -> str:
    if not error["loc"]:  # a rule across keys
        return error["msg"].removeprefix("Value error, ")
    key = str(error["loc"][0])
    where = env_name(key) if key in from_env or key not in file_keys else f"in {path}"
    kind = error["type"]
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        text = f"expected one of {expected.replace(' or ', ', ')}"
    elif kind == "value_error":
        text = error["msg"].removeprefix("Value error, ")
    else:
        text = _EXPECTED.get(kind) or error["msg"].replace("Input should be", "expected a value")
    if kind != "value_error" and Settings.model_fields[key].annotation is not SecretStr:
        text += f", got {error['input']!r}"
        if isinstance(error["input"], str) and is_service_link(error["input"]):
            text += (" (a Kubernetes service link for a service named like this variable? "
                     "rename the service or set enableServiceLinks: false)")
    return f"{key} ({where}): {text}"


def load_settings(
    env: Mapping[str, str] | None = None, config_path: Path | None = None
) -> Settings:
    """Defaults < yaml file < environment. Raises ConfigError; warns about unknown variables."""
    env = os.environ if env is None else env
    path = config_path or Path(env.get(env_name("config"), "config.yaml"))
    values: dict[str, Any] = {}
    if path.is_file():
        values = _read_yaml(path)
    elif config_path is not None or env_name("config") in env:
        raise ConfigError(f"{env_name('config')}: no such file {str(path)!r}")

    report = classify(env, Settings.model_fields)
    if report.near_misses:
        raise ConfigError("; ".join(
            f"{miss.variable} is not a setting: did you mean {env_name(miss.key)} ({miss.key})?"
            for miss in report.near_misses))
    if report.unknown:
        log.warning("ignoring environment variable(s) that are not settings: %s",
                    ", ".join(report.unknown))

    from_env = _EnvironmentSource(Settings, env)()
    try:
        return Settings(**{**values, **from_env})
    except ValidationError as exc:
        raise ConfigError("; ".join(
            _describe(error, set(from_env), set(values), path) for error in exc.errors())) from None
