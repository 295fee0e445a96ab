"""/api/admin: users, system settings, Asterisk connection test, system info (seed 001,
Администрирование). Every route is admin only.

Decisions (where the seed leaves room):

* Users: the answer is always the seed's User (no password hash, ever). A user has an operator
  row exactly when its role is ``operator``: ``extension`` is required for operators (422 with
  ``loc ["body","extension"]``) and refused for other roles; changing the role away from
  ``operator`` deletes the operator row (call records keep their data, ``operator_id`` becomes
  null). Every change is told to the live engine (``OperatorProvisioned`` / ``OperatorRemoved``).
  The last *active* admin can be neither deleted nor demoted nor deactivated (USER_005).
  ``POST`` answers 201; ``DELETE`` answers ``{"success": true, "message": ...}``.
* Settings: ``asterisk_config.password`` is stored Fernet-encrypted (``api/crypto.py``) and
  answered as ``"********"`` when one is stored, ``null`` when none. A PUT is partial (missing
  fields keep their value); a password of ``null`` or ``"********"`` keeps the stored one, ``""``
  clears it. A PUT that changes the effective ARI connection (enable/disable, host, port,
  credentials, timeout) re-initialises the ARI connector at once (``api.pbx.reconfigure``);
  disabling goes back to the configured default (``SWITCHBOARD_ARI_URL``, simulator or none).
  When enabled, the stored connection also wins at start-up.
* ``settings/asterisk/test`` always answers HTTP 200 with the seed's body: ``success`` true or
  false; on failure ``data.code`` is AST_001 (timeout), AST_002 (credentials) or AST_004 (ARI
  unavailable or not ARI). A password of ``null``/``"********"`` tests with the stored one.
* ``system/info``: ``calls_today`` counts calls whose start is at or after 00:00 UTC today;
  ``asterisk_connected`` is the live ARI events socket (also true for the built-in simulator).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, EmailStr, Field, ValidationError, field_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from api import pbx
from api.auth import hash_password
from api.crypto import SecretBox, SecretUnreadable, secret_box
from api.errors import json_response
from api.http import parse_body, parse_query, row_json, to_json, uuid_param
from api.routing import Route
from api.state import SERVICES, Services, current_user
from connectors.ari.client import AriClient, AriConfig
from connectors.ari.errors import AriAuthFailed, AriError, AriTimeout
from engine.errors import DomainError, DuplicateRecord
from engine.events import OperatorProvisioned, OperatorRemoved
from engine.roles import Role
from storage.settings import SystemSettingsStore, calls_since, database_ok
from storage.users import UnknownGroup, UserExists, UserNotFound

log = logging.getLogger("switchboard.admin")

ADMIN = (Role.ADMIN,)
PASSWORD_MASK = "********"
EXTENSION_PATTERN = r"^[0-9]{3,5}$"
HOST_PATTERN = r"^[A-Za-z0-9._:\[\]-]+$"


# -- errors (no HTTP here: api/errors.py maps the codes) --------------------------------------


class UsernameTaken(DomainError):
    code, default_message = "USER_001", "Username already exists"


class EmailTaken(DomainError):
    code, default_message = "USER_002", "Email already exists"


class ExtensionTaken(DomainError):
    code, default_message = "USER_003", "Extension is already assigned"


def _conflict(exc: UserExists) -> DomainError:
    kinds: dict[str, type[DomainError]] = {
        "username": UsernameTaken, "email": EmailTaken, "extension": ExtensionTaken,
    }
    kind = kinds.get(exc.field, DuplicateRecord)
    return kind(field=exc.field if exc.field in kinds else None)


def _invalid(model: str, field: str, kind: str, message: str, value: Any) -> ValidationError:
    """A pydantic ValidationError for one body field (the middleware answers the seed's 422)."""
    error = PydanticCustomError(kind, message)
    details: list[InitErrorDetails] = [{"type": error, "loc": (field,), "input": value}]
    return ValidationError.from_exception_data(model, details)


# -- models -----------------------------------------------------------------------------------


class UserOut(BaseModel):
    id: UUID
    username: str
    email: str
    name: str
    role: Role
    group_id: UUID | None
    is_active: bool
    created_at: datetime
    updated_at: datetime


class OperatorOut(BaseModel):
    id: UUID
    user_id: UUID
    extension: str
    group_id: UUID | None
    status: Literal["online", "busy", "offline"]
    skills: list[str]
    max_concurrent_calls: int
    current_calls: int
    last_activity: datetime | None
    created_at: datetime


class UsersQuery(BaseModel):
    skip: int = Field(0, ge=0)
    limit: int = Field(100, ge=1, le=1000)
    role: Role | None = None


class UserCreate(BaseModel):
    username: str = Field(min_length=3, max_length=50)
    email: EmailStr = Field(max_length=254)
    name: str = Field("", max_length=200)
    password: str = Field(min_length=6, max_length=256)
    role: Role
    group_id: UUID | None = None
    extension: str | None = Field(None, pattern=EXTENSION_PATTERN)
    is_active: bool = True


class UserUpdate(BaseModel):
    """Partial: only the fields sent change. ``password`` is hashed; no hash is ever accepted."""

    username: str = Field(None, min_length=3, max_length=50)
    email: EmailStr = Field(None, max_length=254)
    name: str = Field(None, max_length=200)
    password: str = Field(None, min_length=6, max_length=256)
    role: Role = None
    group_id: UUID | None = None
    extension: str = Field(None, pattern=EXTENSION_PATTERN)
    is_active: bool = None


class Deleted(BaseModel):
    success: bool
    message: str


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


class AsteriskConfigIn(BaseModel):
    host: str = Field(None, min_length=1, max_length=253, pattern=HOST_PATTERN)
    port: int = Field(None, ge=1, le=65535)
    username: str = Field(None, max_length=128)
    password: str | None = Field(None, max_length=256)
    protocol: Literal["ARI"] = None
    timeout: int = Field(None, ge=1, le=300)
    enabled: bool = None

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_upper(cls, value: Any) -> Any:
        return _upper(value)


class SettingsIn(BaseModel):
    """Partial SystemSettings; ``updated_by`` / ``updated_at`` are set by the server."""

    call_recording: bool = None
    auto_answer_delay: int = Field(None, ge=0, le=3600)
    max_call_duration: int = Field(None, ge=1, le=86400)
    queue_timeout: int = Field(None, ge=1, le=86400)
    callback_enabled: bool = None
    sms_notifications: bool = None
    email_notifications: bool = None
    asterisk_config: AsteriskConfigIn = None


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
    port: int = Field(8088, ge=1, le=65535)
    username: str = Field(min_length=1, max_length=128)
    password: str | None = Field(None, max_length=256)
    protocol: Literal["ARI"] = "ARI"
    timeout: int = Field(10, ge=1, le=300)

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_upper(cls, value: Any) -> Any:
        return _upper(value)


class AsteriskTestResult(BaseModel):
    success: bool
    message: str
    data: dict[str, Any]


class SystemInfo(BaseModel):
    users: int | None
    operators: int | None
    calls_today: int | None
    asterisk_connected: bool
    database_status: Literal["connected", "disconnected"]
    uptime: str


# -- users ------------------------------------------------------------------------------------


async def list_users(request: web.Request) -> web.Response:
    query = parse_query(request, UsersQuery)
    rows = await request.app[SERVICES].users.page(skip=query.skip, limit=query.limit,
                                                  role=query.role)
    return json_response([row_json(r) for r in rows])


def _check_extension(model: str, role: str, extension: str | None, has_operator: bool) -> None:
    if role == Role.OPERATOR and extension is None and not has_operator:
        raise _invalid(model, "extension", "missing", "extension is required for operators",
                       None)
    if role != Role.OPERATOR and extension is not None:
        raise _invalid(model, "extension", "extension_not_allowed",
                       "extension is only for users with role operator", extension)


async def _check_group(services: Services, group_id: UUID | None) -> None:
    if group_id is not None and not await services.users.group_exists(str(group_id)):
        raise UnknownGroup()


async def _tell_engine(services: Services, user_id: str, operator_before: str | None) -> None:
    """Bring the engine's operator directory in line with the user's stored operator row."""
    operator = await services.users.operator_for_user(user_id)
    if operator is not None:
        services.runner.submit(OperatorProvisioned(operator))
    elif operator_before is not None:
        services.runner.submit(OperatorRemoved(operator_before))


async def create_user(request: web.Request) -> web.Response:
    body = await parse_body(request, UserCreate)
    services = request.app[SERVICES]
    _check_extension("UserCreate", body.role, body.extension, has_operator=False)
    await _check_group(services, body.group_id)
    password_hash = await asyncio.to_thread(hash_password, body.password)
    try:
        row = await services.users.create(
            username=body.username, email=body.email, name=body.name, role=body.role,
            password_hash=password_hash,
            group_id=str(body.group_id) if body.group_id else None, extension=body.extension,
        )
    except UserExists as exc:
        raise _conflict(exc) from None
    user_id = str(row["id"])
    if not body.is_active:
        row = await services.users.update(user_id, {"is_active": False})
    await _tell_engine(services, user_id, None)
    return json_response(row_json(row), status=201)


async def update_user(request: web.Request) -> web.Response:
    user_id = uuid_param(request, "user_id", not_found=UserNotFound)
    body = await parse_body(request, UserUpdate)
    services = request.app[SERVICES]
    current = await services.users.by_id(user_id)
    if current is None:
        raise UserNotFound()
    sent = body.model_fields_set
    changes: dict[str, Any] = {
        name: getattr(body, name)
        for name in ("username", "email", "name", "role", "is_active") if name in sent
    }
    if "group_id" in sent:
        await _check_group(services, body.group_id)
        changes["group_id"] = str(body.group_id) if body.group_id else None
    if "password" in sent:
        changes["password_hash"] = await asyncio.to_thread(hash_password, body.password)
    extension = body.extension if "extension" in sent else None
    operator_before = await services.users.operator_id_of(user_id)
    _check_extension("UserUpdate", changes.get("role", current["role"]), extension,
                     has_operator=operator_before is not None)
    try:
        row = await services.users.update(user_id, changes, extension=extension)
    except UserExists as exc:
        raise _conflict(exc) from None
    await _tell_engine(services, user_id, operator_before)
    return json_response(row_json(row))


async def delete_user(request: web.Request) -> web.Response:
    user_id = uuid_param(request, "user_id", not_found=UserNotFound)
    services = request.app[SERVICES]
    operator_id = await services.users.delete(user_id)
    if operator_id is not None:
        services.runner.submit(OperatorRemoved(operator_id))
    return json_response({"success": True, "message": "User deleted"})


async def user_operator(request: web.Request) -> web.Response:
    """The user's operator (stored row overlaid with the engine's live state), or null."""
    user_id = uuid_param(request, "user_id", not_found=UserNotFound)
    services = request.app[SERVICES]
    if await services.users.by_id(user_id) is None:
        raise UserNotFound()
    row = await services.users.operator_row_of(user_id)
    if row is None:
        return json_response(None)
    data = row_json(row)
    live = services.engine.operator(data["id"])
    if live is not None:
        data.update(status=live.status.value, current_calls=live.current_calls,
                    last_activity=to_json(live.last_activity) or data["last_activity"])
    return json_response(data)


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


def _ari_config(settings: dict[str, Any], box: SecretBox, app: str) -> AriConfig | None:
    """The ARI connection these (effective) settings ask for; None when not enabled."""
    ast = settings["asterisk_config"]
    if not ast["enabled"]:
        return None
    return AriConfig(_ari_url(ast["host"], ast["port"]), ast["username"],
                     _decrypt(box, ast["password_enc"]) or "", app, float(ast["timeout"]))


async def stored_ari_config(services: Services) -> AriConfig | None:
    """The admin's saved ARI connection when enabled (used at start-up by ``api/app.py``)."""
    stored = await SystemSettingsStore(services.pool).get()
    return _ari_config(_effective(stored.data), secret_box(services.settings),
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
    lock: asyncio.Lock = services.pbx.setdefault("settings_lock", asyncio.Lock())
    async with lock:  # the stored and the live connection change together, in order
        new_effective: dict[str, Any] = {}

        def change(current: dict[str, Any]) -> dict[str, Any]:
            new_effective.update(_apply(current, body, box))
            ast = new_effective["asterisk_config"]
            if ast["enabled"] and not ast["username"]:
                raise _invalid("SettingsIn", "asterisk_config", "username_required",
                               "asterisk_config.username is required when enabled", None)
            return new_effective

        old, new = await store.update(change, user_id)
        old_ari = _ari_config(_effective(old.data), box, app)
        new_ari = _ari_config(new_effective, box, app)
        if new_ari != old_ari or (new_ari is not None and services.pbx.get("config") != new_ari):
            await pbx.reconfigure(services, new_ari)
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


def _code_of(exc: AriError) -> str:
    if isinstance(exc, AriTimeout):
        return "AST_001"
    if isinstance(exc, AriAuthFailed):
        return "AST_002"
    return "AST_004"


def _test_failure(body: AsteriskTestBody, exc: AriError) -> dict[str, Any]:
    code = _code_of(exc)
    failure = _FAILURES[code]
    return {
        "success": False,
        "message": failure["message"].format(host=body.host, port=body.port,
                                             timeout=body.timeout),
        "data": {
            "error": failure["error"],
            "code": code,
            "details": {
                "host": body.host,
                "port": body.port,
                "reason": exc.message,
                "possible_causes": failure["possible_causes"],
            },
            "troubleshooting": failure["troubleshooting"],
        },
    }


def _system_name(info: dict[str, Any]) -> str:
    config = info.get("config") if isinstance(info.get("config"), dict) else {}
    build = info.get("build") if isinstance(info.get("build"), dict) else {}
    system = info.get("system") if isinstance(info.get("system"), dict) else {}
    if config.get("name"):
        return str(config["name"])
    parts = [str(build[k]) for k in ("os", "machine") if build.get(k)]
    where = f" on {' '.join(parts)}" if parts else ""
    entity = f" ({system['entity_id']})" if system.get("entity_id") else ""
    return f"Asterisk{where}{entity}"


async def test_asterisk(request: web.Request) -> web.Response:
    """Really connect: ``GET /ari/asterisk/info`` with these settings and timeout."""
    body = await parse_body(request, AsteriskTestBody)
    services = request.app[SERVICES]
    password = body.password
    if password is None or password == PASSWORD_MASK:
        stored = _effective((await SystemSettingsStore(services.pool).get()).data)
        password = _decrypt(secret_box(services.settings),
                            stored["asterisk_config"]["password_enc"]) or ""
    config = AriConfig(_ari_url(body.host, body.port), body.username, password,
                       services.settings.ari_app, float(body.timeout))
    try:
        async with AriClient(config) as client:
            info = await client.asterisk_info()
        system = info.get("system") if isinstance(info, dict) else None
        version = system.get("version") if isinstance(system, dict) else None
        if not isinstance(version, str) or not version:
            raise AriError("the answer of /asterisk/info has no system.version: not ARI?")
    except AriError as exc:
        return json_response(_test_failure(body, exc))
    return json_response({
        "success": True,
        "message": f"Успешное подключение к Asterisk {version}",
        "data": {
            "asterisk_version": version,
            "system": _system_name(info),
            "connection_details": {"host": body.host, "port": body.port,
                                   "protocol": body.protocol, "status": "Connected"},
        },
    })


# -- system info ------------------------------------------------------------------------------


def format_uptime(seconds: float) -> str:
    """``2 days, 14:30:22`` (always with the day count: ``0 days, 00:05:00``)."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days} day{'' if days == 1 else 's'}, {hours:02d}:{minutes:02d}:{secs:02d}"


async def system_info(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    db_ok = await database_ok(services.pool)
    users = operators = calls_today = None
    if db_ok:
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        users = await services.users.count()
        operators = await services.users.count_operators()
        calls_today = await calls_since(services.pool, today)
    stream = services.pbx.get("stream")
    return json_response({
        "users": users,
        "operators": operators,
        "calls_today": calls_today,
        "asterisk_connected": bool(stream is not None and stream.connected),
        "database_status": "connected" if db_ok else "disconnected",
        "uptime": format_uptime(time.time() - services.started_at),
    })


TAGS = ("admin",)
ROUTES: list[Route] = [
    Route("GET", "/api/admin/users", list_users, ADMIN, "List users (skip, limit, role)",
          query=UsersQuery, response=list[UserOut], tags=TAGS),
    Route("POST", "/api/admin/users", create_user, ADMIN,
          "Create a user (operators get their operator row and extension)",
          body=UserCreate, response=UserOut, status=201, tags=TAGS),
    Route("PUT", "/api/admin/users/{user_id}", update_user, ADMIN, "Update a user (partial)",
          body=UserUpdate, response=UserOut, tags=TAGS),
    Route("DELETE", "/api/admin/users/{user_id}", delete_user, ADMIN,
          "Delete a user (never the last active admin)", response=Deleted, tags=TAGS),
    Route("GET", "/api/admin/users/{user_id}/operator", user_operator, ADMIN,
          "The user's operator, or null", response=OperatorOut | None, tags=TAGS),
    Route("GET", "/api/admin/settings", get_settings, ADMIN, "System settings",
          response=SettingsOut, tags=TAGS),
    Route("PUT", "/api/admin/settings", put_settings, ADMIN,
          "Update system settings (re-initialises the ARI connection when it changes)",
          body=SettingsIn, response=SettingsOut, tags=TAGS),
    Route("POST", "/api/admin/settings/asterisk/test", test_asterisk, ADMIN,
          "Test an Asterisk ARI connection (GET /ari/asterisk/info)",
          body=AsteriskTestBody, response=AsteriskTestResult, tags=TAGS),
    Route("GET", "/api/admin/system/info", system_info, ADMIN, "System information",
          response=SystemInfo, tags=TAGS),
]
