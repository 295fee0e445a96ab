"""The ``Settings`` model: every key, its default and what a valid value is.

``Settings(**values)`` reads nothing but its arguments (tests and benchmarks build it that way);
``service.config.load_settings`` adds ``config.yaml`` and the environment. Secrets are
``SecretStr``: they never appear in a repr, a log line or an error message.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "SWITCHBOARD_"
# A configured JWT secret must be at least this long: an HS256 key shorter than the hash can be
# guessed offline from any token (RFC 7518 §3.2). Generated secrets are far longer.
JWT_SECRET_MIN_BYTES = 32
# The user password rule; the admin password follows it too.
PASSWORD_MIN_LENGTH = 6
_URL_SCHEMES = {
    "database_url": ("postgres://", "postgresql://"),
    "redis_url": ("redis://", "rediss://", "unix://"),
    "ari_url": ("http://", "https://"),
}
_TEXT_KEYS = (
    "http_host", "database_url", "redis_url", "jwt_secret", "secret_key", "admin_username",
    "admin_password", "ari_url", "ari_username", "ari_password", "ari_app", "ami_host",
    "ami_username", "ami_secret", "mango_api_key", "mango_api_salt",
)


Port = Annotated[int, Field(ge=1, le=65535)]
Count = Annotated[int, Field(ge=0)]
Seconds = Annotated[int, Field(gt=0)]
PositiveNumber = Annotated[float, Field(gt=0)]


def env_name(key: str) -> str:
    return ENV_PREFIX + key.upper()


class Settings(BaseSettings):
    """Typed, immutable configuration; ``config.yaml`` documents every key."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="forbid", coerce_numbers_to_str=True,
    )

    http_host: str = "127.0.0.1"
    http_port: Port = 8001
    data_dir: Path = Path("./.data")
    database_url: str = ""
    redis_url: str = ""
    jwt_secret: SecretStr = SecretStr("")
    token_ttl: Seconds = 86400
    refresh_token_ttl: Count = 30 * 86400
    rate_limits: bool = True
    rate_limit_auth: Count = 5
    rate_limit_dashboard: Count = 60
    rate_limit_api: Count = 100
    secret_key: SecretStr = SecretStr("")
    admin_username: str = "admin"
    admin_password: SecretStr = SecretStr("")
    ari_url: str = ""
    ari_username: str = ""
    ari_password: SecretStr = SecretStr("")
    ari_app: str = "switchboard"
    ami_host: str = ""
    ami_port: Port = 5038
    ami_username: str = ""
    ami_secret: SecretStr = SecretStr("")
    mango_api_key: SecretStr = SecretStr("")
    mango_api_salt: SecretStr = SecretStr("")
    simulator: Literal["auto", "on", "off"] = "auto"
    simulator_rate: PositiveNumber = 6.0
    ws_auth_timeout: PositiveNumber = 10.0
    ws_queue_size: Count = 1000
    timezone: str = "UTC"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only the arguments: the environment and the yaml file are load_settings()'s business,
        # so a test's Settings(...) never depends on the machine it runs on.
        return (init_settings,)

    # -- validation ---------------------------------------------------------------------------

    @field_validator(*_TEXT_KEYS, mode="before")
    @classmethod
    def _empty_is_blank(cls, value: Any) -> Any:
        return "" if value is None else value  # `key:` with no value in yaml

    @field_validator("log_level", mode="before")
    @classmethod
    def _any_case(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("data_dir")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator(*_URL_SCHEMES)
    @classmethod
    def _url_scheme(cls, value: str, info: ValidationInfo) -> str:
        schemes = _URL_SCHEMES[str(info.field_name)]
        if value and not value.startswith(schemes):
            shown = re.sub(r"[^/@]*@", "***@", value, count=1)  # no password in the message
            raise ValueError(f"expected a URL starting with {' or '.join(schemes)}, got {shown!r}")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}: expected an IANA name such as UTC or Europe/Moscow"
            ) from None
        return value

    @field_validator("jwt_secret")
    @classmethod
    def _strong_jwt_secret(cls, value: SecretStr) -> SecretStr:
        size = len(value.get_secret_value().encode())
        if 0 < size < JWT_SECRET_MIN_BYTES:
            raise ValueError(
                f"too short ({size} bytes): at least {JWT_SECRET_MIN_BYTES} bytes, "
                "or leave it empty to have one generated in data_dir"
            )
        return value

    @field_validator("admin_password")
    @classmethod
    def _strong_admin_password(cls, value: SecretStr) -> SecretStr:
        size = len(value.get_secret_value())
        if 0 < size < PASSWORD_MIN_LENGTH:
            raise ValueError(
                f"too short ({size} characters): at least {PASSWORD_MIN_LENGTH}, as for every "
                "user, or leave it empty to have one generated and printed once"
            )
        return value

    @model_validator(mode="after")
    def _ari_needs_credentials(self) -> Settings:
        if self.ari_url and not (self.ari_username and self.ari_password.get_secret_value()):
            raise ValueError(
                f"ari_url is set: {env_name('ari_username')} and {env_name('ari_password')} "
                "are required too"
            )
        return self

    @model_validator(mode="after")
    def _ami_needs_credentials(self) -> Settings:
        if self.ami_host and not (self.ami_username and self.ami_secret.get_secret_value()):
            raise ValueError(
                f"{env_name('ami_host')} is set: {env_name('ami_username')} and "
                f"{env_name('ami_secret')} "
                "are required too"
            )
        return self

    # -- derived ------------------------------------------------------------------------------

    @property
    def pbx_configured(self) -> bool:
        return bool(self.ari_url or self.ami_host)

    @property
    def simulator_enabled(self) -> bool:
        return self.simulator == "on" or (self.simulator == "auto" and not self.pbx_configured)

    @property
    def tzinfo(self) -> ZoneInfo:
        """The center's time zone (``timezone``); storage stays UTC."""
        return ZoneInfo(self.timezone)

    def replace(self, **changes: Any) -> Settings:
        """A validated copy with ``changes`` (as ``dataclasses.replace``).

        Not ``model_copy(update=...)``: that skips validation, so a plain string would stay
        where a ``SecretStr`` belongs and a bad value would pass unnoticed.
        """
        current = {name: getattr(self, name) for name in type(self).model_fields}
        return type(self)(**{**current, **changes})
