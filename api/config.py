"""Typed settings: defaults, then ``config.yaml`` (or ``SWITCHBOARD_CONFIG``), then the environment.

Every key ``foo_bar`` of the yaml file can be set as ``SWITCHBOARD_FOO_BAR``. A bad value raises
``ConfigError`` naming the key and what was expected; the CLI turns it into a non-zero exit.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

ENV_PREFIX = "SWITCHBOARD_"
SIMULATOR_MODES = ("auto", "on", "off")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_BOOLS = {"true": True, "1": True, "yes": True, "on": True,
          "false": False, "0": False, "no": False, "off": False}


class ConfigError(ValueError):
    """A configuration value is missing or malformed."""


@dataclass(frozen=True, slots=True)
class Settings:
    http_host: str = "127.0.0.1"
    http_port: int = 8001
    data_dir: Path = Path("./.data")
    database_url: str = ""
    redis_url: str = ""
    jwt_secret: str = ""
    token_ttl: int = 86400
    refresh_token_ttl: int = 30 * 86400
    rate_limits: bool = True
    rate_limit_auth: int = 5
    rate_limit_dashboard: int = 60
    rate_limit_api: int = 100
    secret_key: str = ""
    admin_username: str = "admin"
    admin_password: str = ""
    ari_url: str = ""
    ari_username: str = ""
    ari_password: str = ""
    ari_app: str = "switchboard"
    ami_host: str = ""
    ami_port: int = 5038
    ami_username: str = ""
    ami_secret: str = ""
    mango_api_key: str = ""
    mango_api_salt: str = ""
    simulator: str = "auto"
    simulator_rate: float = 6.0
    ws_auth_timeout: float = 10.0
    ws_queue_size: int = 1000
    log_level: str = "INFO"

    @property
    def pbx_configured(self) -> bool:
        return bool(self.ari_url or self.ami_host)

    @property
    def simulator_enabled(self) -> bool:
        return self.simulator == "on" or (self.simulator == "auto" and not self.pbx_configured)


def env_name(key: str) -> str:
    return ENV_PREFIX + key.upper()


def _coerce(key: str, kind: type, raw: Any) -> Any:
    name = f"{key} ({env_name(key)})"
    if kind is int:
        try:
            value = int(str(raw).strip())
        except ValueError:
            raise ConfigError(f"{name}: expected an integer, got {raw!r}") from None
        if value < 0 or (key.endswith("port") and not 0 < value < 65536):
            raise ConfigError(f"{name}: expected a positive integer/port, got {raw!r}")
        return value
    if kind is float:
        try:
            value_f = float(str(raw).strip())
        except ValueError:
            raise ConfigError(f"{name}: expected a number, got {raw!r}") from None
        if value_f <= 0:
            raise ConfigError(f"{name}: expected a positive number, got {raw!r}")
        return value_f
    if kind is Path:
        return Path(str(raw)).expanduser()
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text not in _BOOLS:
            raise ConfigError(f"{name}: expected true or false, got {raw!r}")
        return _BOOLS[text]
    if raw is None:
        return ""
    if not isinstance(raw, str | int | float):
        raise ConfigError(f"{name}: expected a string, got {type(raw).__name__}")
    return str(raw)


def _validate(s: Settings) -> None:
    if s.simulator not in SIMULATOR_MODES:
        raise ConfigError(
            f"simulator ({env_name('simulator')}): expected one of "
            f"{'|'.join(SIMULATOR_MODES)}, got {s.simulator!r}"
        )
    if s.log_level.upper() not in LOG_LEVELS:
        raise ConfigError(
            f"log_level ({env_name('log_level')}): expected one of {'|'.join(LOG_LEVELS)}"
        )
    if s.token_ttl == 0:
        raise ConfigError(f"token_ttl ({env_name('token_ttl')}): expected seconds > 0")
    for key, prefixes in (
        ("database_url", ("postgres://", "postgresql://")),
        ("redis_url", ("redis://", "rediss://", "unix://")),
        ("ari_url", ("http://", "https://")),
    ):
        value = getattr(s, key)
        if value and not value.startswith(prefixes):
            raise ConfigError(
                f"{key} ({env_name(key)}): expected a URL starting with "
                f"{' or '.join(prefixes)}, got {value!r}"
            )
    if s.ari_url and not (s.ari_username and s.ari_password):
        raise ConfigError(
            f"ari_url is set: {env_name('ari_username')} and {env_name('ari_password')} "
            "are required too"
        )


def load_settings(
    env: Mapping[str, str] | None = None, config_path: Path | None = None
) -> Settings:
    """Defaults < yaml file < environment. Raises ConfigError on a bad value."""
    env = os.environ if env is None else env
    path = config_path or Path(env.get(env_name("config"), "config.yaml"))
    values: dict[str, Any] = {}
    if path.is_file():
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of keys to values")
        values.update(loaded)
    elif config_path is not None or env_name("config") in env:
        raise ConfigError(f"{env_name('config')}: no such file {str(path)!r}")

    known = {f.name: f for f in fields(Settings)}
    unknown = set(values) - set(known)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    for key in known:
        if env_name(key) in env:
            values[key] = env[env_name(key)]

    kinds = {"int": int, "float": float, "Path": Path, "str": str, "bool": bool}
    coerced = {
        key: _coerce(key, kinds[str(known[key].type)], raw) for key, raw in values.items()
    }
    settings = Settings(**coerced)
    _validate(settings)
    return settings


def persistent_secret(data_dir: Path, name: str) -> str:
    """A random secret kept in the data dir, so tokens and encrypted values survive restarts."""
    path = data_dir / name
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    path.write_text(value, encoding="utf-8")
    path.chmod(0o600)
    return value
