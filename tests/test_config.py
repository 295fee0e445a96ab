"""Configuration: defaults < yaml < environment; bad values name the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from api.config import ConfigError, Settings, load_settings

REPO = Path(__file__).resolve().parents[1]


def test_defaults_match_the_contract() -> None:
    s = load_settings(env={"SWITCHBOARD_CONFIG": str(REPO / "config.yaml")})
    assert (s.http_host, s.http_port, s.token_ttl, s.admin_username) == (
        "127.0.0.1", 8001, 86400, "admin")
    assert s.data_dir == Path("./.data")
    assert s.simulator == "auto" and s.simulator_enabled


def test_config_yaml_documents_every_key() -> None:
    text = (REPO / "config.yaml").read_text(encoding="utf-8")
    documented = {line.split(":", 1)[0] for line in text.splitlines()
                  if line and not line.startswith((" ", "#"))}
    assert documented == set(Settings.__dataclass_fields__)


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
    ],
)
def test_bad_values_name_the_key(key: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        load_settings(env={key: value}, config_path=REPO / "config.yaml")


def test_unknown_yaml_key_is_rejected(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("http_prot: 1\n")
    with pytest.raises(ConfigError, match="http_prot"):
        load_settings(env={}, config_path=cfg)


def test_cli_exits_non_zero_on_bad_config() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "api.cli", "migrate"], cwd=REPO, capture_output=True, text=True,
        env={"SWITCHBOARD_HTTP_PORT": "abc", "PATH": "/usr/bin:/bin"}, timeout=30,
    )
    assert proc.returncode == 2
    assert "SWITCHBOARD_HTTP_PORT" in proc.stderr and "integer" in proc.stderr
