"""Kept so ``from api.config import Settings`` goes on working: configuration lives in
``service/config/`` (lower layers may import it; they may not import ``api``)."""

from service.config import (
    ConfigError,
    Settings,
    env_name,
    load_settings,
    persistent_secret,
)

__all__ = ["ConfigError", "Settings", "env_name", "load_settings", "persistent_secret"]
