"""Encryption of stored secrets (the Asterisk password in ``system_settings``).

Fernet (AES-128-CBC + HMAC-SHA256, with a timestamp) under a key derived with HKDF-SHA256 from
``Settings.secret_key`` — or, when that is empty, from a random secret generated once and kept in
the data dir (``<data_dir>/secret_key``), so stored values survive restarts. Changing the secret
makes stored values unreadable: ``decrypt`` then raises ``SecretUnreadable``.
"""

from __future__ import annotations

import base64
import functools

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from api.config import Settings, persistent_secret

_INFO = b"switchboard/system-settings/v1"


class SecretUnreadable(Exception):
    """The ciphertext was made under another key, or is corrupt."""


class SecretBox:
    """Encrypts and decrypts short secrets; ciphertexts are ASCII (Fernet tokens)."""

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("an empty secret cannot key the encryption")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
            secret.encode("utf-8")
        )
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError) as exc:
            raise SecretUnreadable("stored secret cannot be decrypted with this key") from exc


def secret_box(settings: Settings) -> SecretBox:
    """The box for these settings (``secret_key``, else the persistent one in ``data_dir``)."""
    secret = (settings.secret_key.get_secret_value()
              or persistent_secret(settings.data_dir, "secret_key"))
    return _box(secret)


@functools.lru_cache(maxsize=8)
def _box(secret: str) -> SecretBox:
    return SecretBox(secret)
