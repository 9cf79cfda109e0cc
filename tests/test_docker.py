"""No Docker engine runs here: lint the Dockerfile with hadolint and check what matters."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.server import running_server

DOCKER = Path(__file__).parent.parent / "docker"


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if hadolint is None:
        pytest.skip("hadolint is not installed for this platform")
    result = subprocess.run(
        [hadolint, str(DOCKER / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_runs_as_a_non_root_user_with_a_health_check() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n?.*/health", text, re.M)
    assert 'CMD ["whatsapp-api", "serve"]' in text
    for volume in ("data", "uploads", "instances", "logs"):
        assert f"/usr/src/app/{volume}" in text


def test_the_health_check_follows_port_and_fails_when_nothing_answers(tmp_path: Path) -> None:
    """The image's own HEALTHCHECK command, run here as Docker would run it in the container
    (with the image's PORT), against a real server."""
    text = (DOCKER / "Dockerfile").read_text()
    found = re.search(r"^HEALTHCHECK .*\\\n\s*CMD (\[.*\])$", text, re.M)
    assert found, "HEALTHCHECK ... CMD [...] in JSON form"
    command = json.loads(found[1])
    assert "3000/" not in " ".join(command)  # the port comes from PORT
    if shutil.which(command[0]) is None or shutil.which("curl") is None:
        pytest.skip("needs sh and curl")

    def check(port: int) -> int:
        env = {"PATH": os.environ["PATH"], "PORT": str(port)}
        return subprocess.run(command, env=env, capture_output=True, timeout=30).returncode

    with running_server(tmp_path) as server:
        assert check(server.port) == 0
    assert check(server.port) == 1  # stopped: unhealthy (1; Docker reserves other codes)


def test_the_image_has_the_tools_the_seed_runs_in_it() -> None:
    """The seed's compose health check runs curl; its backup commands run sqlite3."""
    text = (DOCKER / "Dockerfile").read_text()
    installed = re.search(r"apt-get install -y --no-install-recommends ([^\\&]+)", text)
    assert installed, "an apt-get install line"
    assert {"curl", "sqlite3"} <= set(installed[1].split())


def test_compose_has_mongodb_as_a_replica_set_the_volumes_and_restarts() -> None:
    compose = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"mongodb", "whatsapp-api"}
    assert all(s["restart"] == "unless-stopped" for s in services.values())
    assert "--replSet" in " ".join(services["mongodb"]["entrypoint"])
    assert "MONGO_INITDB_ROOT_PASSWORD" in services["mongodb"]["environment"]
    mounts = {v.split(":")[1] for v in services["whatsapp-api"]["volumes"]}
    assert mounts == {f"/usr/src/app/{v}" for v in ("instances", "uploads", "logs", "data")}
    app_env = services["whatsapp-api"]["environment"]
    assert "replicaSet=rs0" in app_env["DATABASE_URL"]
    assert app_env["DATABASE_PROVIDER"] == "${DATABASE_PROVIDER:-mongodb}"


def test_dockerignore_keeps_local_state_out_of_the_image() -> None:
    ignored = (DOCKER.parent / ".dockerignore").read_text().split()
    for entry in (".venv", "data", "uploads", "instances", "logs", "tests"):
        assert entry in ignored


def test_the_image_holds_every_package_of_the_project() -> None:
    import tomllib

    project = tomllib.loads((DOCKER.parent / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    text = (DOCKER / "Dockerfile").read_text()
    assert [p for p in packages if f"COPY {p} ./{p}" not in text] == []
