"""Secrets generated once and kept in the data dir, so tokens and encrypted values survive
restarts (used when ``jwt_secret`` / ``secret_key`` are not configured)."""

from __future__ import annotations

import secrets
from pathlib import Path


def persistent_secret(data_dir: Path, name: str) -> str:
    """The secret ``data_dir/name``; made (64 characters, mode 0600) on first use."""
    path = data_dir / name
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    path.write_text(value, encoding="utf-8")
    path.chmod(0o600)
    return value
