import subprocess
import sys
from pathlib import Path

import pytest

from app.config import ConfigError, Settings


def test_defaults_follow_the_spec() -> None:
    settings = Settings.from_env({})
    assert settings.port == 3000
    assert settings.database_provider == "sqlite"
    assert settings.sqlite_path == Path("data/whatsapp-api.db")
    assert settings.jwt_expiration == 24 * 3600
    assert settings.max_file_size == 10485760
    assert settings.sandbox_enabled and settings.webhook_allow_private
    assert settings.schedules.usage_save == "*/15 * * * *"


def test_production_turns_development_conveniences_off() -> None:
    settings = Settings.from_env(
        {"NODE_ENV": "production", "JWT_SECRET": "s" * 40, "ADMIN_PASSWORD": "a-strong-one"}
    )
    assert not settings.sandbox_enabled
    assert not settings.webhook_allow_private


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"PORT": "abc"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"JWT_EXPIRATION": "24 hours"}, "JWT_EXPIRATION"),
        ({"DATABASE_PROVIDER": "postgres"}, "DATABASE_PROVIDER"),
        ({"DATABASE_PROVIDER": "mongodb"}, "DATABASE_URL"),
        ({"APP_ENV": "production"}, "JWT_SECRET"),
        ({"APP_ENV": "production", "JWT_SECRET": "x" * 40}, "ADMIN_PASSWORD"),
        ({"CLEANUP_CRON": "every day"}, "CLEANUP_CRON"),
        ({"SANDBOX_ENABLED": "maybe"}, "SANDBOX_ENABLED"),
        ({"MAX_FILE_SIZE": "-1"}, "MAX_FILE_SIZE"),
        ({"DEFAULT_ENGINE": "baileys"}, "DEFAULT_ENGINE"),
        ({"SQLITE_DATABASE_URL": "file:"}, "SQLITE_DATABASE_URL"),
    ],
)
def test_a_bad_value_names_its_variable(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(environ)
    assert raised.value.variable == variable
    assert str(raised.value).startswith(variable + ":")


def test_the_server_refuses_to_start_with_one_clear_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve"],
        env={"PORT": "not-a-port", "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "whatsapp-api: configuration error: PORT: must be a whole number (got 'not-a-port')"
    ]
    assert not (tmp_path / "data").exists()
