"""Configuration: the typed ``Settings`` (pydantic-settings), how they are loaded, and the
secrets generated in the data dir. Every layer above ``engine`` may import it."""

from service.config.generated import persistent_secret
from service.config.load import ConfigError, load_settings
from service.config.model import (
    ENV_PREFIX,
    JWT_SECRET_MIN_BYTES,
    PASSWORD_MIN_LENGTH,
    Settings,
    env_name,
)

__all__ = [
    "ENV_PREFIX", "JWT_SECRET_MIN_BYTES", "PASSWORD_MIN_LENGTH", "ConfigError", "Settings",
    "env_name", "load_settings", "persistent_secret",
]
