import subprocess
import sys
from pathlib import Path

from app import doctor
from tests.server import free_port


def environ(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "SQLITE_DATABASE_URL": f"file:{tmp_path / 'data' / 'app.db'}",
        "UPLOADS_DIR": str(tmp_path / "uploads"),
        "INSTANCES_DIR": str(tmp_path / "instances"),
        "LOGS_DIR": str(tmp_path / "logs"),
        "JWT_SECRET": "s" * 40,
        "PORT": str(free_port()),
        "HOST": "127.0.0.1",
        **extra,
    }


def test_a_healthy_installation_passes(tmp_path: Path) -> None:
    lines: list[str] = []
    assert doctor.run(environ(tmp_path), lines.append) == 0
    text = "\n".join(lines)
    assert "[ok  ] whatsmeow: neonize" in text
    assert "[ok  ] uploads directory" in text and "FAIL" not in text


def test_a_broken_configuration_fails_naming_the_variable(tmp_path: Path) -> None:
    lines: list[str] = []
    assert doctor.run(environ(tmp_path, JWT_EXPIRATION="forever"), lines.append) == 1
    assert lines[0].startswith("[FAIL] configuration: JWT_EXPIRATION:")
    assert "fix: set JWT_EXPIRATION" in lines[0]


def test_an_unusable_directory_and_a_weak_secret_are_reported(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("a file")
    lines: list[str] = []
    code = doctor.run(
        environ(tmp_path, UPLOADS_DIR=str(tmp_path / "not-a-dir" / "uploads"), JWT_SECRET="short"),
        lines.append,
    )
    text = "\n".join(lines)
    assert code == 1
    assert "[FAIL] uploads directory" in text
    assert "[warn] jwt secret: JWT_SECRET has only 5 characters" in text


def test_a_damaged_event_store_fails(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "app.db").write_bytes(b"this is not a database" * 100)
    lines: list[str] = []
    assert doctor.run(environ(tmp_path), lines.append) == 1
    assert any(line.startswith("[FAIL] event store") for line in lines)


def test_the_command_exits_non_zero_on_failure(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "doctor"],
        env={"PORT": "x", "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "[FAIL] configuration: PORT" in result.stdout
