"""/api/admin/settings: system settings and the Asterisk connection test (seed 001,
Администрирование). Every route is admin only.

* Settings: ``asterisk_config`` is one Asterisk interface, ``protocol`` ARI or AMI. Its
  ``password`` (ARI password or AMI secret) is stored Fernet-encrypted (``api/crypto.py``) and
  answered as ``"********"`` when one is stored, ``null`` when none. A PUT is partial (missing
  fields keep their value); a password of ``null`` or ``"********"`` keeps the stored one, ``""``
  clears it. A PUT that changes the effective connection (enable/disable, protocol, host, port,
  credentials, timeout) re-initialises the PBX connection at once
  (``PbxConnection.reconfigure``); disabling goes back to the configured default
  (``SWITCHBOARD_ARI_URL`` and/or ``_AMI_HOST``, simulator or none). When enabled, the stored
  connection also wins at start-up.
* ``settings/asterisk/test`` always answers HTTP 200 with the seed's body: ``success`` true or
  false; on failure ``data.code`` is AST_001 (timeout), AST_002 (credentials) or AST_004
  (unavailable, or not ARI/AMI). ARI: ``GET /ari/asterisk/info``. AMI: banner, login, ping and
  ``CoreSettings``; ``data.warnings`` says when events carry no ``Timestamp``
  (``timestampevents`` off). The port defaults to 8088 (ARI) or 5038 (AMI). A password of
  ``null``/``"********"`` tests with the stored one.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, Field, field_validator

from api.crypto import SecretBox, SecretUnreadable, secret_box
from api.errors import json_response
from api.http import UNSENT, invalid_field, parse_body, to_json
from api.routing import Route
from api.state import SERVICES, Services, current_user
from connectors.ami.client import AmiConfig
from connectors.ami.commands import probe as probe_ami
from connectors.ari.client import AriConfig
from connectors.ari.commands import probe
from engine.errors import DomainError
from engine.roles import Role
from service.pbx import Connection
from storage.settings import SystemSettingsStore

log = logging.getLogger("switchboard.admin")

ADMIN = (Role.ADMIN,)
PASSWORD_MASK = "********"
HOST_PATTERN = r"^[A-Za-z0-9._:\[\]-]+$"
DEFAULT_PORTS = {"ARI": 8088, "AMI": 5038}
Protocol = Literal["ARI", "AMI"]


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


class AsteriskConfigIn(BaseModel):
    host: str = Field(UNSENT, min_length=1, max_length=253, pattern=HOST_PATTERN)
    port: int = Field(UNSENT, ge=1, le=65535)
    username: str = Field(UNSENT, max_length=128)
    password: str | None = Field(None, max_length=256)
    protocol: Protocol = UNSENT
    timeout: int = Field(UNSENT, ge=1, le=300)
    enabled: bool = UNSENT

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_upper(cls, value: Any) -> Any:
        return _upper(value)


class SettingsIn(BaseModel):
    """Partial SystemSettings; ``updated_by`` / ``updated_at`` are set by the server."""

    call_recording: bool = UNSENT
    auto_answer_delay: int = Field(UNSENT, ge=0, le=3600)
    max_call_duration: int = Field(UNSENT, ge=1, le=86400)
    queue_timeout: int = Field(UNSENT, ge=1, le=86400)
    callback_enabled: bool = UNSENT
    sms_notifications: bool = UNSENT
    email_notifications: bool = UNSENT
    asterisk_config: AsteriskConfigIn = UNSENT


class AsteriskConfigOut(BaseModel):
    host: str
    port: int
    username: str
    password: str | None = Field(description=f'"{PASSWORD_MASK}" when stored, null when none')
    protocol: str
    timeout: int
    enabled: bool


class SettingsOut(BaseModel):
    call_recording: bool
    auto_answer_delay: int
    max_call_duration: int
    queue_timeout: int
    callback_enabled: bool
    sms_notifications: bool
    email_notifications: bool
    asterisk_config: AsteriskConfigOut
    updated_by: UUID | None
    updated_at: datetime


class AsteriskTestBody(BaseModel):
    host: str = Field(min_length=1, max_length=253, pattern=HOST_PATTERN)
    port: int | None = Field(None, ge=1, le=65535, description="default: 8088 ARI, 5038 AMI")
    username: str = Field(min_length=1, max_length=128)
    password: str | None = Field(None, max_length=256)
    protocol: Protocol = "ARI"
    timeout: int = Field(10, ge=1, le=300)

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_upper(cls, value: Any) -> Any:
        return _upper(value)


class AsteriskTestResult(BaseModel):
    success: bool
    message: str
    data: dict[str, Any]


# -- settings ---------------------------------------------------------------------------------

DEFAULTS: dict[str, Any] = {
    "call_recording": False,
    "auto_answer_delay": 0,
    "max_call_duration": 3600,
    "queue_timeout": 300,
    "callback_enabled": False,
    "sms_notifications": False,
    "email_notifications": False,
    "asterisk_config": {
        "host": "127.0.0.1", "port": 8088, "username": "", "password_enc": None,
        "protocol": "ARI", "timeout": 30, "enabled": False,
    },
}


def _effective(data: dict[str, Any]) -> dict[str, Any]:
    """Stored settings over the defaults (unknown stored keys are dropped)."""
    merged = {k: data.get(k, v) for k, v in DEFAULTS.items() if k != "asterisk_config"}
    stored_ast = data.get("asterisk_config")
    stored_ast = stored_ast if isinstance(stored_ast, dict) else {}
    merged["asterisk_config"] = {k: stored_ast.get(k, v)
                                 for k, v in DEFAULTS["asterisk_config"].items()}
    return merged


def _decrypt(box: SecretBox, token: str | None) -> str | None:
    if not token:
        return None
    try:
        return box.decrypt(token)
    except SecretUnreadable:
        log.warning("the stored Asterisk password cannot be decrypted (secret_key changed?)")
        return None


def _ari_url(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6 literal
    return f"http://{host}:{port}"


def _connection(settings: dict[str, Any], box: SecretBox, app: str) -> Connection | None:
    """The ARI or AMI connection these (effective) settings ask for; None when not enabled."""
    ast = settings["asterisk_config"]
    if not ast["enabled"]:
        return None
    secret = _decrypt(box, ast["password_enc"]) or ""
    if ast["protocol"] == "AMI":
        return AmiConfig(ast["host"], ast["port"], ast["username"], secret, float(ast["timeout"]))
    return AriConfig(_ari_url(ast["host"], ast["port"]), ast["username"], secret, app,
                     float(ast["timeout"]))


async def stored_connection(services: Services) -> Connection | None:
    """The admin's saved connection when enabled (used at start-up by ``api/app.py``)."""
    stored = await SystemSettingsStore(services.pool).get()
    return _connection(_effective(stored.data), secret_box(services.settings),
                       services.settings.ari_app)


def _settings_json(settings: dict[str, Any], updated_by: str | None,
                   updated_at: datetime) -> dict[str, Any]:
    out = {k: v for k, v in settings.items() if k != "asterisk_config"}
    ast = dict(settings["asterisk_config"])
    ast["password"] = PASSWORD_MASK if ast.pop("password_enc", None) else None
    out["asterisk_config"] = ast
    out["updated_by"] = updated_by
    out["updated_at"] = to_json(updated_at)
    return out


async def get_settings(request: web.Request) -> web.Response:
    stored = await SystemSettingsStore(request.app[SERVICES].pool).get()
    return json_response(_settings_json(_effective(stored.data), stored.updated_by,
                                        stored.updated_at))


def _apply(current: dict[str, Any], body: SettingsIn, box: SecretBox) -> dict[str, Any]:
    """The new stored dict: ``current`` (effective) with the fields the body sent."""
    new = _effective(current)
    for name in body.model_fields_set - {"asterisk_config"}:
        new[name] = getattr(body, name)
    if "asterisk_config" in body.model_fields_set and body.asterisk_config is not None:
        ast_in = body.asterisk_config
        ast = new["asterisk_config"]
        for name in ast_in.model_fields_set - {"password"}:
            value = getattr(ast_in, name)
            if value is not None:
                ast[name] = value
        password = ast_in.password if "password" in ast_in.model_fields_set else None
        if password == "":
            ast["password_enc"] = None
        elif password is not None and password != PASSWORD_MASK:
            ast["password_enc"] = box.encrypt(password)
    return new


async def put_settings(request: web.Request) -> web.Response:
    body = await parse_body(request, SettingsIn)
    services = request.app[SERVICES]
    box = secret_box(services.settings)
    app = services.settings.ari_app
    store = SystemSettingsStore(services.pool)
    user_id = str(current_user(request)["id"])
    async with services.pbx.settings_lock:  # the stored and the live connection, in order
        new_effective: dict[str, Any] = {}

        def change(current: dict[str, Any]) -> dict[str, Any]:
            new_effective.update(_apply(current, body, box))
            ast = new_effective["asterisk_config"]
            if ast["enabled"] and not ast["username"]:
                raise invalid_field("SettingsIn", "asterisk_config", "username_required",
                               "asterisk_config.username is required when enabled", None)
            return new_effective

        old, new = await store.update(change, user_id)
        old_conn = _connection(_effective(old.data), box, app)
        new_conn = _connection(new_effective, box, app)
        if new_conn != old_conn or (new_conn is not None and services.pbx.config != new_conn):
            await services.pbx.reconfigure(new_conn)
    return json_response(_settings_json(new_effective, new.updated_by, new.updated_at))


# -- Asterisk connection test -----------------------------------------------------------------

_FAILURES: dict[str, dict[str, Any]] = {
    "AST_001": {
        "error": "Connection timeout",
        "message": "Connection timeout: Не удалось подключиться к {host}:{port} за {timeout} с",
        "possible_causes": [
            "Asterisk сервер не запущен",
            "Неверный порт",
            "Брандмауэр блокирует подключение",
            "Сервер перегружен и не отвечает вовремя",
        ],
        "troubleshooting": [
            "Проверьте доступность Asterisk сервера",
            "Убедитесь в корректности хоста и порта (http.conf: bindaddr, bindport)",
            "Проверьте настройки брандмауэра",
            "Увеличьте timeout",
        ],
    },
    "AST_002": {
        "error": "Authentication failed",
        "message": "Authentication failed: Asterisk отклонил учетные данные ARI для {host}:{port}",
        "possible_causes": [
            "Неверное имя пользователя ARI",
            "Неверный пароль ARI",
            "Пользователь не описан в ari.conf",
        ],
        "troubleshooting": [
            "Убедитесь в корректности учетных данных",
            "Проверьте секцию пользователя в ari.conf (type = user, password)",
            "Выполните 'ari show users' в консоли Asterisk",
        ],
    },
    "AST_004": {
        "error": "ARI unavailable",
        "message": "ARI unavailable: ARI недоступен на {host}:{port}",
        "possible_causes": [
            "Asterisk сервер не запущен",
            "Неверный хост или порт",
            "HTTP-сервер Asterisk выключен (http.conf: enabled = no)",
            "ARI выключен (ari.conf: enabled = no)",
        ],
        "troubleshooting": [
            "Проверьте доступность Asterisk сервера",
            "Включите HTTP-сервер в http.conf и ARI в ari.conf",
            "Выполните 'http show status' в консоли Asterisk",
            "Проверьте настройки брандмауэра",
        ],
    },
}


# The same codes for AMI, with what to check on the manager side.
_AMI_FAILURES: dict[str, dict[str, Any]] = {
    "AST_001": {
        "error": "Connection timeout",
        "message": "Connection timeout: AMI на {host}:{port} не ответил за {timeout} с",
        "possible_causes": [
            "Asterisk сервер не запущен",
            "Неверный порт (AMI слушает 5038 по умолчанию)",
            "Брандмауэр блокирует подключение",
            "Сервер перегружен и не отвечает вовремя",
        ],
        "troubleshooting": [
            "Проверьте доступность Asterisk сервера",
            "Убедитесь в корректности хоста и порта (manager.conf: bindaddr, port)",
            "Проверьте настройки брандмауэра",
            "Увеличьте timeout",
        ],
    },
    "AST_002": {
        "error": "Authentication failed",
        "message": "Authentication failed: Asterisk отклонил учетные данные AMI для {host}:{port}",
        "possible_causes": [
            "Неверное имя пользователя AMI",
            "Неверный secret AMI",
            "Пользователь не описан в manager.conf или его адрес не разрешён (permit/deny)",
        ],
        "troubleshooting": [
            "Убедитесь в корректности учетных данных",
            "Проверьте секцию пользователя в manager.conf "
            "(secret, permit, read = call,agent,system)",
            "Выполните 'manager show users' в консоли Asterisk",
        ],
    },
    "AST_004": {
        "error": "AMI unavailable",
        "message": "AMI unavailable: AMI недоступен на {host}:{port}",
        "possible_causes": [
            "Asterisk сервер не запущен",
            "Неверный хост или порт",
            "AMI выключен (manager.conf: enabled = no)",
            "На этом порту отвечает не AMI (например, HTTP/ARI на 8088)",
        ],
        "troubleshooting": [
            "Проверьте доступность Asterisk сервера",
            "Включите AMI в manager.conf ([general] enabled = yes) и выполните 'manager reload'",
            "Выполните 'manager show settings' в консоли Asterisk",
            "Проверьте настройки брандмауэра",
        ],
    },
}


def _code_of(exc: DomainError) -> str:
    """Timeout and refused credentials keep their code; anything else is "unavailable"."""
    return exc.code if exc.code in ("AST_001", "AST_002") else "AST_004"


def _test_failure(body: AsteriskTestBody, port: int, exc: DomainError) -> dict[str, Any]:
    code = _code_of(exc)
    failure = (_AMI_FAILURES if body.protocol == "AMI" else _FAILURES)[code]
    return {
        "success": False,
        "message": failure["message"].format(host=body.host, port=port, timeout=body.timeout),
        "data": {
            "error": failure["error"],
            "code": code,
            "details": {
                "host": body.host,
                "port": port,
                "reason": exc.message,
                "possible_causes": failure["possible_causes"],
            },
            "troubleshooting": failure["troubleshooting"],
        },
    }


async def test_asterisk(request: web.Request) -> web.Response:
    """Really connect with these settings and timeout: ARI ``GET /ari/asterisk/info``; AMI
    banner, login, ping and ``CoreSettings``."""
    body = await parse_body(request, AsteriskTestBody)
    services = request.app[SERVICES]
    port = body.port or DEFAULT_PORTS[body.protocol]
    password = body.password
    if password is None or password == PASSWORD_MASK:
        stored = _effective((await SystemSettingsStore(services.pool).get()).data)
        password = _decrypt(secret_box(services.settings),
                            stored["asterisk_config"]["password_enc"]) or ""
    extra: dict[str, Any] = {}
    try:
        if body.protocol == "AMI":
            found = await probe_ami(AmiConfig(body.host, port, body.username, password,
                                              float(body.timeout)))
            version, system = found.version, found.system
            extra = {"timestamp_events": found.timestamp_events,
                     "warnings": list(found.warnings)}
        else:
            ari = await probe(AriConfig(_ari_url(body.host, port), body.username, password,
                                        services.settings.ari_app, float(body.timeout)))
            version, system = ari.version, ari.system
    except DomainError as exc:
        if not exc.code.startswith("AST_"):
            raise
        return json_response(_test_failure(body, port, exc))
    return json_response({
        "success": True,
        "message": f"Успешное подключение к Asterisk {version}",
        "data": {
            "asterisk_version": version,
            "system": system,
            "connection_details": {"host": body.host, "port": port,
                                   "protocol": body.protocol, "status": "Connected"},
            **extra,
        },
    })


TAGS = ("admin",)
ROUTES: list[Route] = [
    Route("GET", "/api/admin/settings", get_settings, ADMIN, "System settings",
          response=SettingsOut, tags=TAGS),
    Route("PUT", "/api/admin/settings", put_settings, ADMIN,
          "Update system settings (re-initialises the PBX connection when it changes)",
          body=SettingsIn, response=SettingsOut, tags=TAGS),
    Route("POST", "/api/admin/settings/asterisk/test", test_asterisk, ADMIN,
          "Test an Asterisk ARI or AMI connection (ARI: GET /ari/asterisk/info; AMI: banner, "
          "login, ping, CoreSettings)",
          body=AsteriskTestBody, response=AsteriskTestResult, tags=TAGS),
]
