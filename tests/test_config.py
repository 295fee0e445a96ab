"""Configuration: defaults < yaml < environment; bad values, typos and weak secrets name the key."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr, ValidationError

from api.config import ConfigError, Settings, load_settings
from api.openapi import build
from api.routes import ROUTES
from service.config import JWT_SECRET_MIN_BYTES, PASSWORD_MIN_LENGTH

REPO = Path(__file__).resolve().parents[1]
CONFIG = {"SWITCHBOARD_CONFIG": str(REPO / "config.yaml")}
SECRETS = ("jwt_secret", "secret_key", "admin_password", "ari_password", "ami_secret",
           "mango_api_key", "mango_api_salt")


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args], cwd=REPO, capture_output=True, text=True,
        env={"PATH": "/usr/bin:/bin", **env}, timeout=30,
    )


def test_defaults_match_the_contract() -> None:
    s = load_settings(env=CONFIG)
    assert (s.http_host, s.http_port, s.token_ttl, s.admin_username) == (
        "127.0.0.1", 8001, 86400, "admin")
    assert s.data_dir == Path("./.data")
    assert s.simulator == "auto" and s.simulator_enabled
    assert s.timezone == "UTC" and s.tzinfo == ZoneInfo("UTC")
    assert s == Settings()  # config.yaml states the defaults


def test_config_yaml_documents_every_key() -> None:
    text = (REPO / "config.yaml").read_text(encoding="utf-8")
    documented = {line.split(":", 1)[0] for line in text.splitlines()
                  if line and not line.startswith((" ", "#"))}
    assert documented == set(Settings.model_fields)


def test_environment_wins_over_yaml(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("http_port: 9000\nari_app: fromyaml\n")
    s = load_settings(env={"SWITCHBOARD_CONFIG": str(cfg), "SWITCHBOARD_HTTP_PORT": "9100"})
    assert s.http_port == 9100 and s.ari_app == "fromyaml"


def test_pbx_configured_turns_auto_simulator_off() -> None:
    s = load_settings(
        env={"SWITCHBOARD_ARI_URL": "http://pbx:8088", "SWITCHBOARD_ARI_USERNAME": "u",
             "SWITCHBOARD_ARI_PASSWORD": "p"},
        config_path=REPO / "config.yaml",
    )
    assert s.pbx_configured and not s.simulator_enabled


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("SWITCHBOARD_HTTP_PORT", "eighty",
         "http_port (SWITCHBOARD_HTTP_PORT): expected an integer"),
        ("SWITCHBOARD_HTTP_PORT", "70000", "http_port"),
        ("SWITCHBOARD_TOKEN_TTL", "-5", "token_ttl"),
        ("SWITCHBOARD_SIMULATOR", "maybe", "simulator (SWITCHBOARD_SIMULATOR): expected one of"),
        ("SWITCHBOARD_DATABASE_URL", "mysql://x", "database_url"),
        ("SWITCHBOARD_REDIS_URL", "localhost:6379", "redis_url"),
        ("SWITCHBOARD_TIMEZONE", "Mars/Olympus_Mons",
         "timezone (SWITCHBOARD_TIMEZONE): unknown time zone"),
        ("SWITCHBOARD_TIMEZONE", "../../etc/passwd", "timezone"),
    ],
)
def test_bad_values_name_the_key(key: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        load_settings(env={key: value}, config_path=REPO / "config.yaml")


def test_a_bad_url_is_shown_without_its_password() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(env={"SWITCHBOARD_DATABASE_URL": "mysql://app:hunter2@db/x"},
                      config_path=REPO / "config.yaml")
    assert "got 'mysql://***@db/x'" in str(raised.value) and "hunter2" not in str(raised.value)


def test_a_bad_yaml_value_names_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("ws_queue_size: lots\n")
    with pytest.raises(ConfigError, match=rf"ws_queue_size \(in {cfg}\): expected an integer"):
        load_settings(env={}, config_path=cfg)


def test_unknown_yaml_key_is_rejected(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("http_prot: 1\n")
    with pytest.raises(ConfigError, match=r"http_prot \(did you mean http_port\?\)"):
        load_settings(env={}, config_path=cfg)


def test_an_empty_yaml_value_is_an_empty_string(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("jwt_secret:\nari_url:\n")
    s = load_settings(env={}, config_path=cfg)
    assert s.jwt_secret.get_secret_value() == "" and s.ari_url == ""


def test_timezone_is_an_iana_zone() -> None:
    s = load_settings(env={"SWITCHBOARD_TIMEZONE": "Asia/Kolkata"},
                      config_path=REPO / "config.yaml")
    assert s.timezone == "Asia/Kolkata" and s.tzinfo == ZoneInfo("Asia/Kolkata")


# -- SWITCHBOARD_* variables that are not settings ---------------------------------------------

@pytest.mark.parametrize(
    ("variable", "key"),
    [
        ("SWITCHBOARD_HTTPPORT", "http_port"),      # underscores dropped
        ("SWITCHBOARD_HTTP__PORT", "http_port"),
        ("SWITCHBOARD_HTTP_PORTT", "http_port"),
        ("switchboard_http_prot", "http_port"),      # any case, letters swapped
        ("SWITCHBOARD_JWT_SECRETS", "jwt_secret"),
        ("SWITCHBOARD_SIMULATR", "simulator"),
        ("SWITCHBOARD_LOG_LVL", "log_level"),
        ("SWITCHBOARD_RATELIMITS", "rate_limits"),
        ("SWITCHBOARD_TIME_ZONE", "timezone"),
    ],
)
def test_a_near_miss_of_a_key_is_refused(variable: str, key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(env={variable: "1"}, config_path=REPO / "config.yaml")
    assert variable in str(raised.value) and f"SWITCHBOARD_{key.upper()} ({key})" in str(
        raised.value)


# What Kubernetes injects for a service "switchboard" (port 8001, named "http") and one
# "switchboard-redis" in the same namespace.
SERVICE_LINKS = {
    "SWITCHBOARD_SERVICE_HOST": "10.0.0.7", "SWITCHBOARD_SERVICE_PORT": "8001",
    "SWITCHBOARD_SERVICE_PORT_HTTP": "8001", "SWITCHBOARD_PORT": "tcp://10.0.0.7:8001",
    "SWITCHBOARD_PORT_8001_TCP": "tcp://10.0.0.7:8001", "SWITCHBOARD_PORT_8001_TCP_PROTO": "tcp",
    "SWITCHBOARD_PORT_8001_TCP_PORT": "8001", "SWITCHBOARD_PORT_8001_TCP_ADDR": "10.0.0.7",
    "SWITCHBOARD_REDIS_SERVICE_HOST": "10.0.0.9", "SWITCHBOARD_REDIS_SERVICE_PORT": "6379",
    "SWITCHBOARD_REDIS_PORT": "tcp://10.0.0.9:6379",
    "SWITCHBOARD_REDIS_PORT_6379_TCP": "tcp://10.0.0.9:6379",
    "SWITCHBOARD_REDIS_PORT_6379_TCP_ADDR": "10.0.0.9",
}


def test_kubernetes_service_links_only_warn(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="switchboard.config"):
        s = load_settings(env={**CONFIG, **SERVICE_LINKS})
    assert s == Settings()
    assert [r.getMessage() for r in caplog.records] == [
        "ignoring environment variable(s) that are not settings: "
        + ", ".join(sorted(SERVICE_LINKS))]


def test_a_name_unlike_any_key_only_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="switchboard.config"):
        load_settings(env={**CONFIG, "SWITCHBOARD_FAVOURITE_COLOUR": "blue"})
    assert [r.getMessage() for r in caplog.records] == [
        "ignoring environment variable(s) that are not settings: SWITCHBOARD_FAVOURITE_COLOUR"]


def test_a_port_typo_is_no_service_link() -> None:
    with pytest.raises(ConfigError, match="SWITCHBOARD_HTPP_PORT is not a setting: did you mean "
                                          r"SWITCHBOARD_HTTP_PORT \(http_port\)"):
        load_settings(env={**CONFIG, "SWITCHBOARD_HTPP_PORT": "9000"})


def test_a_service_link_on_a_key_says_what_it_is() -> None:
    # a service named "switchboard-ami" injects SWITCHBOARD_AMI_PORT=tcp://...
    with pytest.raises(ConfigError, match=r"ami_port \(SWITCHBOARD_AMI_PORT\): expected an "
                                          r"integer, got 'tcp://10.0.0.5:5038' \(a Kubernetes"):
        load_settings(env={**CONFIG, "SWITCHBOARD_AMI_PORT": "tcp://10.0.0.5:5038"})


def test_our_own_switches_are_not_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    env = {"SWITCHBOARD_TEST_EMBEDDED": "1", "SWITCHBOARD_BENCH_PG_URL": "postgresql://x",
           "SWITCHBOARD_HTTP_PORT": "8002", "HOME": "/root"}
    with caplog.at_level(logging.WARNING, logger="switchboard.config"):
        assert load_settings(env={**CONFIG, **env}).http_port == 8002
    assert caplog.records == []


def test_cli_exits_non_zero_on_bad_config() -> None:
    proc = _cli({"SWITCHBOARD_HTTP_PORT": "abc"}, "migrate")
    assert proc.returncode == 2
    assert "SWITCHBOARD_HTTP_PORT" in proc.stderr and "integer" in proc.stderr


def test_cli_refuses_a_misspelt_variable() -> None:
    proc = _cli({"SWITCHBOARD_HTTPPORT": "9000"}, "migrate")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "switchboard: configuration error: SWITCHBOARD_HTTPPORT is not a setting: "
        "did you mean SWITCHBOARD_HTTP_PORT (http_port)?"]


# -- secrets -----------------------------------------------------------------------------------

def test_secrets_are_secret_strings_built_from_plain_ones() -> None:
    plain: dict[str, Any] = {key: "k" * 40 for key in SECRETS}
    s = Settings(**plain)
    for key in SECRETS:
        assert isinstance(getattr(s, key), SecretStr)
        assert getattr(s, key).get_secret_value() == "k" * 40
    assert "k" * 40 not in repr(s) and "k" * 40 not in str(s)


def test_settings_are_immutable_and_replace_validates() -> None:
    s = Settings()
    with pytest.raises(ValidationError):
        s.http_port = 9000  # type: ignore[misc]
    changed = s.replace(ari_password="ari-secret", http_port="9000")
    assert changed.ari_password.get_secret_value() == "ari-secret" and changed.http_port == 9000
    assert s.http_port == 8001
    with pytest.raises(ValidationError, match="http_port"):
        s.replace(http_port="eighty")


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("SWITCHBOARD_JWT_SECRET", "x",
         f"jwt_secret (SWITCHBOARD_JWT_SECRET): too short (1 bytes): at least "
         f"{JWT_SECRET_MIN_BYTES} bytes"),
        ("SWITCHBOARD_JWT_SECRET", "x" * (JWT_SECRET_MIN_BYTES - 1), "jwt_secret"),
        ("SWITCHBOARD_ADMIN_PASSWORD", "x",
         f"admin_password (SWITCHBOARD_ADMIN_PASSWORD): too short (1 characters): at least "
         f"{PASSWORD_MIN_LENGTH}"),
    ],
)
def test_weak_secrets_are_refused(variable: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(env={variable: value}, config_path=REPO / "config.yaml")
    assert str(raised.value).startswith(expected)
    assert repr(value) not in str(raised.value)  # a secret is never echoed


def test_long_enough_secrets_are_accepted() -> None:
    s = load_settings(env={"SWITCHBOARD_JWT_SECRET": "é" * (JWT_SECRET_MIN_BYTES // 2),
                           "SWITCHBOARD_ADMIN_PASSWORD": "p" * PASSWORD_MIN_LENGTH},
                      config_path=REPO / "config.yaml")
    assert len(s.jwt_secret.get_secret_value().encode()) == JWT_SECRET_MIN_BYTES


def test_cli_refuses_a_weak_jwt_secret_at_start_up(tmp_path: Path) -> None:
    proc = _cli({"SWITCHBOARD_JWT_SECRET": "x", "SWITCHBOARD_DATA_DIR": str(tmp_path / "d")},
                "serve")
    assert proc.returncode == 2
    assert "jwt_secret (SWITCHBOARD_JWT_SECRET): too short" in proc.stderr
    assert not (tmp_path / "d").exists()  # refused before anything started


def test_admin_password_rule_is_the_user_password_rule() -> None:
    schemas = build(ROUTES)["components"]["schemas"]
    rules = {schema["properties"]["password"].get("minLength")
             for name, schema in schemas.items()
             if name.startswith("User") and "password" in schema.get("properties", {})}
    assert rules == {PASSWORD_MIN_LENGTH}
